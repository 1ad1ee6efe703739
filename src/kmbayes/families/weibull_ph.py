"""Weibull proportional hazards.

Reference-arm cumulative hazard H_0(t) = exp(alpha) (t / t_ref)^k, treatment
arm H_1(t) = HR H_0(t). ``alpha`` is the log cumulative hazard at the
reference time ``t_ref``, which decorrelates it from the shape ``k`` far
better than a scale at t = 1 (the geometry nutpie sees is nearly isotropic).

Parameters and priors
---------------------
log_hr ~ Normal(prior_mu, prior_sigma)       the prior set (kmbayes.priors)
alpha ~ Normal(log log 2, sd_log_cumhaz)     prior median survival = t_ref
log_shape ~ Normal(0, sd_log_shape)           k = exp(log_shape)

All of those constants and the data are ``pm.Data``: a compiled model is
reused for any prior, replicate or trial with the same variables.

References
----------
Collett D. Modelling Survival Data in Medical Research. 3rd ed. CRC; 2015. ch. 5.
"""

from __future__ import annotations

import math

import numpy as np

from ._common import DEFAULT_CUTS, BaselinePrior, Family, censored_loglik


class WeibullPH(Family):
    name = "weibull_ph"
    uses_cuts = False

    def data_values(self, data, cuts=None):
        return {"t": data.time, "d": data.event, "x": data.arm.astype(float)}

    def build(self, data, prior, *, cuts=DEFAULT_CUTS, baseline=None):
        import pymc as pm
        import pytensor.tensor as pt

        baseline = baseline or BaselinePrior()
        coords = {"arm": list(data.arm_ids)}
        with pm.Model(coords=coords) as model:
            dv = {k: pm.Data(k, v) for k, v in self.data_values(data).items()}
            bv = {k: pm.Data(k, v) for k, v in baseline.values().items()}
            pv = {k: pm.Data(k, v) for k, v in self.prior_values(prior).items()}
            log_hr = pm.Normal("log_hr", pv["prior_mu"], pv["prior_sigma"])
            alpha = pm.Normal("alpha", math.log(math.log(2.0)), bv["base_sd"])
            log_shape = pm.Normal("log_shape", 0.0, bv["shape_sd"])
            k = pt.exp(log_shape)
            lt = pt.log(dv["t"] / bv["t_ref"])
            eta = alpha + log_hr * dv["x"]
            log_h = eta + log_shape + (k - 1.0) * lt - pt.log(bv["t_ref"])
            cum_h = pt.exp(eta + k * lt)
            pm.Potential("loglik", censored_loglik(dv["d"], log_h, cum_h).sum())
            pm.Deterministic("hr", pt.exp(log_hr))
        return model

    # ------------------------------------------------------------------ numpy
    def _eta(self, post, arm):
        return post["alpha"] + (post["log_hr"] if arm == 1 else 0.0)

    def cumhaz(self, post, times, arm, ctx):
        t = np.asarray(times, float)[None, :]
        k = np.exp(post["log_shape"])[:, None]
        with np.errstate(divide="ignore"):
            lt = np.log(t / ctx["t_ref"])
        return np.exp(self._eta(post, arm)[:, None] + k * lt)

    def median(self, post, arm, ctx):
        k = np.exp(post["log_shape"])
        return ctx["t_ref"] * (math.log(2.0) / np.exp(self._eta(post, arm))) ** (1.0 / k)

    def pointwise_loglik(self, post, data, ctx):
        t_ref = ctx["t_ref"]
        ls = post["log_shape"][:, None]
        k = np.exp(ls)
        lt = np.log(data.time / t_ref)[None, :]
        eta = post["alpha"][:, None] + post["log_hr"][:, None] * data.arm[None, :]
        log_h = eta + ls + (k - 1.0) * lt - math.log(t_ref)
        return censored_loglik(data.event[None, :], log_h, np.exp(eta + k * lt))


FAMILY = WeibullPH()
build = FAMILY.build
