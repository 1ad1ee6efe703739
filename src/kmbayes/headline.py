"""The headline rule, written down and applied by code.

1. The headline prior is the run spec's ``[priors] headline`` (default: the
   prior called ``sceptical`` if there is one, else the first prior).
2. A model is *eligible* if its fit under that prior passes the diagnostic
   gate (and so does its replicate-pooled fit, when pooling ran) and the
   posterior predictive check against every published number
   (:mod:`kmbayes.ppc`; verdict ``ok`` everywhere).
3. Among eligible models the headline model has the highest PSIS-LOO elpd
   under the headline prior. Eligible models within 2 standard errors of its
   elpd (pairwise, from the per-patient differences) are reported as
   "cannot tell apart"; the headline still names one model, and the others'
   numbers sit beside it.
4. The headline numbers are the replicate-pooled posterior when pooling ran
   (reconstruction uncertainty included), else the single reconstruction's.
5. Beside it: the conjugate normal analysis of the published HR under the
   same prior (when the trial file gives the HR with its CI), and of a Cox
   fit to the reconstruction, with the reasons the model's number may differ.

If no model is eligible there is no model-based headline: the table says so
and the model-free anchors stand alone.

References
----------
Vehtari A, Gelman A, Gabry J. Practical Bayesian model evaluation using
leave-one-out cross-validation and WAIC. Stat Comput. 2017;27:1413-1432.
Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials
and Health-Care Evaluation. Wiley; 2004. Section 3.6.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np

from . import families, priors

COLUMNS = ["role", "model", "prior", "quantity", "estimate", "lower", "upper", "note"]
#: quantities of the headline model repeated in the headline table (when present)
HEADLINE_QUANTITIES = ("hr", "p_hr_lt_1", "hr_early", "hr_late", "hr_ratio_late_early",
                       "p_hr_ratio_late_early_lt_1", "cure_difference", "p_cure_difference_gt_0")


def headline_prior(spec) -> str:
    want = getattr(spec, "headline_prior", None)
    if want and want in spec.priors:
        return want
    return "sceptical" if "sceptical" in spec.priors else next(iter(spec.priors))


def _elpd_i(fit) -> np.ndarray | None:
    import arviz as az

    if "log_likelihood" not in fit.idata.children:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(az.loo(fit.idata, pointwise=True).elpd_i).ravel()


def _row(role, model, prior, quantity, estimate, lower=math.nan, upper=math.nan, note=""):
    return {"role": role, "model": model, "prior": prior, "quantity": quantity, "estimate": estimate,
            "lower": lower, "upper": upper, "note": note}


def apply(spec, fits: dict, pooled: dict, ppc_rows: list[dict], results, pooled_results, trial,
          data) -> list[dict]:
    """Rows of ``headline.csv`` (see module docstring for the rule)."""
    prior = headline_prior(spec)
    rows: list[dict] = []
    misfits: dict[str, list[str]] = {}
    for r in ppc_rows:
        if r["prior"] == prior and r["verdict"] != "ok":
            misfits.setdefault(r["model"], []).append(f"{r['statistic']} {r['arm']}")
    eligible, reasons = [], {}
    for m in spec.models:
        fit, pf = fits.get((m, prior)), pooled.get((m, prior))
        if fit is None:
            continue
        why = []
        if not fit.gate_passed or (pf is not None and not pf.gate_passed):
            why.append("fails the diagnostic gate")
        if m in misfits:
            why.append("misses published " + ", ".join(misfits[m]))
        if why:
            reasons[m] = "excluded: " + "; ".join(why)
        else:
            eligible.append(m)
    elpd = {m: _elpd_i(fits[(m, prior)]) for m in eligible}
    elpd = {m: e for m, e in elpd.items() if e is not None}
    best = max(elpd, key=lambda m: elpd[m].sum()) if elpd else (eligible[0] if eligible else None)
    for m in spec.models:
        if (m, prior) not in fits:
            continue
        if m in reasons:
            note = reasons[m]
        elif m == best:
            note = "headline: best PSIS-LOO among eligible models"
        elif m in elpd and best in elpd:
            d = elpd[m] - elpd[best]
            se = float(np.sqrt(d.size * np.var(d, ddof=1)))
            tell = "cannot tell apart from the headline model" if abs(d.sum()) < 2 * se else "worse by LOO"
            note = f"eligible; {tell} (elpd difference {d.sum():.1f}, SE {se:.1f})"
        else:
            note = "eligible"
        rows.append(_row("candidate", m, prior, "effect", math.nan,
                         note=f"{families.get(m).effect_name}; {note}"))
    if best is None:
        rows.append(_row("headline", "", prior, "none", math.nan,
                         note="no model passes the gate and the check against the publication"))
    else:
        src = pooled_results if (best, prior) in pooled and pooled_results is not None else results
        tag = "pooled over reconstruction replicates" if src is pooled_results else "single reconstruction"
        sel = src[(src.model == best) & (src.prior == prior)]
        h, mt = f"{spec.rmst_horizons[-1]:g}", f"{spec.milestones[-1]:g}"
        wanted = list(HEADLINE_QUANTITIES) + [f"surv_diff_{mt}", f"rmst_diff_{h}"]
        for q in wanted:
            r = sel[sel.quantity == q]
            if not r.empty:
                r = r.iloc[0]
                note = families.get(best).effect_name if q == "hr" else ""
                rows.append(_row("headline", best, prior, q, float(r.estimate), float(r.lower),
                                 float(r.upper), "; ".join(x for x in (note, tag) if x)))
    rows += _conjugate_rows(spec.priors[prior], prior, trial, data, best, fits.get((best, prior)))
    return rows


def _conjugate_rows(pspec, prior: str, trial, data, best, fit) -> list[dict]:
    """Conjugate normal analyses beside the headline, with why they may differ."""
    from .estimands import cox_likelihood, log_hr_draws

    out = []
    sources = []
    rep = getattr(trial, "reported_hr", None)
    if rep is not None and rep.lower and rep.upper:
        sources.append(("published HR", *priors.normal_likelihood_from_ci(rep.estimate, rep.lower, rep.upper)))
    try:
        sources.append(("Cox fit to the reconstruction", *cox_likelihood(data)))
    except Exception:  # lifelines could not fit (e.g. no events in an arm): leave it out
        pass
    model_lh = float(np.median(log_hr_draws(fit))) if fit is not None else math.nan
    for name, y, se in sources:
        post = priors.conjugate_posterior(pspec, y, se)
        lo, hi = post.hr_interval()
        reasons = []
        if best is not None and families.get(best).effect_name != families.Family.effect_name:
            reasons.append(f"the headline model's effect is the {families.get(best).effect_name}, "
                           "not a proportional-hazards HR")
        elif math.isfinite(model_lh) and abs(model_lh - post.mu) > 0.05:
            reasons.append(f"the model's log HR differs by {model_lh - post.mu:+.2f} from this analysis")
        out.append(_row("conjugate", "normal", prior, "hr", post.hr_median, lo, hi,
                        f"likelihood: {name}" + (f"; differs because {' and '.join(reasons)}" if reasons else "")))
        out.append(_row("conjugate", "normal", prior, "p_hr_lt_1", post.prob_hr_lt(1.0),
                        note=f"likelihood: {name}"))
    return out


MODEL_NAMES = {
    "weibull_ph": "Weibull proportional hazards",
    "piecewise_ph": "piecewise-exponential proportional hazards",
    "piecewise_tv": "piecewise-exponential with a hazard ratio per interval",
    "smooth_tv": "smooth time-varying hazard ratio",
    "cure": "mixture cure",
}


def pct(x: float) -> str:
    """A probability as a percentage with one decimal, '>99.9%' / '<0.1%' at the ends."""
    if not math.isfinite(x):
        return "not estimable"
    if x > 0.999:
        return ">99.9%"
    if x < 0.001:
        return "<0.1%"
    return f"{100 * x:.1f}%"


def _eq(x: float) -> str:
    """``= 95.3%`` or ``> 99.9%`` (never ``= >99.9%``)."""
    from .report.fmt import eq_pct

    return eq_pct(x) if math.isfinite(x) else "not estimable"


def _ci(e, lo, hi, nd=2) -> str:
    from .report.fmt import num

    return f"{num(e, nd)} (95% CrI {num(lo, nd)} to {num(hi, nd)})"


def sentences(head, trial) -> list[str]:
    """The headline in plain words, generated from ``headline.csv`` rows and the trial file."""
    rows = head.to_dict("records") if hasattr(head, "to_dict") else list(head)
    h = {r["quantity"]: r for r in rows if r["role"] == "headline"}
    if not h or "none" in h:
        prior = rows[0]["prior"] if rows else ""
        return [f"No model passed the diagnostic gate and the check against every published number "
                f"under the {prior} prior, so there is no model-based headline; the model-free "
                "Kaplan-Meier differences stand alone."]
    any_row = next(iter(h.values()))
    model, prior = any_row["model"], any_row["prior"]
    treat = trial.arms[trial.treatment_arm].name
    ref = trial.arms[trial.reference_arm].name
    pooled = "pooled over reconstruction replicates" in str(any_row["note"])
    out = [f"Headline (chosen by the headline rule: the best model by PSIS-LOO among those that pass the "
           f"diagnostic gate and the check against every published number): the "
           f"{MODEL_NAMES.get(model, model)} model under the {prior} prior"
           + (", pooled over reconstruction replicates." if pooled else ".")]
    if "cure_difference" in h:
        d, p = h["cure_difference"], h.get("p_cure_difference_gt_0")
        out.append(f"The difference in cure fraction ({treat} minus {ref}) is "
                   f"{_ci(d['estimate'], d['lower'], d['upper'], 3)}"
                   + (f"; P(difference > 0) {_eq(p['estimate'])}." if p else "."))
        if "hr" in h:
            out.append(f"Among patients who are not cured, the hazard ratio is "
                       f"{_ci(h['hr']['estimate'], h['hr']['lower'], h['hr']['upper'])}.")
    elif "hr" in h:
        r = h["hr"]
        name = families.get(model).effect_name
        p = h.get("p_hr_lt_1")
        out.append(f"The {name}, {treat} vs {ref}, is {_ci(r['estimate'], r['lower'], r['upper'])}"
                   + (f"; P(HR < 1) {_eq(p['estimate'])}." if p else "."))
    if "hr_ratio_late_early" in h:
        r, p = h["hr_ratio_late_early"], h.get("p_hr_ratio_late_early_lt_1")
        out.append(f"The ratio of the late to the early hazard ratio is "
                   f"{_ci(r['estimate'], r['lower'], r['upper'])}"
                   + (f"; P(ratio < 1) {_eq(p['estimate'])}." if p else "."))
    tied = [r["model"] for r in rows if r["role"] == "candidate" and "cannot tell apart" in str(r["note"])]
    if tied:
        out.append("By PSIS-LOO it cannot be told apart from: "
                   + ", ".join(MODEL_NAMES.get(m, m) for m in tied) + ".")
    excluded = [r for r in rows if r["role"] == "candidate" and str(r["note"]).split("; ", 1)[-1].startswith("excluded")]
    for r in excluded:
        why = str(r["note"]).split("excluded: ", 1)[-1]
        for arm_id, arm in trial.arms.items():  # the rule's notes name arms by id: print their labels
            why = re.sub(rf"\b{re.escape(arm_id)}\b", arm.name, why)
        out.append(f"The {MODEL_NAMES.get(r['model'], r['model'])} model was not eligible ({why}).")
    return out
