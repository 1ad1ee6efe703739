"""Supplement tables: every table of the run with human names, no internal ids,
no ``nan`` and one precision per kind of number (:mod:`kmbayes.report.fmt`).

Each function takes a table the run wrote (``results.csv``, ``diagnostics.csv``,
``ppc.csv``, ...) and returns Markdown; nothing is typed in.
"""

from __future__ import annotations

import math

import pandas as pd

from ..priors import DEFAULT_MCID_HR
from ..trial import Trial
from .fmt import DASH, interval, md_table, missing, num, pct, text
from .names import (
    MODEL_NAMES,
    STANDARD_PRIORS,
    label_arms,
    model_name,
    model_sort_key,
    quantity_name,
)

PRIOR_ORDER = list(STANDARD_PRIORS)
MODEL_ORDER = list(MODEL_NAMES)
_md_table = md_table  # kept for callers of the former module


def _pct(x) -> str:
    return pct(x)


def _ci(est, lo, hi, nd: int = 2) -> str:
    return interval(est, lo, hi, nd)


def _order(df: pd.DataFrame, priors: list[str] | None = None) -> pd.DataFrame:
    """Rows by model family order, then the run spec's prior order."""
    order = list(priors) if priors else PRIOR_ORDER
    p = {k: i for i, k in enumerate(order)}
    return (df.assign(_m=df["model"].map(model_sort_key), _p=df["prior"].map(lambda x: p.get(x, 99)))
            .sort_values(["_m", "_p"], kind="stable").drop(columns=["_m", "_p"]))


def _get(res: pd.DataFrame, model: str, prior: str, quantity: str):
    sel = res[(res.model == model) & (res.prior == prior) & (res.quantity == quantity)]
    return None if sel.empty else sel.iloc[0]


def published_table(trial: Trial) -> pd.DataFrame:
    """The trial file's published numbers, one row per statistic (for display)."""
    rows = []
    for a in trial.arms.values():
        rows.append((a.name, "patients", a.n, None, None))
        rows.append((a.name, "events", a.events, None, None))
        for lm in a.survival:
            rows.append((a.name, f"S({lm.time:g} {trial.time_unit})", lm.estimate, lm.lower, lm.upper))
        if a.median is not None:
            rows.append((a.name, f"median ({trial.time_unit})", a.median.estimate, a.median.lower, a.median.upper))
        for ar in a.at_risk:
            rows.append((a.name, f"at risk at {ar.time:g}", ar.n, None, None))
    if trial.followup_median is not None:
        rows.append(("all", f"median follow-up ({trial.time_unit})", trial.followup_median, None, None))
    if trial.reported_hr is not None:
        h = trial.reported_hr
        rows.append(("held out", "hazard ratio", h.estimate, h.lower, h.upper))
    if trial.reported_p is not None:
        rows.append(("held out", "p-value", trial.reported_p, None, None))
    return pd.DataFrame(rows, columns=["arm", "statistic", "published", "lower", "upper"])




def results_table(res: pd.DataFrame, trial: Trial, milestones: list[float], horizons: list[float],
                  mcid: float | None = DEFAULT_MCID_HR, priors: list[str] | None = None) -> str:
    """Posterior HR, P(HR < 1), P(HR < MCID), milestone and RMST differences per model x prior."""
    unit = trial.time_unit
    thr = [1.0] + ([mcid] if mcid is not None and mcid != 1 else [])
    header = ["Model", "Prior", "HR (95% CrI)"] + [f"P(HR < {t:g})" for t in thr]
    header += [f"ΔS({m:g} {unit})" for m in milestones]
    header += [f"ΔRMST({h:g} {unit})" for h in horizons]
    rows = []
    for _, pr in _order(res[["model", "prior"]].drop_duplicates(), priors).iterrows():
        m, p = pr["model"], pr["prior"]
        hr = _get(res, m, p, "hr")
        row = [model_name(m), p, interval(hr.estimate, hr.lower, hr.upper) if hr is not None else DASH]
        for t in thr:
            r = _get(res, m, p, f"p_hr_lt_{t:g}")
            row.append(pct(r.estimate) if r is not None else DASH)
        for ms in milestones:
            r = _get(res, m, p, f"surv_diff_{ms:g}")
            row.append(interval(r.estimate, r.lower, r.upper, 3) if r is not None else DASH)
        for h in horizons:
            r = _get(res, m, p, f"rmst_diff_{h:g}")
            row.append(interval(r.estimate, r.lower, r.upper, 1) if r is not None else DASH)
        rows.append(row)
    return md_table(header, rows)


