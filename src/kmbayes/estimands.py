"""Estimands from posterior draws: HRs, survival, RMST, medians, probabilities.

Every function takes a fit (:class:`kmbayes.fitting.FitResult` or anything
with ``.model`` (family id), ``.idata``, ``.data`` and ``.ctx`` (``t_ref``,
``cuts``)) and works on the flattened posterior draws with NumPy, so nothing
is compiled. Intervals are equal-tailed 95% posterior intervals and point
estimates posterior medians.

``hr`` is exp of the log HR the prior set acts on, whose meaning depends on
the family (``Family.effect_name``): the proportional-hazards HR; for the
time-varying families the *event-weighted average HR* (each interval's log HR
weighted by its share of the observed deaths); for the cure model the HR
among the uncured. Family-specific estimands follow (per-interval HRs
``hr_<from>_<to>``, early/late HRs and their ratio with P(ratio < 1), cure
fractions and their difference with P(difference > 0)).

References
----------
Royston P, Parmar MKB. Restricted mean survival time: an alternative to the
hazard ratio for the design and analysis of randomized trials with a
time-to-event outcome. BMC Med Res Methodol. 2013;13:152.
Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials
and Health-Care Evaluation. Wiley; 2004 (triplot, sec. 3.6).
Vehtari A, Gelman A, Simpson D, Carpenter B, Buerkner P-C. Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of
MCMC. Bayesian Anal. 2021;16(2):667-718 (Monte Carlo standard errors).
"""

from __future__ import annotations

import math

import numpy as np

from . import families

LEVEL = 0.95
#: thresholds of P(HR < x) when a caller gives none (direct use of
#: :func:`summarise`). A run passes ``hr_thresholds(spec.mcid_hr)`` instead, so
#: its probabilities follow its minimal clinically important difference.
HR_THRESHOLDS = (1.0, 0.8, 0.7)


def hr_thresholds(mcid_hr: float | None) -> tuple[float, ...]:
    """The thresholds x of P(HR < x) for a run: 1 (any benefit) and the MCID.

    Parameters
    ----------
    mcid_hr : float or None
        The run spec's minimal clinically important difference (HR scale);
        None gives :data:`HR_THRESHOLDS`.

    Returns
    -------
    tuple of float
        ``(1.0, mcid_hr)``; the quantity names are ``p_hr_lt_1`` and
        ``p_hr_lt_<mcid:g>`` (e.g. ``p_hr_lt_0.8``).
    """
    if mcid_hr is None:
        return HR_THRESHOLDS
    return (1.0, float(mcid_hr)) if float(mcid_hr) != 1.0 else (1.0,)


# --------------------------------------------------------------------------- draws


def posterior_arrays(fit) -> dict[str, np.ndarray]:
    """Posterior variables flattened over chain and draw: name -> (S, ...)."""
    cache = getattr(fit, "_post_cache", None)
    if cache is not None:
        return cache
    post = fit.idata["posterior"]
    out = {}
    for name, da in post.data_vars.items():
        v = np.asarray(da.values, dtype=float)
        out[name] = v.reshape(v.shape[0] * v.shape[1], *v.shape[2:])
    try:
        object.__setattr__(fit, "_post_cache", out)
    except (AttributeError, TypeError):
        pass
    return out


def _family(fit):
    return families.get(fit.model)


def log_hr_draws(fit) -> np.ndarray:
    """Draws of the headline log HR (treatment vs reference), shape (S,)."""
    return _family(fit).log_hr(posterior_arrays(fit))


def hr_draws(fit) -> np.ndarray:
    """Draws of the headline HR, shape (S,) (mean HR for ``piecewise_tv``)."""
    return np.exp(log_hr_draws(fit))


def hr_over_time(fit, times) -> tuple[np.ndarray, np.ndarray]:
    """HR(t) draws, shape (S, T), and the times (constant for PH models)."""
    t = np.asarray(times, float)
    return np.exp(_family(fit).log_hr_at(posterior_arrays(fit), t, fit.ctx)), t


