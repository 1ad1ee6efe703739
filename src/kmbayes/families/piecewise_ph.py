"""Piecewise-exponential proportional hazards.

The reference arm has a constant hazard lambda_j in each interval
[c_j, c_{j+1}); the treatment arm has HR lambda_j. The likelihood is the
Poisson kernel on the sufficient statistics -- events D[a, j] and exposure
E[a, j] per arm x interval -- sum D log lambda - lambda E, so the cost of a
gradient does not grow with n. Per patient the same kernel,
sum_j [d_ij log lambda_ij - lambda_ij e_ij], is computed after sampling for LOO.

Parameters and priors
---------------------
log_hr ~ Normal(prior_mu, prior_sigma)
log_lambda[j] ~ Normal(log(log 2 / t_ref), sd_log_cumhaz), independently.

Independent (not random-walk) baseline priors: with few, wide intervals
there is no reason to impose smoothness, and each interval holds enough
deaths for its rate to be data-dominated. Cut points come from the run
config (``[models] cuts``); see ``DEFAULT_CUTS`` for the CLOCC rationale.

References
----------
Ibrahim JG, Chen M-H, Sinha D. Bayesian Survival Analysis. Springer; 2001. sec. 3.1.
Holford TR. The analysis of rates and of survivorship using log-linear models.
Biometrics. 1980;36:299-305.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    DEFAULT_CUTS,
    BaselinePrior,
    Family,
    censored_loglik,
    check_cuts,
    interval_labels,
    piecewise_cumhaz,
    piecewise_median,
    piecewise_pointwise,
)


class PiecewisePH(Family):
    name = "piecewise_ph"
    uses_cuts = True

    def data_values(self, data, cuts):
        d, e = data.aggregate(cuts)
        return {"D": d, "E": e}

    def _effect(self, pm, pv, bv):
        """log HR per interval (tensor broadcastable to (J,))."""
        return pm.Normal("log_hr", pv["prior_mu"], pv["prior_sigma"])

    def build(self, data, prior, *, cuts=DEFAULT_CUTS, baseline=None):
        import pymc as pm
        import pytensor.tensor as pt

        cuts = check_cuts(cuts)
        baseline = baseline or BaselinePrior()
        coords = {"arm": list(data.arm_ids), "interval": interval_labels(cuts)}
        with pm.Model(coords=coords) as model:
            dv = {k: pm.Data(k, v) for k, v in self.data_values(data, cuts).items()}
            bv = {k: pm.Data(k, v) for k, v in baseline.values().items()}
            pv = {k: pm.Data(k, v) for k, v in self.prior_values(prior).items()}
            log_lambda = pm.Normal(
                "log_lambda", pt.log(np.log(2.0) / bv["t_ref"]), bv["base_sd"], dims="interval"
            )
            effect = self._effect(pm, pv, bv)
            eta = pt.stack([log_lambda, log_lambda + effect])  # (arm, interval)
            pm.Potential("loglik", censored_loglik(dv["D"], eta, pt.exp(eta) * dv["E"]).sum())
            self._deterministics(pm, pt, effect)
        return model

    def _deterministics(self, pm, pt, effect):
        pm.Deterministic("hr", pt.exp(effect))

    # ------------------------------------------------------------------ numpy
    def log_hr_by_interval(self, post, ctx) -> np.ndarray:
        """(S, J) log HR per interval."""
        j = len(ctx["cuts"]) - 1
        return np.repeat(post["log_hr"][:, None], j, axis=1)

    def log_rates(self, post, ctx) -> np.ndarray:
        """(S, 2, J) log hazard by arm and interval."""
        ll = post["log_lambda"]
        return np.stack([ll, ll + self.log_hr_by_interval(post, ctx)], axis=1)

    def log_hr_at(self, post, times, ctx):
        c = np.asarray(ctx["cuts"], float)
        j = np.clip(np.searchsorted(c, np.asarray(times, float), side="right") - 1, 0, len(c) - 2)
        return self.log_hr_by_interval(post, ctx)[:, j]

    def cumhaz(self, post, times, arm, ctx):
        return piecewise_cumhaz(self.log_rates(post, ctx)[:, arm, :], times, ctx["cuts"])

    def median(self, post, arm, ctx):
        return piecewise_median(self.log_rates(post, ctx)[:, arm, :], ctx["cuts"])

    def pointwise_loglik(self, post, data, ctx):
        return piecewise_pointwise(self.log_rates(post, ctx), data, ctx["cuts"])


FAMILY = PiecewisePH()
build = FAMILY.build