def family_table(res: pd.DataFrame, trial: Trial, priors: list[str] | None = None) -> str:
    """The family-specific estimands (early/late HRs, cure fractions), named."""
    keep = ("hr_early", "hr_late", "hr_ratio_late_early", "p_hr_ratio_late_early_lt_1", "cure_reference",
            "cure_treatment", "cure_difference", "p_cure_difference_gt_0", "hr_uncured")
    sel = res[res.quantity.isin(keep)]
    if sel.empty:
        return ""
    rows = []
    for r in _order(sel, priors).itertuples():
        est = pct(r.estimate) if r.quantity.startswith("p_") else interval(
            r.estimate, r.lower, r.upper, 3 if r.quantity.startswith("cure_") else 2)
        rows.append([model_name(r.model), r.prior, quantity_name(r.quantity, trial), est])
    return md_table(["Model", "Prior", "Quantity", "Estimate (95% CrI)"], rows)


def pooled_table(pooled_results: pd.DataFrame, pooling: pd.DataFrame | None, trial: Trial,
                 priors: list[str] | None = None) -> str:
    """Pooled (over reconstruction replicates) HR and P(HR < 1) with the ratio of interval widths."""
    rows = []
    pairs = _order(pooled_results[["model", "prior"]].drop_duplicates(), priors)
    for _, pr in pairs.iterrows():
        m, p = pr["model"], pr["prior"]
        hr, p1 = _get(pooled_results, m, p, "hr"), _get(pooled_results, m, p, "p_hr_lt_1")
        ratio, n = DASH, DASH
        if pooling is not None and len(pooling):
            w = pooling[(pooling.model == m) & (pooling.prior == p) & (pooling.quantity == "hr")]
            if len(w):
                ratio, n = num(w.width_ratio.iloc[0]), f"{int(w.replicates.iloc[0])}"
        rows.append([model_name(m), p, interval(hr.estimate, hr.lower, hr.upper) if hr is not None else DASH,
                     pct(p1.estimate) if p1 is not None else DASH, ratio, n])
    return md_table(["Model", "Prior", "HR pooled (95% CrI)", "P(HR < 1) pooled",
                     "HR interval width: pooled / single", "Replicates"], rows)


def ppc_table(ppc: pd.DataFrame, trial: Trial, priors: list[str] | None = None) -> str:
    """Posterior predictive check counts per model x prior, with the missed numbers."""
    from .names import arm_name

    rows = []
    for (m, p), g in _order(ppc, priors).groupby(["model", "prior"], sort=False):
        bad = g[g.verdict != "ok"]
        rows.append([model_name(m), p, f"{len(g) - len(bad)} of {len(g)}",
                     ", ".join(f"{r.statistic} {arm_name(trial, r.arm)}" for r in bad.itertuples()) or "none"])
    return md_table(["Model", "Prior", "Published numbers reproduced", "Missed"], rows)


def ph_table(ph: pd.DataFrame, trial: Trial) -> str:
    """The proportional-hazards check: Grambsch-Therneau and window Cox fits."""
    rows = []
    for r in ph.itertuples():
        test = {"grambsch_therneau": "Grambsch-Therneau", "window_cox": "Cox in window"}.get(r.test, r.test)
        win = str(r.window)
        if "_" in win:
            a, b = win.split("_", 1)
            win = f"after {a} {trial.time_unit}" if b == "inf" else f"{a}–{b} {trial.time_unit}"
        rows.append([test, win, interval(r.hr, r.lower, r.upper), num(r.p, 3),
                     DASH if missing(r.deaths_ref) else f"{int(r.deaths_ref)} / {int(r.deaths_trt)}",
                     text(r.support)])
    return md_table(["Test", "Window", "HR (95% CI)", "P", "Deaths reference / treatment", "Support"], rows)


def loo_table(loo: pd.DataFrame, priors: list[str] | None = None) -> str:
    """PSIS-LOO comparison per prior."""
    rows = []
    order = list(priors) if priors else list(dict.fromkeys(loo.prior))
    for p in order:
        for r in loo[loo.prior == p].sort_values("rank").itertuples():
            rows.append([p, model_name(r.model), f"{int(r.rank) + 1}", num(r.elpd_loo, 1), num(r.elpd_diff, 1),
                         num(r.dse, 1), num(r.weight)])
    return md_table(["Prior", "Model", "Rank", "ELPD (LOO)", "ELPD difference", "SE of difference",
                     "Stacking weight"], rows)