def interval_hr_draws(fit) -> dict[str, np.ndarray]:
    """Per-interval HR draws ``{"hr_0_12": (S,), ...}`` (piecewise families)."""
    fam = _family(fit)
    if not fam.uses_cuts:
        return {}
    lh = fam.log_hr_by_interval(posterior_arrays(fit), fit.ctx)
    labels = families.interval_labels(fit.ctx["cuts"])
    return {f"hr_{lab}": np.exp(lh[:, j]) for j, lab in enumerate(labels)}


def survival_draws(fit, times) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Survival draws per arm: ``{arm_id: (draws (S, T), times)}``."""
    t = np.asarray(times, float)
    fam, post = _family(fit), posterior_arrays(fit)
    return {
        arm_id: (np.exp(-fam.cumhaz(post, t, k, fit.ctx)), t)
        for k, arm_id in enumerate(fit.data.arm_ids)
    }


def rmst_draws(fit, horizon: float, n_grid: int = 401) -> dict[str, np.ndarray]:
    """Restricted mean survival time to ``horizon`` per arm, and the difference.

    Returns ``{reference_id: (S,), treatment_id: (S,), "difference":
    treatment - reference}``. The integral of S(t) over [0, horizon] uses the trapezoid
    rule on ``n_grid`` points plus the cut points (where a piecewise S has a
    kink): the error is about h^2 max|S''| horizon / 12, below 1e-4 relative
    for survival curves on a months scale (h = horizon / 400).
    """
    grid = np.linspace(0.0, float(horizon), n_grid)
    cuts = np.asarray(fit.ctx.get("cuts") or (), float)
    grid = np.union1d(grid, cuts[(cuts > 0) & (cuts < horizon)])
    out = {}
    for arm_id, (s, t) in survival_draws(fit, grid).items():
        out[arm_id] = np.trapezoid(s, t, axis=1)
    ref, trt = fit.data.arm_ids
    out["difference"] = out[trt] - out[ref]
    return out


def median_draws(fit) -> dict[str, np.ndarray]:
    """Median survival draws per arm ``{arm_id: (S,)}`` (``inf`` if never reached)."""
    fam, post = _family(fit), posterior_arrays(fit)
    return {arm_id: fam.median(post, k, fit.ctx) for k, arm_id in enumerate(fit.data.arm_ids)}


def prior_spec(fit) -> tuple[float, float]:
    """(mu, sigma) of the fit's normal prior on the (mean) log HR (for a triplot)."""
    return float(fit.prior.mu), float(fit.prior.sigma)


def cox_likelihood(data) -> tuple[float, float]:
    """Cox partial-likelihood log HR and SE of the data (the triplot's likelihood).

    Breslow ties (lifelines' default is Efron; both agree closely here).
    """
    import pandas as pd
    from lifelines import CoxPHFitter

    df = pd.DataFrame({"time": data.time, "event": data.event, "x": data.arm.astype(float)})
    cph = CoxPHFitter()
    cph.fit(df, duration_col="time", event_col="event")
    return float(cph.params_["x"]), float(cph.standard_errors_["x"])


# --------------------------------------------------------------------------- summaries


