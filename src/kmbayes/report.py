"""The generated report ``reports/reanalysis.md`` and the plain-language summary.

Everything here is computed from the run's own outputs (``results.csv``,
``diagnostics.csv``, the reconstruction check table and the manifests), so the
report is regenerated, never hand-edited.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd

from .trial import Trial

MODEL_NAMES = {
    "weibull_ph": "Weibull PH",
    "piecewise_ph": "Piecewise-exponential PH",
    "piecewise_tv": "Piecewise-exponential, time-varying HR",
}
PRIOR_ORDER = ["reference", "sceptical", "enthusiastic", "pessimistic"]
MODEL_ORDER = ["weibull_ph", "piecewise_ph", "piecewise_tv"]
# The constant-HR model with the flexible baseline carries the headline: it does
# not force a Weibull shape on a baseline hazard that the CLOCC curves show is
# not monotone, and its single HR is comparable to the published Cox HR.
HEADLINE_MODEL = "piecewise_ph"
HEADLINE_PRIOR = "sceptical"

FIGURES = [
    ("fig1_km_reconstruction", "Reconstructed Kaplan-Meier curves with the published landmark estimates (95% CI) and numbers at risk."),
    ("fig2_hr_triplot", "Prior, likelihood and posterior of the hazard ratio per prior; P(HR < 1) shaded."),
    ("fig3_forest", "Posterior HR (median, 95% CrI) and P(HR < 1) across models and priors."),
    ("fig4_posterior_survival", "Posterior survival curves (95% bands) over the reconstructed Kaplan-Meier curves."),
    ("fig5_hr_over_time", "HR over time from the time-varying piecewise model against the constant-HR fits."),
    ("fig6_prob_benefit", "Probability of benefit P(HR < h) against the threshold h, per prior."),
    ("fig7_rmst_difference", "Difference in restricted mean survival time against the horizon."),
    ("fig8_diagnostics", "Rank plots of the key parameters and the LOO comparison."),
]


def _order(df: pd.DataFrame) -> pd.DataFrame:
    m = {k: i for i, k in enumerate(MODEL_ORDER)}
    p = {k: i for i, k in enumerate(PRIOR_ORDER)}
    return df.assign(_m=df["model"].map(lambda x: m.get(x, 99)), _p=df["prior"].map(lambda x: p.get(x, 99))).sort_values(["_m", "_p"]).drop(columns=["_m", "_p"])


def _fmt_num(x: float, nd: int = 2) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _ci(est: float, lo: float, hi: float, nd: int = 2) -> str:
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return _fmt_num(est, nd)
    return f"{est:.{nd}f} ({lo:.{nd}f} to {hi:.{nd}f})"


def _pct(x: float) -> str:
    if x is None or math.isnan(x):
        return ""
    if x > 0.999:
        return ">99.9%"
    if x < 0.001:
        return "<0.1%"
    return f"{100 * x:.1f}%"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _get(res: pd.DataFrame, model: str, prior: str, quantity: str) -> pd.Series | None:
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


def results_table(res: pd.DataFrame, trial: Trial, milestones: list[float], horizons: list[float]) -> str:
    """HR, P(HR<1), P(HR<0.8), milestone and RMST differences per model x prior."""
    unit = trial.time_unit
    header = ["Model", "Prior", "HR (95% CrI)", "P(HR<1)", "P(HR<0.8)"]
    header += [f"ΔS({m:g} {unit})" for m in milestones]
    header += [f"ΔRMST({h:g} {unit})" for h in horizons]
    rows = []
    pairs = _order(res[["model", "prior"]].drop_duplicates())
    for _, pr in pairs.iterrows():
        m, p = pr["model"], pr["prior"]
        hr = _get(res, m, p, "hr")
        row = [MODEL_NAMES.get(m, m), p, _ci(hr.estimate, hr.lower, hr.upper) if hr is not None else ""]
        for q in ("p_hr_lt_1", "p_hr_lt_0.8"):
            r = _get(res, m, p, q)
            row.append(_pct(r.estimate) if r is not None else "")
        for ms in milestones:
            r = _get(res, m, p, f"surv_diff_{ms:g}")
            row.append(_ci(r.estimate, r.lower, r.upper, 3) if r is not None else "")
        for h in horizons:
            r = _get(res, m, p, f"rmst_diff_{h:g}")
            row.append(_ci(r.estimate, r.lower, r.upper, 1) if r is not None else "")
        rows.append(row)
    return _md_table(header, rows)


def interval_frame(fits: dict, models=("piecewise_tv", "smooth_tv"), trial: Trial | None = None) -> pd.DataFrame:
    """Per-interval HR of the time-varying models: median, 95% CrI, P(HR < 1), deaths,
    and whether published numbers pin the interval (``support``: ``pinned`` when the
    curves are published at both ends, ``interpolated`` when the shape inside is
    the reconstruction's assumption; :func:`kmbayes.pinning.interval_support`).

    One row per model x prior x interval (``reports/hr_intervals.csv``).
    """
    import numpy as np

    from .estimands import interval_hr_draws
    from .families import interval_labels
    from .pinning import interval_support

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
    return f"> {start:g} {unit}" if math.isinf(end) else f"{start:g}–{end:g} {unit}"


def interval_hr_table(intervals: pd.DataFrame, trial: Trial) -> str:
    """Per-interval HRs of the time-varying model, one column per prior."""
    if intervals is None or intervals.empty:
        return "_No time-varying fit in this run._"
    if "model" in intervals:
        intervals = intervals[intervals.model == intervals.model.iloc[0]]
    priors = [p for p in PRIOR_ORDER if p in set(intervals.prior)] + sorted(set(intervals.prior) - set(PRIOR_ORDER))
    rows = []
    for (start, end), grp in intervals.groupby(["start", "end"], sort=True):
        row = [_interval_label(start, end, trial.time_unit), f"{int(grp.events.iloc[0])}" if "events" in grp else "",
               str(grp.support.iloc[0]) if "support" in grp else ""]
        for p in priors:
            r = grp[grp.prior == p]
            row.append("" if r.empty else f"{_ci(r.estimate.iloc[0], r.lower.iloc[0], r.upper.iloc[0])}; P(HR<1) {_pct(r.p_hr_lt_1.iloc[0])}")
        rows.append(row)
    return _md_table(["Interval", "Deaths", "Published numbers"] + [f"{p} prior" for p in priors], rows)


def diagnostics_table(diag: pd.DataFrame) -> str:
    """The diagnostics table with the gate verdict per fit."""
    rows = []
    for _, r in _order(diag).iterrows():
        ok = str(r.get("gate_passed", "True")).lower() in ("true", "1")
        rows.append([
            MODEL_NAMES.get(r.model, r.model), r.prior, f"{r.rhat_max:.3f}", f"{r.ess_bulk_min:.0f}",
            f"{r.ess_tail_min:.0f}", f"{int(r.divergences)}", _fmt_num(r.bfmi_min), _fmt_num(r.pareto_k_max),
            "pass" if ok else "**FAIL**",
        ])
    return _md_table(["Model", "Prior", "R-hat max", "ESS bulk min", "ESS tail min", "Divergences", "E-BFMI min", "Pareto k max", "Gate"], rows)


def check_table(check_csv: Path) -> str:
    """The reconstruction check table (published vs recomputed) as markdown."""
    with open(check_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return "_No check table._"
    return _md_table(rows[0], rows[1:])


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


def write_report(
    path: Path,
    *,
    trial: Trial,
    results: pd.DataFrame,
    diagnostics: pd.DataFrame,
    intervals: pd.DataFrame | None,
    check_csv: Path | None,
    figures_dir: Path,
    milestones: list[float],
    horizons: list[float],
    repro: dict,
    extra_sections: dict[str, str] | None = None,
    sampling: list[str] | None = None,
    summary: str | None = None,
    priors_used: dict | None = None,
    mcid_hr: float | None = None,
) -> str:
    """Compose ``reanalysis.md`` and return its text (the caller writes it atomically).

    ``sampling``: the numbered method items on sampling and the gate
    (:func:`sampling_items`); ``summary``: the headline sentences
    (:func:`kmbayes.headline.sentences`); ``priors_used``: the run's priors
    (id -> PriorSpec), listed as used.
    """
    from .families import get as get_family
    from .headline import MODEL_NAMES as HEAD_NAMES
    rel_fig = Path(_relpath(figures_dir, path.parent))
    arms = "; ".join(f"`{a.id}` = {a.name} (n = {a.n}, {a.events} events)" for a in trial.arms.values())
    published = []
    for a in trial.arms.values():
        bits = [f"{a.events}/{a.n} events"]
        bits += [f"S({lm.time:g}) = {lm.estimate:.3f}" + (f" ({lm.lower:.3f}–{lm.upper:.3f})" if lm.lower is not None else "") for lm in a.survival]
        if a.median:
            bits.append(f"median {a.median.estimate:g}" + (f" ({a.median.lower:g}–{a.median.upper:g})" if a.median.lower is not None else "") + f" {trial.time_unit}")
        if a.at_risk:
            bits.append(f"numbers at risk at {len(a.at_risk)} times")
        if a.curve is not None:
            bits.append("a digitized curve")
        published.append(f"- **{a.name}**: " + "; ".join(bits))
    if trial.followup_median is not None:
        published.append(f"- Median follow-up {trial.followup_median:g} {trial.time_unit} (reverse Kaplan-Meier).")
    held = ""
    if trial.reported_hr is not None:
        h = trial.reported_hr
        held = f"HR {h.estimate:g}" + (f" ({h.lower:g}–{h.upper:g})" if h.lower is not None else "")
        if trial.reported_p is not None:
            held += f", P = {trial.reported_p:g}"

    parts = [
        f"# Bayesian reanalysis: {trial.name}, {trial.endpoint}",
        "",
        "_Generated by `kmbayes run`; do not edit by hand._",
        "",
        "## Summary",
        "",
        summary or "_No headline: see the tables below._",
        "",
        "## What was done",
        "",
        f"Arms: {arms}. Hazard ratios are {trial.arms[trial.treatment_arm].name} vs {trial.arms[trial.reference_arm].name} (HR < 1 favours {trial.arms[trial.treatment_arm].name}).",
        "",
        "1. **Published numbers in.** " + (f"Source: {trial.citation}." if trial.citation else "") + " Used for the reconstruction:",
        "",
        *published,
        "",
        "   " + (f"Held out (never used to reconstruct; the check): {held}." if held else ""),
        "2. **Reconstruction.** Patient-level data that reproduce every published statistic (`kmbayes reconstruct`), plus replicates that vary where the published numbers leave freedom.",
        "3. **Models.** " + "; ".join(
            f"{HEAD_NAMES.get(m, m)} (effect: {get_family(m).effect_name})"
            for m in dict.fromkeys(results.model)) + ".",
        "4. **Priors on each model's log HR** (Spiegelhalter et al. 2004"
        + (f"; minimal clinically important difference HR {mcid_hr:g}" if mcid_hr else "") + "): "
        + ("; ".join(f"{pid}: {p.description or 'custom'} (log HR ~ N({p.mu:.3g}, {p.sigma:.3g}²))"
                     for pid, p in priors_used.items()) if priors_used else "as in the run spec") + ".",
        *(sampling or ["5. **Diagnostics gate** (Vehtari et al. 2021): failing fits are retried and then flagged."]),
        "",
        "## Reconstruction check",
        "",
        check_table(check_csv) if check_csv and Path(check_csv).exists() else "_No check table found._",
        "",
        "## Results",
        "",
        "Posterior medians with 95% equal-tailed credible intervals. ΔS and ΔRMST are "
        f"{trial.arms[trial.treatment_arm].name} minus {trial.arms[trial.reference_arm].name}; RMST in {trial.time_unit}.",
        "",
        results_table(results, trial, milestones, horizons),
        "",
        "### HR over time (time-varying models; per interval)",
        "",
        interval_hr_table(intervals, trial),
        "",
    ]
    for title, body in (extra_sections or {}).items():
        parts += [f"### {title}", "", body, ""]
    parts += [
        "## Diagnostics",
        "",
        diagnostics_table(diagnostics),
        "",
        "## Figures",
        "",
    ]
    for stem, caption in FIGURES:
        if (figures_dir / f"{stem}.png").exists():
            parts.append(f"- [{stem}]({rel_fig / (stem + '.png')}) ([PDF]({rel_fig / (stem + '.pdf')})): {caption}")
    parts += [
        "",
        "## What reconstructed data can and cannot support",
        "",
        limits_text(trial),
        "",
        "## Reproducibility",
        "",
        "```",
        *[f"{k}: {v}" for k, v in repro.items()],
        "```",
        "",
        "## References",
        "",
        "- Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of survival data: reconstructing the data from published Kaplan-Meier survival curves. BMC Med Res Methodol 2012;12:9.",
        "- Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials and Health-Care Evaluation. Wiley, 2004.",
        "- Vehtari A, Gelman A, Simpson D, Carpenter B, Bürkner PC. Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of MCMC. Bayesian Analysis 2021;16(2):667-718.",
        "- Vehtari A, Gelman A, Gabry J. Practical Bayesian model evaluation using leave-one-out cross-validation and WAIC. Stat Comput 2017;27:1413-1432.",
    ]
    if trial.citation:
        parts.append(f"- {trial.citation}")
    return "\n".join(parts) + "\n"


def limits_text(trial: Trial) -> str:
    """What any reconstruction-based reanalysis cannot support (true for every trial)."""
    curves = all(a.curve is not None for a in trial.arms.values())
    return "\n".join([
        "- The reconstruction reproduces the published numbers, not the patients: covariates, "
        "stratification, subgroups and any adjustment in the published analysis are not available.",
        "- " + ("The digitized curves fix the shape of the survival curves up to reading error."
                if curves else
                "Between the published time points the shape of the curves is an assumption of the "
                "reconstruction: hazard ratios in stretches marked *interpolated* rest on it."),
        "- The replicates' spread carries the reconstruction's uncertainty into the pooled posteriors; "
        "it cannot carry errors in the published numbers themselves.",
        "- A posterior probability under a stated prior is a summary of evidence, not a confirmatory "
        "test; the design (phase, endpoint hierarchy, multiplicity) is the publication's to state.",
    ])


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(target).resolve(), Path(start).resolve())
