"""Draws and statistics behind the figures: posterior draws from fits (thinned
for bands), survival, HR-over-time and RMST-difference draws, Kaplan-Meier
curves, and the forest plot's Cox reference fit.

A *fit* (anything with an ``idata`` attribute, such as
:class:`~kmbayes.fitting.FitResult`) goes through :mod:`kmbayes.estimands`;
anything else is taken as already computed draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..km import km as km_fit
from ..trial import Trial

MAX_BAND_DRAWS = 1000
"""Draws used for bands and curves. 1000 equally spaced draws put a 95% band
edge within ~1% (in probability) of the full-sample one, far below what the
eye can see, at a fraction of the cost of 4000-8000 draws."""


def km_curve(time: np.ndarray, event: np.ndarray) -> dict[str, np.ndarray]:
    """Kaplan-Meier step function (from :mod:`kmbayes.km`) with censoring ticks."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    fit = km_fit(time, event)
    keep = (fit.d > 0) | (fit.time == 0)  # the curve only changes at deaths
    t_step, s_step = fit.time[keep], fit.surv[keep]
    if s_step.size == 0 or s_step[0] < 1.0:  # start the step function at (0, 1)
        t_step, s_step = np.concatenate([[0.0], t_step]), np.concatenate([[1.0], s_step])
    cens = np.sort(time[~event])
    return {"time": t_step, "surv": s_step, "cens_time": cens,
            "cens_surv": np.asarray(fit.survival(cens), float)}


def km_rmst(km: dict[str, np.ndarray], horizons: np.ndarray) -> np.ndarray:
    """Area under a KM step function up to each horizon (vectorised)."""
    t, s = km["time"], km["surv"]
    # Cumulative area at each step start; the area to h adds the partial step.
    area = np.concatenate([[0.0], np.cumsum(np.diff(t) * s[:-1])])
    i = np.searchsorted(t, horizons, side="right") - 1
    return area[i] + (horizons - t[i]) * s[i]


def primary(ipd: Any) -> Any:
    """The first reconstruction replicate if the IPD holds several.

    Pooling replicates would draw one KM curve from K copies of each patient,
    which overstates the at-risk numbers K-fold.
    """
    if "replicate" in getattr(ipd, "columns", ()):
        return ipd[ipd["replicate"] == ipd["replicate"].min()]
    return ipd


def arm_ipd(ipd: Any, arm: str) -> tuple[np.ndarray, np.ndarray]:
    ipd = primary(ipd)
    sub = ipd[ipd["arm"] == arm]
    if len(sub) == 0:
        raise ValueError(f"the IPD has no rows for arm {arm!r}")
    return sub["time"].to_numpy(float), sub["event"].to_numpy().astype(int)


def is_fit(obj: Any) -> bool:
    return hasattr(obj, "idata")


def idata_of(obj: Any) -> Any:
    return obj.idata if is_fit(obj) else obj


def thin(obj: Any, max_draws: int = MAX_BAND_DRAWS) -> Any:
    """A view of a fit that :mod:`estimands` sees with at most ``max_draws`` draws.

    Bands and curves are computed per draw and time point, so their cost is
    linear in the draws; equally spaced draws keep every chain represented.
    Anything that is not a fit is returned unchanged.
    """
    if not is_fit(obj) or not hasattr(obj, "model"):
        return obj
    from .. import estimands

    post = estimands.posterior_arrays(obj)
    n = next(iter(post.values())).shape[0] if post else 0
    if n <= max_draws:
        return obj
    idx = np.linspace(0, n - 1, max_draws).round().astype(int)
    return SimpleNamespace(
        model=obj.model, ctx=getattr(obj, "ctx", None), data=getattr(obj, "data", None),
        prior=getattr(obj, "prior", None), idata=obj.idata,
        gate_passed=getattr(obj, "gate_passed", True),
        _post_cache={k: v[idx] for k, v in post.items()},
    )


def hr_draws(obj: Any) -> np.ndarray:
    """Flattened HR draws from an array (HR scale), an InferenceData or a fit.

    A fit goes through :func:`kmbayes.estimands.hr_draws`, which knows what
    "the" HR of each model is. A bare InferenceData is read directly:
    ``log_hr`` if it is scalar per draw, else ``log_hr_mean`` (time-varying
    models).
    """
    if is_fit(obj):
        from .. import estimands

        return np.asarray(estimands.hr_draws(obj), float).ravel()
    if "posterior" in getattr(obj, "children", {}):
        post = obj["posterior"]
        for name in ("log_hr", "log_hr_mean"):
            if name in post and post[name].ndim == 2:
                return np.exp(post[name].values.ravel())
        if "hr" in post and post["hr"].ndim == 2:
            return post["hr"].values.ravel()
        raise ValueError("posterior has no scalar 'log_hr', 'log_hr_mean' or 'hr'")
    return np.asarray(obj, float).ravel()


