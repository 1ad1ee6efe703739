"""The report's sentences: each rule turns the run's tables and the trial file into prose.

Every sentence here is generated from numbers the run computed (``headline.csv``,
``results.csv``, ``anchors.csv``, ``ppc.csv``, ``tipping_point.csv``, the
reconstruction check) and from the trial file; nothing is typed in. A fact the
inputs do not give (a trial's phase, a prior called ``sceptical``, a published
CI) is not stated. Each rule has tests on synthetic tables in which its
sentence must change (``tests/test_report_prose.py``).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from .fmt import DASH, eq_pct, interval, join_words, md_table, missing, num, pct
from .names import arm_name
from .names import model_phrase as model_name

# --------------------------------------------------------------------------- design


def design_sentence(trial) -> str | None:
    """The trial's design as the trial file states it (``[trial] phase``/``design``), or None.

    Nothing about the design is inferred: without the optional fields the
    report does not mention the phase or the design at all.
    """
    phase = getattr(trial, "phase", "") or ""
    design = getattr(trial, "design", "") or ""
    if not phase and not design:
        return None
    what = ", ".join(x for x in (design, f"phase {phase}" if phase else "") if x)
    return f"Design (as stated in the trial file): {what} trial."


# --------------------------------------------------------------------------- reconstruction check


def _decimals(text: str) -> int:
    text = str(text).strip()
    if "e" in text.lower() or "." not in text:
        return 0
    return len(text.split(".", 1)[1])


def rounding_tolerance(published: str) -> float:
    """Half a unit in the last published decimal: ``"116.4"`` -> 0.05, ``"59"`` -> 0.5."""
    return 0.5 * 10.0 ** (-_decimals(published))


_PASS = re.compile(r"^(ok|pass|passed|within|reproduced|agree)", re.I)


def check_verdicts(check: pd.DataFrame) -> pd.DataFrame:
    """The reconstruction check with a tolerance and a verdict per published number.

    Parameters
    ----------
    check : DataFrame
        ``check.csv`` read as strings (``section, arm, statistic, published,
        replicate1, min, max, note`` and, when the reconstruction wrote them,
        ``tolerance`` and ``verdict``).

    Returns
    -------
    DataFrame
        Rows with a published number, plus ``deviation`` (absolute
        difference of the point reconstruction, ``replicate1``), ``tolerance``
        (the file's, else the rounding of the published number: its
        decimals), ``ok`` (bool) with ``verdict`` (the file's, else ``within
        rounding`` / ``outside rounding``) and ``replicates_ok`` (every
        replicate within the tolerance too; None without replicates).
    """
    rows = []
    for r in check.to_dict("records"):
        pub = r.get("published")
        if missing(pub):
            continue
        p = float(pub)
        if missing(r.get("replicate1")):
            continue
        rec = float(r["replicate1"])
        dev = abs(rec - p)
        rng = [float(r[c]) for c in ("min", "max") if c in r and not missing(r[c])]
        tol = float(r["tolerance"]) if "tolerance" in r and not missing(r.get("tolerance")) \
            else rounding_tolerance(str(pub))
        given = str(r.get("verdict", "") or "").strip()
        if given and given.lower() != "nan":
            ok = bool(_PASS.match(given))
            verdict = given
        else:
            ok = dev <= tol * (1 + 1e-9) + 1e-12
            verdict = "within rounding" if ok else "outside rounding"
        rep_ok = (max(abs(v - p) for v in rng) <= tol * (1 + 1e-9) + 1e-12) if rng else None
        rows.append({**r, "published_value": p, "reconstructed": rec,
                     "deviation": dev, "tolerance": tol, "ok": ok, "verdict": verdict, "replicates_ok": rep_ok})
    return pd.DataFrame(rows)


def statistic_name(statistic: str, unit: str) -> str:
    """``S(36) lower`` -> ``S(36 months), lower 95% bound``; ``n`` -> ``patients``."""
    s = str(statistic)
    bound = ""
    for b in (" lower", " upper"):
        if s.endswith(b):
            s, bound = s[: -len(b)], f", {b.strip()} 95% bound"
    if m := re.fullmatch(r"S\(([^)]*)\)", s):
        s = f"S({m.group(1)} {unit})"
    elif s == "median":
        s = f"median ({unit})"
    elif s == "median follow-up":
        s = f"median follow-up ({unit})"
    elif s == "n":
        s = "patients"
    elif s == "log-rank p":
        s = "log-rank P"
    elif s.startswith("at risk"):
        s = f"{s} {unit}"
    return s + bound


def _check_label(r: dict, trial) -> str:
    unit = getattr(trial, "time_unit", "")
    arm = str(r.get("arm", ""))
    who = "" if arm in ("all", "") or r.get("section") == "held_out" else arm_name(trial, arm) + ", "
    return who + statistic_name(r.get("statistic", ""), unit)


def _value(x: float, statistic: str, published: str | None = None) -> str:
    """A reconstructed number at a precision that shows its difference from the published one.

    Counts are whole numbers; a P value has 3 significant digits; anything else
    gets two decimals more than the published number (at most 4), so a value
    outside the rounding never prints as if it were inside it.
    """
    if statistic in ("n", "events") or str(statistic).startswith("at risk"):
        return f"{x:.0f}"
    if str(statistic).split()[-1].lower() == "p":
        return f"{x:.3g}"
    nd = min(_decimals(published) + 2, 4) if published is not None else (4 if abs(x) < 10 else 1)
    return f"{x:.{nd}f}"


def check_sentences(verdicts: pd.DataFrame, trial, max_listed: int = 4) -> list[str]:
    """The reconstruction check in words: how many published numbers are reproduced
    within their tolerance, which are not (largest misses first), and how the held-out
    numbers compare."""
    if verdicts is None or verdicts.empty:
        return ["No reconstruction check table was found, so the reconstruction is unchecked."]
    out = []
    used = verdicts[verdicts.section != "held_out"] if "section" in verdicts else verdicts
    held = verdicts[verdicts.section == "held_out"] if "section" in verdicts else verdicts.iloc[:0]
    if len(used):
        bad = used[~used.ok.astype(bool)]
        who = ""
        if bad.empty:
            out.append(f"All {len(used)} published numbers used for the reconstruction are reproduced "
                       f"within their tolerance.")
        else:
            bad = bad.assign(_rel=bad.deviation / bad.tolerance).sort_values("_rel", ascending=False)
            items = [f"{_check_label(r, trial)} (published {r['published']}, "
                     f"reconstructed {_value(r['reconstructed'], r['statistic'], r['published'])})"
                     for r in bad.head(max_listed).to_dict("records")]
            more = len(bad) - len(items)
            out.append(f"{len(used) - len(bad)} of {len(used)} published numbers used for the "
                       f"reconstruction are reproduced within their tolerance{who}; "
                       f"{len(bad)} {'is' if len(bad) == 1 else 'are'} not: " + "; ".join(items)
                       + (f"; and {more} more (supplement, table S1)." if more > 0 else "."))
        reps = used[used.replicates_ok.notna()] if "replicates_ok" in used else used.iloc[:0]
        if len(reps):
            n_ok = int(reps.replicates_ok.astype(bool).sum())
            out.append(f"Across the reconstruction replicates, {n_ok} of {len(reps)} stay within the "
                       "tolerance in every replicate." if n_ok < len(reps) else
                       "Every reconstruction replicate stays within the tolerance too.")
        out.append("The tolerance is half a unit in the last published decimal (the rounding of the "
                   "published number) unless the reconstruction set its own.")
    for r in held.to_dict("records"):
        stat = str(r["statistic"])
        if stat.endswith((" lower", " upper")):
            continue
        out.append(f"Held out from the reconstruction, the published {statistic_name(stat, '')} "
                   f"{r['published']} compares with "
                   f"{_value(r['reconstructed'], stat, r['published'])} recomputed from the reconstructed data: "
                   + ("within its rounding." if r["ok"] else "outside its rounding."))
    return out


def check_table(verdicts: pd.DataFrame, trial) -> str:
    """Supplement table S1: every published number, reconstructed, tolerance, verdict."""
    if verdicts is None or verdicts.empty:
        return "_No reconstruction check table._"
    multi = "min" in verdicts and verdicts["min"].notna().any()
    rows = []
    for r in verdicts.to_dict("records"):
        stat = str(r["statistic"])
        row = [("Held out: " if r.get("section") == "held_out" else "") + _check_label(r, trial),
               str(r["published"]), _value(r["reconstructed"], stat, r["published"])]
        if multi:
            row.append(f"{_value(float(r['min']), stat, r['published'])} to "
                       f"{_value(float(r['max']), stat, r['published'])}"
                       if not missing(r.get("min")) else DASH)
        row += [f"±{r['tolerance']:.2g}", r["verdict"]]
        rows.append(row)
    head = ["Published number", "Published", "Reconstructed"] + (["Replicates (range)"] if multi else [])
    return md_table(head + ["Tolerance", "Verdict"], rows)


# --------------------------------------------------------------------------- headline


def headline_model(head: pd.DataFrame) -> str | None:
    """The headline model of ``headline.csv`` (None when no model is eligible)."""
    h = head[(head.role == "headline") & (head.quantity != "none")]
    return None if h.empty else str(h.model.iloc[0])


def publication_check_sentences(head: pd.DataFrame, ppc: pd.DataFrame | None, trial) -> list[str]:
    """How the headline compares with the publication.

    The posterior predictive check of the headline model against every
    published landmark and median, and the conjugate normal analysis of the
    published HR under the same prior (only when the trial file gives the HR
    with its CI; otherwise says why it is absent), then of a Cox fit to the
    reconstruction.
    """
    out = []
    model = headline_model(head)
    prior = str(head.prior.iloc[0]) if len(head) else ""
    if model and ppc is not None and len(ppc):
        g = ppc[(ppc.model == model) & (ppc.prior == prior)]
        if len(g):
            bad = g[g.verdict != "ok"]
            out.append(f"Against the publication, the headline model's replicated trials reproduce "
                       f"{len(g) - len(bad)} of {len(g)} published landmark survival probabilities and "
                       f"medians (posterior predictive check)"
                       + (": misses " + ", ".join(f"{r.statistic} {arm_name(trial, r.arm)}"
                                                   for r in bad.itertuples()) + "." if len(bad) else "."))
    conj = head[head.role == "conjugate"]
    rep = getattr(trial, "reported_hr", None)
    for source, label in (("published HR", "the published HR"), ("Cox fit to the reconstruction",
                                                                 "a Cox fit to the reconstruction")):
        c = conj[conj.note.astype(str).str.contains(f"likelihood: {source}", regex=False)]
        hr, p = c[c.quantity == "hr"], c[c.quantity == "p_hr_lt_1"]
        if hr.empty:
            if source == "published HR":
                if rep is None:
                    out.append("The trial file gives no published HR, so there is no conjugate analysis "
                               "of the published HR to set beside the headline.")
                else:
                    out.append(f"The published HR ({num(rep.estimate)}) is given without a confidence "
                               "interval, so it has no standard error to analyse under the prior; "
                               "it is compared with the reconstruction in the check above.")
            continue
        r = hr.iloc[0]
        what = label
        if source == "published HR" and rep is not None:
            what += f" ({num(rep.estimate)}, 95% CI {num(rep.lower)} to {num(rep.upper)})"
        note = str(r.note)
        why = note.split("differs because ", 1)[1] if "differs because " in note else ""
        out.append(f"Under the same {prior} prior, a conjugate normal analysis of {what} gives HR "
                   f"{interval(r.estimate, r.lower, r.upper, 2, '95% CrI')}"
                   + (f", P(HR < 1) {eq_pct(p.estimate.iloc[0])}" if len(p) else "")
                   + (f"; it differs from the headline because {why}." if why else "."))
    return out


# --------------------------------------------------------------------------- anchors


def anchors_sentence(anchors: pd.DataFrame | None, trial) -> str:
    """The model-free Kaplan-Meier differences at the last milestone and horizon."""
    if anchors is None or anchors.empty:
        return "No model-free anchors were computed in this run."
    unit = getattr(trial, "time_unit", "")
    treat, ref = arm_name(trial, trial.treatment_arm), arm_name(trial, trial.reference_arm)
    bits = []
    for kind, label, nd, suffix in (("delta_s_", "ΔS", 3, ""), ("delta_rmst_", "ΔRMST", 1, f" {unit}")):
        sel = anchors[anchors.quantity.astype(str).str.startswith(kind)]
        if sel.empty:
            continue
        r = sel.assign(_t=sel.quantity.str[len(kind):].astype(float)).sort_values("_t").iloc[-1]
        t = r.quantity[len(kind):]
        p = f"; P(difference > 0) {eq_pct(r.p_gt_0)} by Bayesian bootstrap" if "p_gt_0" in r and not missing(
            r.p_gt_0) else ""
        bits.append(f"{label}({t} {unit}) = {num(r.estimate, nd)}{suffix} (95% CI {num(r.lower, nd)} to "
                    f"{num(r.upper, nd)}{p})")
    if not bits:
        return "No model-free anchors were computed in this run."
    return (f"Without any model, the Kaplan-Meier curves of the reconstructed data ({treat} minus {ref}) "
            f"give " + " and ".join(bits) + ".")


def anchors_table(anchors: pd.DataFrame, trial) -> str:
    """Supplement table of every Kaplan-Meier anchor (``anchors.csv``) under its display name.

    Parameters
    ----------
    anchors : DataFrame
        ``quantity, estimate, lower, upper, bb_lower, bb_upper, p_gt_0``.
    trial : Trial
        For the time unit.
    """
    from .names import quantity_name

    rows = []
    for r in anchors.itertuples():
        nd = 1 if "rmst" in r.quantity else 3
        rows.append([quantity_name(r.quantity, trial), num(r.estimate, nd),
                     f"{num(r.lower, nd)} to {num(r.upper, nd)}",
                     f"{num(getattr(r, 'bb_lower', math.nan), nd)} to {num(getattr(r, 'bb_upper', math.nan), nd)}",
                     pct(getattr(r, "p_gt_0", math.nan))])
    return md_table(["Quantity", "Kaplan-Meier", "Wald 95% CI", "Bayesian bootstrap 95%", "P(> 0)"], rows)


# --------------------------------------------------------------------------- prior community


def hr_bound(x: float) -> str:
    """An HR for a prior's range: 2 decimals, but ``<0.01`` / ``>100`` for a vague prior's ends."""
    if x < 0.01:
        return "<0.01"
    if x > 100:
        return ">100"
    return num(x)


def _prior_p_lt(p, hr: float) -> float:
    from scipy import stats

    return float(stats.norm.cdf((math.log(hr) - p.mu) / p.sigma))


def community_model(head: pd.DataFrame, results: pd.DataFrame) -> tuple[str | None, bool]:
    """The model the community table shows: the headline model, else the first model
    in the results (flagged False: it is not a headline)."""
    m = headline_model(head)
    if m:
        return m, True
    return (str(results.model.iloc[0]) if len(results) else None), False


def _pick(results: pd.DataFrame, pooled: pd.DataFrame | None, model: str, prior: str) -> dict:
    src = pooled if pooled is not None and len(pooled[(pooled.model == model) & (pooled.prior == prior)]) \
        else results
    sel = src[(src.model == model) & (src.prior == prior)]
    return {r.quantity: r for r in sel.itertuples()}


def _benefit_quantities(model: str, mcid: float) -> list[tuple[str, str]]:
    """(quantity, display) of the benefit probabilities stated for a model."""
    q = [("p_hr_lt_1", "P(HR < 1)")]
    if mcid is not None and mcid != 1:
        q.append((f"p_hr_lt_{mcid:g}", f"P(HR < {mcid:g})"))
    if model == "cure":
        q = [("p_cure_difference_gt_0", "P(cure difference > 0)")] + q
    return q


def community_table(results, pooled, head, priors_used: dict, mcid: float, trial) -> str:
    """One table: each prior of the run, what it believes, and the posterior it gives."""
    from ..families import get as family

    model, _ = community_model(head, results)
    if model is None:
        return "_No fits._"
    effect = family(model).effect_name
    qs = _benefit_quantities(model, mcid)
    rows = []
    for pid, p in priors_used.items():
        r = _pick(results, pooled, model, pid)
        hr = r.get("hr")
        row = [pid + (f" ({p.description})" if p.description else ""),
               f"{hr_bound(math.exp(p.mu))} ({hr_bound(math.exp(p.mu - 1.96 * p.sigma))} to "
               f"{hr_bound(math.exp(p.mu + 1.96 * p.sigma))})"]
        if mcid is not None:
            row.append(pct(_prior_p_lt(p, mcid)))
        row.append(interval(hr.estimate, hr.lower, hr.upper) if hr is not None else DASH)
        for q, _ in qs:
            row.append(pct(r[q].estimate) if q in r else DASH)
        rows.append(row)
    header = ["Prior", "Prior HR: median (95% range)"]
    if mcid is not None:
        header.append(f"Prior P(HR < {mcid:g})")
    header.append(f"Posterior {effect}: median (95% CrI)")
    header += [d for _, d in qs]
    return md_table(header, rows)


def community_sentences(results, pooled, head, priors_used: dict, mcid: float, trial) -> list[str]:
    """The range of conclusions across the run's priors, naming the priors at each end.

    A single prior is said to be one opinion, not a community; equal values
    (after rounding) are stated once ("under every prior"), never as a range
    from a number to itself; a probability the results lack is not stated.
    """
    model, is_head = community_model(head, results)
    if model is None:
        return []
    pids = list(priors_used)
    name = model_name(model)
    out = []
    where = (f"Under the {name} model" + ("" if is_head else " (no model is eligible for the headline; "
                                                            "shown for reference)"))
    vals = {}
    for q, disp in _benefit_quantities(model, mcid):
        got = {pid: _pick(results, pooled, model, pid).get(q) for pid in pids}
        got = {pid: float(r.estimate) for pid, r in got.items() if r is not None and not missing(r.estimate)}
        if got:
            vals[disp] = got
    from ..families import Family
    from ..families import get as family

    effect = family(model).effect_name
    mcid_note = (f" (HR {mcid:g} is the run spec's minimal clinically important difference"
                 + (f"; the HR is the model's {effect}" if effect != Family.effect_name else "") + ")"
                 if mcid is not None else "")
    if len(pids) == 1:
        pid = pids[0]
        bits = [f"{d} {eq_pct(v[pid])}" for d, v in vals.items() if pid in v]
        out.append(f"{where}, with a single prior ({pid}): " + "; ".join(bits) + f"{mcid_note}. "
                   "One prior is one opinion, not a community: how much the conclusion depends on "
                   "the prior is not explored.")
        return out
    parts = []
    for disp, v in vals.items():
        lo, hi = min(v, key=v.get), max(v, key=v.get)
        if pct(v[lo]) == pct(v[hi]):
            parts.append(f"{disp} is {pct(v[lo])} under every prior")
        else:
            # every prior whose value prints the same as the extreme is named with it
            at_lo = join_words([k for k in v if pct(v[k]) == pct(v[lo])])
            at_hi = join_words([k for k in v if pct(v[k]) == pct(v[hi])])
            parts.append(f"{disp} ranges from {pct(v[lo])} ({at_lo}) to {pct(v[hi])} ({at_hi})")
    out.append(f"{where}, across the {len(pids)} priors ({join_words(pids)}): " + "; ".join(parts)
               + f"{mcid_note}.")
    return out


# --------------------------------------------------------------------------- tipping point


def tipping_sentence(tp: pd.DataFrame | None, threshold: float, mcid: float | None, head=None) -> str:
    """The tipping point in one sentence, from ``tipping_point.csv``.

    The refit row closest to the threshold, for the model it was computed for:
    its prior SD, what that prior says about HR < MCID, and the P(HR < 1) it
    gives. Without refits: there is no tipping point when even the flat prior
    falls short of the threshold, or it was not computed, with the table's
    reason.
    """
    thr = f"{100 * threshold:g}%"
    if tp is None or tp.empty:
        return "The tipping point was not computed in this run (no tipping-point table)."
    hm = headline_model(head) if head is not None else None
    refit = tp[(tp.method == "refit") & pd.to_numeric(tp.sigma, errors="coerce").notna()
               & pd.to_numeric(tp.p_hr_lt_1, errors="coerce").notna()]
    pre = ""
    if not refit.empty:
        r = refit.iloc[(refit.p_hr_lt_1.astype(float) - threshold).abs().argsort()[:1]].iloc[0]
        if hm and hm != r.model:
            why = tp[(tp.model == hm) & (tp.method == "none")]
            reason = (str(why.note.iloc[0]).replace("not computed: ", "")) if len(why) else \
                "the tipping point was computed for another model"
            pre = (f"For the headline {model_name(hm)} model the tipping point is not computed ({reason}); "
                   f"for the {model_name(r.model)} model, ")
        else:
            pre = f"For the {model_name(r.model)} model, "
        p = float(r.p_hr_lt_1)
        side = "just above" if p >= threshold else "just below"
        # at one decimal a value next to the threshold can print as the threshold itself
        shown = eq_pct(p) if pct(p) != pct(threshold) else f"= {100 * p:.2f}%"
        prior_mcid = (f" (a prior that gives HR < {mcid:g} a probability of {pct(r.prior_p_hr_lt_mcid)})"
                      if mcid is not None and not missing(r.get("prior_p_hr_lt_mcid")) else "")
        s = (f"{pre}P(HR < 1) falls below {thr} for sceptical priors N(0, σ²) on the log HR tighter than "
             f"about σ = {num(r.sigma)}: refitted with σ = {num(r.sigma, 3)}{prior_mcid}, the model gives "
             f"P(HR < 1) {shown}, {side} {thr}.")
        return s[0].upper() + s[1:]
    normal = tp[(tp.method == "normal") & (tp.model != "normal")]
    inf = normal[pd.to_numeric(normal.sigma, errors="coerce") == math.inf]
    if len(inf):
        m = inf.model.iloc[0]
        return (f"Even a flat prior does not bring P(HR < 1) to {thr} for the {model_name(m)} model, so no "
                "sceptical prior is convinced: there is no tipping point.")
    none = tp[tp.method == "none"]
    if len(none):
        return (f"The tipping point was not computed for the {model_name(none.model.iloc[0])} model: "
                f"{str(none.note.iloc[0]).replace('not computed: ', '')}.")
    return "The tipping point was not computed for any model in this run (no refits in the table)."


# --------------------------------------------------------------------------- methods and limits


def methods_paragraph(trial, models: list[str], priors_used: dict, mcid: float | None, headline_prior: str,
                      replicates: int | None, pooled: bool) -> str:
    """What was done, in one paragraph, from the trial file and the run spec actually used."""
    pub = []
    for a in trial.arms.values():
        bits = [f"{a.n} patients and {a.events} events"]
        if a.survival:
            ci = all(lm.lower is not None for lm in a.survival)
            bits.append(f"survival at {join_words([f'{lm.time:g}' for lm in a.survival])} {trial.time_unit}"
                        + (" with 95% CIs" if ci else " (no CIs)"))
        if a.median is not None:
            bits.append("the median" + (" with its CI" if a.median.lower is not None else " (no CI)"))
        if a.at_risk:
            bits.append(f"numbers at risk at {len(a.at_risk)} times")
        if a.curve is not None:
            bits.append("a digitized curve")
        pub.append(f"{a.name}: {join_words(bits)}")
    fu = (f"; median follow-up {trial.followup_median:g} {trial.time_unit}"
          if trial.followup_median is not None else "")
    rec = ("Patient-level data were reconstructed to reproduce them"
           + (f", with {replicates} replicates that vary where the published numbers leave freedom"
              if replicates and replicates > 1 else "") + ".")
    pri = join_words(list(priors_used))
    return (f"The published numbers used were — {'; '.join(pub)}{fu}. {rec} "
            f"{len(models)} model famil{'y was' if len(models) == 1 else 'ies were'} fitted "
            f"({join_words([model_name(m) for m in models])}) under {len(priors_used)} "
            f"prior{'' if len(priors_used) == 1 else 's'} on the log hazard ratio ({pri}; stated in "
            "full in the prior community table)"
            + (f"; the minimal clinically important difference is HR {mcid:g}" if mcid is not None else "")
            + f". The headline prior is {headline_prior}; the headline model is chosen by a written "
            "rule (the best PSIS-LOO among models that pass the diagnostic gate and reproduce every "
            "published number)" + ("; its numbers are pooled over the reconstruction replicates." if pooled
                                   else "."))


def limits_text(trial) -> str:
    """What any reconstruction-based reanalysis cannot support (true for every trial)."""
    curves = all(a.curve is not None for a in trial.arms.values())
    no_ci = not any(lm.lower is not None for a in trial.arms.values() for lm in a.survival)
    lines = [
        "- The reconstruction reproduces the published numbers, not the patients: covariates, "
        "stratification, subgroups and any adjustment in the published analysis are not available.",
        "- " + ("The digitized curves fix the shape of the survival curves up to reading error."
                if curves else
                "Between the published time points the shape of the curves is an assumption of the "
                "reconstruction: hazard ratios in stretches marked *interpolated* rest on it."),
    ]
    if no_ci:
        lines.append("- The trial file gives no confidence intervals for the landmark survival "
                     "probabilities, so their precision, and with it the spread of the reconstruction "
                     "between landmarks, is not pinned by the publication.")
    lines += [
        "- The replicates' spread carries the reconstruction's uncertainty into the pooled posteriors; "
        "it cannot carry errors in the published numbers themselves.",
        "- A posterior probability under a stated prior is a summary of evidence, not a confirmatory "
        "test; the design (phase, endpoint hierarchy, multiplicity) is the publication's to state.",
    ]
    return "\n".join(lines)


def cure_support_sentence(cure: pd.DataFrame | None, trial) -> str:
    """What the cure model's cure fractions lean on: the flat end of each arm's curve.

    From ``cure_check.csv``'s ``support`` rows (:func:`kmbayes.modelcheck.cure_rows`):
    how long each arm's Kaplan-Meier curve is flat after its last death, how many
    patients are still followed on that stretch, and the Kaplan-Meier level there.
    A short plateau with few patients means the cure fraction is mostly the model's
    extrapolation.
    """
    if cure is None or cure.empty:
        return ""
    sup = cure[cure.kind == "support"]
    parts = []
    for arm_id in trial.arm_ids:
        rows = sup[sup.arm == arm_id].set_index("quantity").estimate
        if rows.empty:
            continue
        parts.append(f"{arm_name(trial, arm_id)}: flat for {num(rows['plateau'], 1)} {trial.time_unit} "
                     f"after the last death, with {int(rows['followed_after_last_event'])} "
                     f"patient{'s' if int(rows['followed_after_last_event']) != 1 else ''} still followed "
                     f"(Kaplan-Meier {num(rows['km_at_plateau'], 3)})")
    if not parts:
        return ""
    return ("The cure model's cure fractions rest on the flat end of each arm's reconstructed "
            "Kaplan-Meier curve and on how long it is followed: " + "; ".join(parts) + ".")
