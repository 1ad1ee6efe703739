"""Model-free anchors: Kaplan-Meier differences with frequentist and
Bayesian-bootstrap intervals.

The model posteriors (Weibull PH, piecewise PH/TV) summarise the treatment
effect through a parametric or semi-parametric lens. These anchors give the
same quantities -- the survival difference ΔS(t) = S_trt(t) - S_ref(t) at
milestones and the RMST difference ΔRMST(τ) -- straight from the
Kaplan-Meier curves of the (reconstructed) IPD, so a reader can see how far
the models move away from the data:

* frequentist: KM point estimate with a Wald 95% interval, the Greenwood
  variance for ΔS and the standard (Klein / Royston-Parmar) variance
  ``sum_j A_j^2 d_j / (n_j (n_j - d_j))``, ``A_j = int_{t_j}^{τ} S(u) du``, for
  ΔRMST, the two arms independent;
* Bayesian bootstrap (Rubin 1981): per arm, Dirichlet(1, ..., 1) weights on
  the patients and the weighted Kaplan-Meier curve (weighted numbers at risk
  and weighted deaths). Its draws are a posterior of the same quantities
  under a nonparametric model, on the same footing as the model posteriors
  (equal-tailed intervals, P(Δ > 0)).

Beyond the last observed time of an arm the curve is held flat (as lifelines'
``KaplanMeierFitter.predict`` does), so a horizon past the follow-up gives
an RMST that assumes no further deaths: keep horizons inside follow-up.

References
----------
Rubin DB. The Bayesian bootstrap. Ann Stat. 1981;9:130-134.
Lo AY. A Bayesian bootstrap for censored data. Ann Stat. 1993;21:100-123.
Royston P, Parmar MKB. Restricted mean survival time: an alternative to the
hazard ratio for the design and analysis of randomized trials with a
time-to-event outcome. BMC Med Res Methodol. 2013;13:152.
Klein JP, Moeschberger ML. Survival Analysis. 2nd ed. Springer; 2003. sec. 4.5
(variance of the restricted mean).
"""

from __future__ import annotations

import math

import numpy as np

from .km import Z95, km

LEVEL = 0.95


def _fmt_t(t: float) -> str:
    return f"{t:g}"


# --------------------------------------------------------------------------- frequentist


def km_rmst(time, event, horizon: float) -> tuple[float, float]:
    """RMST of the Kaplan-Meier curve up to ``horizon`` and its variance.

    Parameters
    ----------
    time, event : array_like
        One arm's follow-up times and event indicators.
    horizon : float
        Upper limit τ of the integral.

    Returns
    -------
    (rmst, variance) : tuple of float
        ``int_0^τ S(u) du`` of the step curve and the Greenwood-type variance
        ``sum_{t_j <= τ} A_j^2 d_j / (n_j (n_j - d_j))`` (terms with
        ``n_j = d_j`` set to 0, as in the Greenwood sum of :func:`kmbayes.km.km`).

    Notes
    -----
    lifelines' ``restricted_mean_survival_time(..., return_variance=True)``
    returns the variance of ``min(T, τ)`` in the population, not of the
    estimator; without censoring the two agree up to the factor ``n``
    (checked in the tests).
    """
    f = km(time, event)
    tau = float(horizon)
    # Step curve: value f.surv[k] on [f.time[k], f.time[k+1]).
    edges = np.append(f.time, np.inf)
    width = np.clip(np.minimum(edges[1:], tau) - np.minimum(edges[:-1], tau), 0.0, None)
    area = f.surv * width  # area of each step below τ
    rmst = float(area.sum())
    # A_j = area after t_j = total minus the area up to and including step j-1.
    tail = rmst - np.concatenate(([0.0], np.cumsum(area)[:-1]))  # int_{t_j}^{τ} S
    with np.errstate(divide="ignore", invalid="ignore"):
        term = f.d / (f.n_at_risk * (f.n_at_risk - f.d))
    term[~np.isfinite(term)] = 0.0
    keep = f.time <= tau
    var = float(np.sum((tail**2 * term)[keep]))
    return rmst, var


def km_differences(data, milestones=(), horizons=()) -> list[dict]:
    """KM ΔS(t) and ΔRMST(τ) (treatment - reference) with Wald 95% CIs.

    Returns rows ``{"quantity", "estimate", "se", "lower", "upper"}`` with
    quantities ``delta_s_<t>`` and ``delta_rmst_<τ>``.
    """
    arms = [(data.time[data.arm == k], data.event[data.arm == k]) for k in (0, 1)]
    rows = []
    fits = [km(t, e) for t, e in arms]
    for t in milestones:
        s = [float(f.survival(t)) for f in fits]
        # Greenwood: Var S(t) = S(t)^2 sum d / (n (n - d)).
        v = [si**2 * float(f.gw[i]) if (i := int(f._index(t))) >= 0 else 0.0
             for si, f in zip(s, fits)]
        rows.append(_wald(f"delta_s_{_fmt_t(t)}", s[1] - s[0], v[0] + v[1]))
    for h in horizons:
        (r0, v0), (r1, v1) = (km_rmst(t, e, h) for t, e in arms)
        rows.append(_wald(f"delta_rmst_{_fmt_t(h)}", r1 - r0, v0 + v1))
    return rows


def _wald(q: str, est: float, var: float) -> dict:
    se = math.sqrt(var)
    return {"quantity": q, "estimate": est, "se": se, "lower": est - Z95 * se, "upper": est + Z95 * se}