def tipping_table(tp: pd.DataFrame, mcid: float | None) -> str:
    """Every tipping-point computation, with the method spelled out."""
    meth = {"conjugate": "Conjugate normal", "normal": "Normal approximation of the fit",
            "importance": "Importance reweighting", "refit": "Refit", "none": "Not computed"}
    rows = []
    for r in tp.itertuples():
        model = "—" if r.model == "normal" else model_name(r.model)
        src = str(r.source).replace("Cox on IPD", "Cox fit to the reconstruction")
        rows.append([meth.get(r.method, r.method), model, src, num(r.sigma, 3),
                     pct(r.prior_p_hr_lt_mcid), pct(r.p_hr_lt_1),
                     DASH if missing(r.pareto_k) else num(r.pareto_k), text(r.note)])
    return md_table(["Method", "Model", "Source", "Prior SD σ",
                     f"Prior P(HR < {mcid:g})" if mcid is not None else "Prior P(HR < MCID)",
                     "P(HR < 1)", "Pareto k", "Note"], rows)


def headline_table(head: pd.DataFrame, trial: Trial) -> str:
    """The headline rule's table: candidates with their status, the headline numbers, the conjugate checks."""
    role = {"candidate": "Candidate", "headline": "Headline", "conjugate": "Conjugate check"}
    rows = []
    for r in head.itertuples(index=False):
        if r.role == "headline" and r.quantity == "none":
            rows.append(["Headline", DASH, r.prior, DASH, DASH, text(r.note)])
            continue
        model = "Normal (conjugate)" if r.model == "normal" else model_name(r.model)
        q = DASH if r.quantity == "effect" else quantity_name(r.quantity, trial)
        if r.quantity == "effect":
            est = DASH
        elif str(r.quantity).startswith("p_"):
            est = pct(r.estimate)
        else:
            from .fmt import decimals_for

            est = interval(r.estimate, r.lower, r.upper, decimals_for(r.quantity))
        rows.append([role.get(r.role, r.role), model, r.prior, q, est, label_arms(text(r.note), trial)])
    return md_table(["Role", "Model", "Prior", "Quantity", "Estimate (95% interval)", "Note"], rows)


def interval_frame(fits: dict, models=("piecewise_tv", "smooth_tv"), trial: Trial | None = None) -> pd.DataFrame:
    """Per-interval HR of the time-varying models: median, 95% CrI, P(HR < 1), deaths,
    and whether published numbers pin the interval (``support``: ``pinned`` when the
    curves are published at both ends, ``interpolated`` when the shape inside is
    the reconstruction's assumption; :func:`kmbayes.pinning.interval_support`).

    One row per model x prior x interval (``reports/hr_intervals.csv``).
    """
    import numpy as np

    from ..estimands import interval_hr_draws
    from ..families import interval_labels
    from ..pinning import interval_support

    rows = []
    for (m, prior), fit in fits.items():
        if m not in models:
            continue
        support = dict(zip(
            [f"hr_{lab}" for lab in interval_labels(fit.ctx["cuts"])],
            interval_support(trial, fit.ctx["cuts"]) if trial is not None else []))
        t, e = np.asarray(fit.data.time), np.asarray(fit.data.event)
        for label, d in interval_hr_draws(fit).items():
            a, b = (float(x) for x in label.split("_")[1:3])
            lo, med, hi = np.quantile(d, [0.025, 0.5, 0.975])
            deaths = int(((t > a) & (t <= b) & (e == 1)).sum())
            rows.append(dict(model=m, prior=prior, interval=label, start=a, end=b, events=deaths,
                             estimate=med, lower=lo, upper=hi, p_hr_lt_1=float((d < 1).mean()),
                             support=support.get(label, "")))
    return pd.DataFrame(rows, columns=["model", "prior", "interval", "start", "end", "events", "estimate",
                                       "lower", "upper", "p_hr_lt_1", "support"])




def _interval_label(start: float, end: float, unit: str) -> str:
    return f"after {start:g} {unit}" if math.isinf(end) else f"{start:g}–{end:g} {unit}"