def summarise_draws(x: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(median, lower, upper) of draws: equal-tailed ``level`` interval."""
    x = np.asarray(x, float)
    a = (1 - level) / 2
    q = np.quantile(x, [0.5, a, 1 - a])
    return float(q[0]), float(q[1]), float(q[2])


def headline_mcse(fit, thresholds=HR_THRESHOLDS) -> dict[str, float]:
    """Monte Carlo SEs of the headline quantities: ``hr`` (its posterior median)
    and ``p_hr_lt_<x>`` (the mean of the indicator HR < x).

    From the draws' chain structure (ESS-based, Vehtari et al. 2021). NaN for
    a probability whose draws all fall on one side (0 or 1: no estimate of
    its error). For a pooled fit the chains come from different
    reconstructions, whose spread ArviZ counts against the ESS, so the SEs
    are conservative there.
    """
    import arviz as az

    def mcse(x, method):  # ArviZ returns a 1-element array for a (chain, draw) array
        return float(np.ravel(az.mcse(x, method=method))[0])

    lh = np.asarray(fit.idata["posterior"][_family(fit).log_hr_var].values, float)  # (chain, draw)
    out = {"hr": mcse(np.exp(lh), "median")}
    for thr in thresholds:
        below = (lh < math.log(thr)).astype(float)
        out[f"p_hr_lt_{thr:g}"] = mcse(below, "mean") if 0.0 < below.mean() < 1.0 else math.nan
    return out


def _fmt_t(t: float) -> str:
    return f"{t:g}"


def _prob_row(q: str, indicator: np.ndarray) -> dict:
    ok = np.isfinite(indicator) if indicator.dtype.kind == "f" else np.ones(indicator.shape, bool)
    return {"quantity": q, "estimate": float(np.mean(indicator[ok])) if ok.any() else math.nan,
            "lower": math.nan, "upper": math.nan, "mcse": math.nan}


def summarise(fit, milestones=(36, 60, 96), rmst_horizons=(60, 96), thresholds=HR_THRESHOLDS) -> list[dict]:
    """All estimands of one fit as long-form rows.

    Each row is ``{"quantity", "estimate", "lower", "upper", "mcse"}``;
    probabilities have ``lower``/``upper`` = NaN (written empty); ``mcse`` is
    the Monte Carlo SE of ``estimate`` for ``hr`` and the probabilities
    (:func:`headline_mcse`), NaN for the rest. ``thresholds``: the x of
    P(HR < x) (:func:`hr_thresholds` of the run's MCID). Quantities: ``hr``,
    ``p_hr_lt_<x>`` per threshold, ``hr_<from>_<to>``
    (piecewise_tv), ``surv_<arm>_<t>``, ``surv_diff_<t>``,
    ``rmst_<arm>_<h>``, ``rmst_diff_<h>``, ``median_<arm>``.
    """
    rows = []
    mcse = headline_mcse(fit, thresholds)

    def add(q, x):
        e, lo, hi = summarise_draws(x)
        rows.append({"quantity": q, "estimate": e, "lower": lo, "upper": hi,
                     "mcse": mcse.get(q, math.nan)})

    hr = hr_draws(fit)
    add("hr", hr)
    for thr in thresholds:
        q = f"p_hr_lt_{thr:g}"
        rows.append({"quantity": q, "estimate": float(np.mean(hr < thr)), "lower": math.nan,
                     "upper": math.nan, "mcse": mcse[q]})
    if hasattr(_family(fit), "log_hr_by_interval") and fit.model != "piecewise_ph":
        for q, x in interval_hr_draws(fit).items():
            add(q, x)
    for q, x in _family(fit).family_estimands(posterior_arrays(fit), fit.data, fit.ctx).items():
        add(q, x)
        if q == "hr_ratio_late_early":
            rows.append(_prob_row("p_hr_ratio_late_early_lt_1", x < 1.0))
        elif q == "cure_difference":
            rows.append(_prob_row("p_cure_difference_gt_0", x > 0.0))
    ref, trt = fit.data.arm_ids
    if milestones:
        surv = survival_draws(fit, milestones)
        for j, t in enumerate(milestones):
            for arm_id in (ref, trt):
                add(f"surv_{arm_id}_{_fmt_t(t)}", surv[arm_id][0][:, j])
        for j, t in enumerate(milestones):
            add(f"surv_diff_{_fmt_t(t)}", surv[trt][0][:, j] - surv[ref][0][:, j])
    for h in rmst_horizons or ():
        r = rmst_draws(fit, h)
        for arm_id in (ref, trt):
            add(f"rmst_{arm_id}_{_fmt_t(h)}", r[arm_id])
        add(f"rmst_diff_{_fmt_t(h)}", r["difference"])
    for arm_id, m in median_draws(fit).items():
        add(f"median_{arm_id}", m)
    return rows


def interval_width(x: np.ndarray, level: float = LEVEL) -> float:
    """Width of the equal-tailed interval of log-scale-free draws."""
    _, lo, hi = summarise_draws(x, level)
    return hi - lo