# --------------------------------------------------------------------------- Bayesian bootstrap


def weighted_km_draws(time, event, weights, milestones=(), horizons=()):
    """Weighted Kaplan-Meier S(t) and RMST(τ) for many weight vectors at once.

    Parameters
    ----------
    time, event : array_like, shape (n,)
    weights : ndarray, shape (B, n)
        Non-negative weights per draw (each row Dirichlet for the Bayesian
        bootstrap).
    milestones, horizons : sequence of float

    Returns
    -------
    surv : ndarray, shape (B, len(milestones))
    rmst : ndarray, shape (B, len(horizons))

    Notes
    -----
    Vectorised over draws, no Python loop: patients are sorted by time once,
    the weights' cumulative sums along that order are read off at the end of
    each run of tied times (weight leaving and weighted deaths per distinct
    time), the weighted number at risk is the reverse cumulative sum and the
    curve the cumulative product of ``1 - deaths / at risk``. Memory is
    O(draws x n).
    """
    t = np.asarray(time, float)
    e = np.asarray(event, float)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    w = np.asarray(weights, float)[:, order]
    ut, last = np.unique(ts[::-1], return_index=True)  # first hit in reversed = last in sorted
    last = ts.size - 1 - last  # index of the last patient at each distinct time
    cw = np.cumsum(w, axis=1)[:, last]
    cd = np.cumsum(w * e[order], axis=1)[:, last]
    tot = np.diff(cw, axis=1, prepend=0.0)  # (B, K) weight leaving at each time
    dw = np.diff(cd, axis=1, prepend=0.0)  # (B, K) weighted deaths
    at_risk = cw[:, -1:] - cw + tot  # weight still at risk just before each time
    with np.errstate(divide="ignore", invalid="ignore"):
        hz = np.where(at_risk > 0, dw / at_risk, 0.0)
    surv = np.cumprod(1.0 - hz, axis=1)  # value just after each ut
    ones = np.ones((w.shape[0], 1))
    s_steps = np.concatenate([ones, surv], axis=1)  # on [0, ut_0), [ut_0, ut_1), ...
    edges = np.concatenate(([0.0], ut, [np.inf]))
    idx = np.searchsorted(ut, np.asarray(milestones, float), side="right")
    s_at = s_steps[:, idx]
    rm = np.empty((w.shape[0], len(horizons)))
    for j, h in enumerate(horizons):
        width = np.clip(np.minimum(edges[1:], h) - np.minimum(edges[:-1], h), 0.0, None)
        rm[:, j] = s_steps @ width
    return s_at, rm


def bb_draws(data, milestones=(), horizons=(), draws: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Bayesian-bootstrap draws of ΔS(t) and ΔRMST(τ) (treatment - reference).

    Dirichlet(1, ..., 1) weights are drawn independently within each arm
    (randomisation fixes the arm sizes), as normalised Exp(1) variables.

    Returns
    -------
    dict
        ``{"delta_s_<t>": (draws,), "delta_rmst_<τ>": (draws,)}``.
    """
    rng = np.random.default_rng(seed)
    per_arm = []
    for k in (0, 1):
        m = data.arm == k
        g = rng.standard_exponential((draws, int(m.sum())))
        w = g / g.sum(axis=1, keepdims=True)
        per_arm.append(weighted_km_draws(data.time[m], data.event[m], w, milestones, horizons))
    (s0, r0), (s1, r1) = per_arm
    out = {f"delta_s_{_fmt_t(t)}": s1[:, j] - s0[:, j] for j, t in enumerate(milestones)}
    out.update({f"delta_rmst_{_fmt_t(h)}": r1[:, j] - r0[:, j] for j, h in enumerate(horizons)})
    return out


def km_anchors(data, milestones=(36, 60, 96), horizons=(60, 96), draws: int = 4000,
               seed: int = 0, level: float = LEVEL) -> list[dict]:
    """KM anchors with both interval types, one row per quantity.

    Parameters
    ----------
    data : kmbayes.data.SurvivalData
        Arm 0 reference, arm 1 treatment.
    milestones : sequence of float
        Times of ΔS(t).
    horizons : sequence of float
        Horizons τ of ΔRMST(τ).
    draws, seed : int
        Bayesian-bootstrap draws and RNG seed (same seed, same rows).
    level : float
        Level of the Bayesian-bootstrap interval (the Wald interval is 95%).

    Returns
    -------
    list of dict
        ``{"quantity" ("delta_s_36", "delta_rmst_60", ...), "estimate"
        (KM), "se", "lower", "upper" (Wald 95%), "bb_median", "bb_lower",
        "bb_upper" (equal-tailed Bayesian-bootstrap interval), "p_gt_0"
        (Bayesian-bootstrap P(Δ > 0))}``.

    References
    ----------
    Rubin DB. The Bayesian bootstrap. Ann Stat. 1981;9:130-134.
    Royston P, Parmar MKB. BMC Med Res Methodol. 2013;13:152.
    """
    rows = km_differences(data, milestones, horizons)
    bb = bb_draws(data, milestones, horizons, draws=draws, seed=seed)
    a = (1.0 - level) / 2.0
    for row in rows:
        x = bb[row["quantity"]]
        med, lo, hi = np.quantile(x, [0.5, a, 1.0 - a])
        row.update(bb_median=float(med), bb_lower=float(lo), bb_upper=float(hi),
                   p_gt_0=float(np.mean(x > 0)))
    return rows