def interval_hr_table(intervals: pd.DataFrame, trial: Trial, priors: list[str] | None = None) -> str:
    """Per-interval HRs of the time-varying model, one column per prior."""
    if intervals is None or intervals.empty:
        return "_No time-varying fit in this run._"
    if "model" in intervals:
        intervals = intervals[intervals.model == intervals.model.iloc[0]]
    present = list(dict.fromkeys(intervals.prior))
    order = [p for p in (priors or PRIOR_ORDER) if p in present] + [p for p in present
                                                                     if p not in (priors or PRIOR_ORDER)]
    rows = []
    for (start, end), grp in intervals.groupby(["start", "end"], sort=True):
        row = [_interval_label(start, end, trial.time_unit), f"{int(grp.events.iloc[0])}" if "events" in grp else DASH,
               text(grp.support.iloc[0]) if "support" in grp else DASH]
        for p in order:
            r = grp[grp.prior == p]
            row.append(DASH if r.empty else f"{interval(r.estimate.iloc[0], r.lower.iloc[0], r.upper.iloc[0])}; "
                       f"P(HR < 1) {pct(r.p_hr_lt_1.iloc[0])}")
        rows.append(row)
    return md_table(["Interval", "Deaths", "Published numbers"] + [f"{p} prior" for p in order], rows)


def diagnostics_table(diag: pd.DataFrame, priors: list[str] | None = None) -> str:
    """The diagnostics table with the gate verdict per fit."""
    rows = []
    for _, r in _order(diag, priors).iterrows():
        ok = str(r.get("gate_passed", "True")).lower() in ("true", "1")
        rows.append([
            model_name(r.model), r.prior, num(r.rhat_max, 3), num(r.ess_bulk_min, 0), num(r.ess_tail_min, 0),
            f"{int(r.divergences)}", num(r.bfmi_min), num(r.pareto_k_max), "pass" if ok else "**FAIL**",
        ])
    return md_table(["Model", "Prior", "R-hat max", "ESS bulk min", "ESS tail min", "Divergences", "E-BFMI min",
                     "Pareto k max", "Gate"], rows)


def sampling_items(fits: dict, results: pd.DataFrame) -> list[str]:
    """Method items 5-6: how each model was sampled, its Monte Carlo error, the gate.

    Read from what was done (each fit's draws and its manifest's sampler
    settings and gate), not from the config, so a retried fit shows.
    """
    by_model: dict[str, set] = {}
    tune, gate = set(), None
    for (model, _), fit in fits.items():
        post = fit.idata["posterior"]
        man = getattr(fit, "manifest", None) or {}
        attempt = (man.get("attempts") or [{}])[-1]
        by_model.setdefault(model, set()).add(
            (post.sizes["chain"], post.sizes["draw"], attempt.get("target_accept")))
        if attempt.get("tune"):
            tune.add(attempt["tune"])
        gate = gate or man.get("gate")
    runs = []
    for model, settings in by_model.items():
        parts = [f"{c} × {d} draws" + (f" (target acceptance {ta:g})" if ta else "")
                 for c, d, ta in sorted(settings, key=lambda x: (x[1], x[2] or 0))]
        runs.append(f"{MODEL_NAMES.get(model, model)} {' or '.join(parts)}")
    tuned = f" after {'/'.join(str(t) for t in sorted(tune))} tuning steps per chain" if tune else ""
    mc = ""
    if "mcse" in results:
        probs = results[results.quantity.str.startswith("p_hr_lt_")].mcse.dropna()
        hrs = results[results.quantity == "hr"].mcse.dropna()
        if len(probs) and len(hrs):
            mc = (f" Monte Carlo SE (column `mcse` of `results.csv`): at most "
                  f"{100 * probs.max():.2f} percentage points for a P(HR < x), at most "
                  f"{hrs.max():.4f} for a posterior-median HR.")
    items = [f"5. **Sampling.** NUTS (nutpie): {'; '.join(runs)}{tuned}.{mc}"]
    g = gate or {}
    items.append(
        "6. **Diagnostics gate** (Vehtari et al. 2021): "
        + (f"R-hat ≤ {g['rhat_max']:g}, bulk and tail ESS ≥ {g['ess_min']:g}, "
           + (f"at most {g['divergences_max']} divergences; " if g["divergences_max"]
              else "no divergences; ") if g else "")
        + "failing fits are retried with safer settings and then flagged.")
    return items