def draws_times(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    draws, times = obj
    draws = np.asarray(draws, float)
    if draws.ndim > 2:  # (chain, draw, time) -> (sample, time)
        draws = draws.reshape(-1, draws.shape[-1])
    return draws, np.asarray(times, float)


def survival(obj: Any, times: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if is_fit(obj):
        from .. import estimands

        obj = estimands.survival_draws(thin(obj), times)
    return {arm: draws_times(v) for arm, v in obj.items()}


def hr_time(obj: Any, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if is_fit(obj):
        from .. import estimands

        obj = estimands.hr_over_time(thin(obj), times)
    return draws_times(obj)


def rmst_diff(obj: Any, trial: Trial, horizons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMST difference draws (treatment - reference), shape (sample, horizon).

    For a fit, survival is evaluated once on a grid of ~400 points plus the
    model's cut points (where piecewise curves kink) and the horizons, and
    integrated cumulatively by the trapezoid rule -- the rule
    :func:`kmbayes.estimands.rmst_draws` uses, in one pass for all horizons.
    With a step of horizon/400 the trapezoid error is below 1e-4 relative.
    """
    if not is_fit(obj):
        return draws_times(obj)
    horizons = np.asarray(horizons, float)
    grid = np.linspace(0.0, float(horizons.max()), 401)
    cuts = np.asarray((getattr(obj, "ctx", None) or {}).get("cuts") or (), float)
    grid = np.union1d(grid, np.concatenate([cuts[(cuts > 0) & (cuts < grid[-1])], horizons]))
    surv = survival(obj, grid)
    (d_trt, _), (d_ref, _) = surv[trial.treatment_arm], surv[trial.reference_arm]
    # The trapezoid rule is linear in S, so integrate the difference once.
    d = d_trt - d_ref
    area = np.concatenate(
        [np.zeros((d.shape[0], 1)), np.cumsum(0.5 * (d[:, 1:] + d[:, :-1]) * np.diff(grid), axis=1)],
        axis=1,
    )
    return area[:, np.searchsorted(grid, horizons)], horizons


def cox_efron(time: np.ndarray, event: np.ndarray, x: np.ndarray, tol: float = 1e-10) -> tuple[float, float]:
    """Cox partial-likelihood log HR and SE for one covariate, Efron ties.

    The forest plot's frequentist reference row. It matches
    :func:`kmbayes.estimands.cox_likelihood` (lifelines' ``CoxPHFitter``,
    whose default is Efron) to ~1e-8, without importing lifelines, whose
    import alone takes longer than drawing all the figures.

    Parameters
    ----------
    time, event, x : array
        Follow-up times, event indicators (1 = death) and the covariate
        (1 = treatment arm).
    tol : float
        Newton steps stop below this change in the log HR.

    Returns
    -------
    (float, float)
        Log HR and its SE (inverse observed information at the maximum).
    """
    t = np.asarray(time, float)
    d = np.asarray(event, float) > 0
    x = np.asarray(x, float)
    ev_times = np.unique(t[d])
    if ev_times.size == 0 or np.ptp(x) == 0:
        return math.nan, math.inf
    # Event-time groups: risk sets are everyone with t >= t_j.
    at_risk = t[None, :] >= ev_times[:, None]  # (J, n)
    dies = d[None, :] & (t[None, :] == ev_times[:, None])
    n_d = dies.sum(axis=1)
    # Efron: the l-th of d_j tied deaths removes l/d_j of the dying group's weight.
    lmax = int(n_d.max())
    frac = np.arange(lmax)[None, :] / n_d[:, None]  # (J, L)
    valid = np.arange(lmax)[None, :] < n_d[:, None]
    beta = 0.0
    for _ in range(100):
        w = np.exp(beta * x)
        s0r, s1r = at_risk @ w, at_risk @ (x * w)
        s0d, s1d = dies @ w, dies @ (x * w)
        # Cells past a group's d_j are padding: give them a harmless denominator.
        a = np.where(valid, s0r[:, None] - frac * s0d[:, None], 1.0)
        b = np.where(valid, s1r[:, None] - frac * s1d[:, None], 0.0)
        c = np.where(valid, (at_risk @ (x * x * w))[:, None] - frac * (dies @ (x * x * w))[:, None], 0.0)
        score = float((dies @ x).sum() - (b / a).sum())
        info = float((c / a - (b / a) ** 2).sum())
        if not info > 0:
            return math.nan, math.inf
        step = score / info
        beta += step
        if abs(step) < tol:
            break
    return beta, 1.0 / math.sqrt(info)


def prior_mu_sigma(spec: Any) -> tuple[float, float]:
    if hasattr(spec, "mu") and hasattr(spec, "sigma"):
        return float(spec.mu), float(spec.sigma)
    mu, sigma = spec
    return float(mu), float(sigma)


def quantiles(draws: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    return np.quantile(draws, qs, axis=0)


def hr_summary(draws: np.ndarray, qs: Sequence[float] = (0.5, 0.025, 0.975)) -> np.ndarray:
    """Quantiles of HR draws that may hold 0 or infinity (a one-patient arm).

    Linear interpolation between two infinite draws gives NaN (inf - inf);
    there the nearest draw is the answer.
    """
    with np.errstate(invalid="ignore"):
        q = np.quantile(draws, qs)
    bad = np.isnan(q)
    if bad.any():
        q[bad] = np.quantile(draws, np.asarray(qs)[bad], method="nearest")
    return q
