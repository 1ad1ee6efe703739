"""Non-proportional hazards with a smooth log HR(t) and a smooth baseline.

Time is cut into a fine grid (:func:`fine_cuts`): ``N_FINE`` = 16 equal
intervals from 0 to the last finite cut point of the run's ``cuts`` (CLOCC:
0-96 months in 6-month steps) and one open interval after it. The grid
depends only on ``cuts``, never on the data, so one compiled model serves
every prior, replicate and trial with the same cut points.

Both the log baseline hazard and the log HR are first-order random walks
over the grid, with the SD of the step between adjacent intervals estimated:

    v_1 = 0, v_j = v_{j-1} + tau_base z_j          (z ~ Normal(0, 1))
    log lambda_j = log_base_avg + v_j - sum_i omega_i v_i
    w_1 = 0, w_j = w_{j-1} + tau_hr u_j             (u ~ Normal(0, 1))
    log HR_j = log_hr_avg + w_j - sum_i omega_i w_i

so tau_hr -> 0 is proportional hazards (a flat HR(t)), and with tau_hr ~
HalfNormal(tau_scale / 2) the data decide how much the HR moves. The
non-centred form (z, u standard normal) avoids the funnel at small tau.
tau_scale / 2 per 6-month step gives a random-walk drift over the 16 steps
with half-normal scale 2 tau_scale = 1 on the log HR, about what
``piecewise_tv``'s prior allows over its 5 coarse steps (sqrt(5) x 0.5).

The event-weighted average HR
-----------------------------
omega_j is the share of all observed deaths (both arms) that fall in grid
interval j -- fixed weights, computed from the data (``pm.Data``, so they
swap with the data set). By construction

    log_hr_avg = sum_j omega_j log HR_j,

the *event-weighted average log HR*: the log HR averaged over follow-up with
each period weighted by how many deaths it holds, which is roughly what a Cox
model's single HR estimates when hazards are not proportional (Schemper,
Wakounig and Heinze 2009 discuss such averages). The prior set (sceptical,
enthusiastic, ...) is put on ``log_hr_avg`` so that "how sceptical" means
the same thing as in the PH models; the headline HR of this model is
exp(log_hr_avg), reported as ``hr_avg_event_weighted``.

Late versus early
-----------------
``family_estimands`` also gives the event-weighted average HR before and
after a split time (``ctx["split"]``, default the middle finite cut: CLOCC
36 months, where the curves part) and their ratio HR_late / HR_early with
P(ratio < 1): the model's answer to "does the benefit appear late?". A grid
interval counts as late if its midpoint is at or after the split.

References
----------
Fahrmeir L, Lang S. Bayesian inference for generalized additive mixed models
based on Markov random field priors. J R Stat Soc C. 2001;50:201-20
(random-walk smoothing priors).
Brilleman SL, Elci EM, Novik JB, Wolfe R. Bayesian survival analysis using the
rstanarm R package. arXiv:2002.09633; 2020 (time-varying effects, random walk).
Schemper M, Wakounig S, Heinze G. The estimation of average hazard ratios by
weighted Cox regression. Stat Med. 2009;28:2473-89.
Ibrahim JG, Chen M-H, Sinha D. Bayesian Survival Analysis. Springer; 2001. sec. 3.1.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ._common import (
    DEFAULT_CUTS,
    BaselinePrior,
    Family,
    censored_loglik,
    check_cuts,
    event_weights,
    interval_labels,
    piecewise_cumhaz,
    piecewise_median,
    piecewise_pointwise,
    tv_estimands,
)

#: finite intervals of the fine grid (plus one open interval after the last cut)
N_FINE = 16
#: random-walk step SD scale as a fraction of BaselinePrior.tau_scale (see docstring)
STEP_SCALE = 0.5


def fine_cuts(cuts) -> tuple[float, ...]:
    """The fine grid: ``N_FINE`` equal steps to the last finite cut, then open."""
    c = check_cuts(cuts)
    top = max(x for x in c if math.isfinite(x))
    if top <= 0:
        raise InputError("models.cuts", "smooth_tv needs a finite cut point > 0 to span the follow-up")
    return tuple(float(x) for x in np.linspace(0.0, top, N_FINE + 1)) + (math.inf,)


def default_split(cuts) -> float:
    """The middle finite cut point > 0 (lower middle for an even count); CLOCC: 36."""
    inner = [x for x in check_cuts(cuts) if 0 < x < math.inf]
    return float(inner[(len(inner) - 1) // 2]) if inner else fine_cuts(cuts)[N_FINE // 2]


class SmoothTV(Family):
    name = "smooth_tv"
    uses_cuts = True
    log_hr_var = "log_hr_avg"
    effect_name = "event-weighted average hazard ratio"
    #: deterministics :func:`kmbayes.families.prior_predictive_survival` must draw
    predictive_deterministics = ("log_base_grid", "log_hr_grid")

    def data_values(self, data, cuts):
        grid = fine_cuts(cuts)
        d, e = data.aggregate(grid)
        return {"D": d, "E": e, "omega": event_weights(data, grid)}

    def build(self, data, prior, *, cuts=DEFAULT_CUTS, baseline=None):
        import pymc as pm
        import pytensor.tensor as pt

        grid = fine_cuts(cuts)
        labels = interval_labels(grid)
        baseline = baseline or BaselinePrior()
        coords = {"arm": list(data.arm_ids), "grid": labels, "step": labels[1:]}
        with pm.Model(coords=coords) as model:
            dv = {k: pm.Data(k, v) for k, v in self.data_values(data, cuts).items()}
            bv = {k: pm.Data(k, v) for k, v in baseline.values().items()}
            pv = {k: pm.Data(k, v) for k, v in self.prior_values(prior).items()}
            omega = dv["omega"]

            def walk(tau, z):
                w = pt.concatenate([pt.zeros(1), pt.cumsum(tau * z)])
                return w - pt.dot(omega, w)

            log_hr_avg = pm.Normal("log_hr_avg", pv["prior_mu"], pv["prior_sigma"])
            tau_hr = pm.HalfNormal("tau_hr", STEP_SCALE * bv["tau_scale"])
            z_hr = pm.Normal("z_hr", 0.0, 1.0, dims="step")
            log_base_avg = pm.Normal("log_base_avg", pt.log(np.log(2.0) / bv["t_ref"]), bv["base_sd"])
            tau_base = pm.HalfNormal("tau_base", STEP_SCALE * bv["tau_scale"])
            z_base = pm.Normal("z_base", 0.0, 1.0, dims="step")
            log_hr = pm.Deterministic("log_hr_grid", log_hr_avg + walk(tau_hr, z_hr), dims="grid")
            log_base = pm.Deterministic("log_base_grid", log_base_avg + walk(tau_base, z_base), dims="grid")
            eta = pt.stack([log_base, log_base + log_hr])  # (arm, grid)
            pm.Potential("loglik", censored_loglik(dv["D"], eta, pt.exp(eta) * dv["E"]).sum())
            pm.Deterministic("hr_grid", pt.exp(log_hr), dims="grid")
            pm.Deterministic("hr", pt.exp(log_hr_avg))
        return model

    # ------------------------------------------------------------------ numpy
    def log_rates(self, post, ctx) -> np.ndarray:
        """(S, 2, J) log hazard by arm and fine-grid interval."""
        lb = post["log_base_grid"]
        return np.stack([lb, lb + post["log_hr_grid"]], axis=1)

    def log_hr_at(self, post, times, ctx):
        g = np.asarray(fine_cuts(ctx["cuts"]))
        j = np.clip(np.searchsorted(g, np.asarray(times, float), side="right") - 1, 0, len(g) - 2)
        return post["log_hr_grid"][:, j]

    def log_hr_by_interval(self, post, ctx) -> np.ndarray:
        """(S, J_coarse) log HR averaged over time within each of the run's ``cuts`` intervals.

        So :func:`kmbayes.estimands.interval_hr_draws` reports this model on
        the same intervals as ``piecewise_tv``. An open last interval takes
        the grid's log HR at its start (the grid is flat beyond its last cut).
        """
        c, g = check_cuts(ctx["cuts"]), np.asarray(fine_cuts(ctx["cuts"]))
        top = g[-2]
        w = np.zeros((len(c) - 1, len(g) - 1))
        for i, (a, b) in enumerate(zip(c[:-1], c[1:])):
            lo, hi = np.maximum(g[:-2], a), np.minimum(g[1:-1], min(b, top))
            w[i, :-1] = np.clip(hi - lo, 0.0, None)
            if w[i].sum() == 0:
                w[i, min(np.searchsorted(g, a, side="right") - 1, len(g) - 2)] = 1.0
        return post["log_hr_grid"] @ (w / w.sum(axis=1, keepdims=True)).T

    def cumhaz(self, post, times, arm, ctx):
        return piecewise_cumhaz(self.log_rates(post, ctx)[:, arm, :], times, fine_cuts(ctx["cuts"]))

    def median(self, post, arm, ctx):
        return piecewise_median(self.log_rates(post, ctx)[:, arm, :], fine_cuts(ctx["cuts"]))

    def pointwise_loglik(self, post, data, ctx):
        return piecewise_pointwise(self.log_rates(post, ctx), data, fine_cuts(ctx["cuts"]))

    def family_estimands(self, post, data, ctx) -> dict[str, np.ndarray]:
        """Named draws: ``hr_avg_event_weighted``, ``hr_early``, ``hr_late``,
        ``hr_ratio_late_early`` (late / early), split at ``ctx["split"]``
        (default :func:`default_split`); see :func:`._common.tv_estimands`."""
        split = float(ctx.get("split") or default_split(ctx["cuts"]))
        return tv_estimands(post["log_hr_grid"], np.asarray(fine_cuts(ctx["cuts"])),
                            post["log_hr_avg"], data, split)


FAMILY = SmoothTV()
build = FAMILY.build
