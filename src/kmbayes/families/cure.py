"""Bayesian mixture cure model: a cured fraction plus Weibull PH among the uncured.

In arm a a fraction pi_a is cured (never dies of the disease in follow-up)
and the rest have Weibull survival S_u,a, so the marginal survival is

    S_a(t) = pi_a + (1 - pi_a) S_u,a(t),

which levels off at pi_a: the model for a Kaplan-Meier curve with a plateau,
as in CLOCC's local-treatment arm. Treatment acts twice:

* on the cure fraction, logit pi_1 = logit pi_0 + delta (``cure_effect``);
* on the hazard of the uncured, H_u,1(t) = HR_u H_u,0(t), with
  H_u,0(t) = exp(alpha) (t / t_ref)^k as in
  :mod:`~kmbayes.families.weibull_ph` (``alpha`` the log cumulative hazard
  at ``t_ref``, nearly uncorrelated with the shape).

The headline log HR for the prior set is ``log_hr_uncured``, the log HR
among the uncured, so "sceptical" means the same thing as in the PH models.
The cure effect has its own community (:mod:`kmbayes.cure_priors`), stated
on the scale of the difference in cure fraction.

Likelihood
----------
For an event log f = log(1 - pi) + log h_u - H_u; for a censored time
log S = log(pi + (1 - pi) exp(-H_u)). It is written in the shared
``d log h - H`` form with the *marginal* hazard and cumulative hazard,
H = -log S and log h = log f - log S, so per-patient values are comparable
with every other family for LOO. log pi and log(1 - pi) are log-sigmoids
and log S a ``logaddexp``, which stay finite for cure fractions near 0 or 1
and for large H_u.

Parameters and priors
---------------------
log_hr_uncured ~ Normal(prior_mu, prior_sigma)     the prior set (kmbayes.priors)
alpha ~ Normal(log log 2, sd_log_cumhaz)           uncured reference-arm median = t_ref
log_shape ~ Normal(0, sd_log_shape)
cure_logit0 ~ Normal(cure0_mu, cure0_sd)           reference-arm logit pi_0
cure_effect ~ Normal(cure_mu, cure_sigma)          delta (kmbayes.cure_priors)

All constants are ``pm.Data``, so the compiled model serves every prior and
data set. What the cure fraction leans on -- how long each arm's
Kaplan-Meier curve is flat at the end, and how many patients are still
followed there -- is given by :func:`cure_support`; a cure fraction is a
statement about the tail, and a short plateau supports it little
(Othus et al. 2012).

References
----------
Othus M, Barlogie B, LeBlanc ML, Crowley JJ. Cure models as a useful
statistical tool for analyzing survival. Clin Cancer Res. 2012;18:3731-6.
Amico M, Van Keilegom I. Cure models in survival analysis. Annu Rev Stat
Appl. 2018;5:311-42.
Farewell VT. The use of mixture models for the analysis of survival data with
long-term survivors. Biometrics. 1982;38:1041-6.
"""

from __future__ import annotations

import math

import numpy as np

from .. import cure_priors
from ._common import DEFAULT_CUTS, BaselinePrior, Family, censored_loglik

_LOG_LOG2 = math.log(math.log(2.0))


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def mixture_terms(log_t_rel, eta, log_shape, gamma, log_t_ref, xp=np):
    """Marginal ``(log h, H)`` of the mixture, for :func:`censored_loglik`.

    ``log_t_rel`` is log(t / t_ref), ``eta`` the uncured log cumulative
    hazard at t_ref, ``gamma`` logit pi. ``xp`` is ``numpy`` or
    ``pytensor.tensor`` (the same algebra samples and computes LOO values).
    """
    k = xp.exp(log_shape)
    cum_u = xp.exp(eta + k * log_t_rel)
    log_h_u = eta + log_shape + (k - 1.0) * log_t_rel - log_t_ref
    if xp is np:
        log_pi, log_1m = _log_sigmoid(gamma), _log_sigmoid(-gamma)
    else:
        log_pi, log_1m = -xp.softplus(-gamma), -xp.softplus(gamma)
    log_s = xp.logaddexp(log_pi, log_1m - cum_u)
    log_f = log_1m + log_h_u - cum_u
    return log_f - log_s, -log_s


class MixtureCure(Family):
    name = "cure"
    uses_cuts = False
    log_hr_var = "log_hr_uncured"
    effect_name = "hazard ratio among the uncured"

    def data_values(self, data, cuts=None):
        return {"t": data.time, "d": data.event, "x": data.arm.astype(float)}

    @staticmethod
    def prior_values(prior) -> dict[str, float]:
        cure, base = cure_priors.for_prior(prior)
        return {"prior_mu": float(prior.mu), "prior_sigma": float(prior.sigma),
                **cure.values(), **base.values()}

    def build(self, data, prior, *, cuts=DEFAULT_CUTS, baseline=None):
        import pymc as pm
        import pytensor.tensor as pt

        baseline = baseline or BaselinePrior()
        with pm.Model(coords={"arm": list(data.arm_ids)}) as model:
            dv = {k: pm.Data(k, v) for k, v in self.data_values(data).items()}
            bv = {k: pm.Data(k, v) for k, v in baseline.values().items()}
            pv = {k: pm.Data(k, v) for k, v in self.prior_values(prior).items()}
            log_hr = pm.Normal("log_hr_uncured", pv["prior_mu"], pv["prior_sigma"])
            alpha = pm.Normal("alpha", _LOG_LOG2, bv["base_sd"])
            log_shape = pm.Normal("log_shape", 0.0, bv["shape_sd"])
            gamma0 = pm.Normal("cure_logit0", pv["cure0_mu"], pv["cure0_sd"])
            delta = pm.Normal("cure_effect", pv["cure_mu"], pv["cure_sigma"])
            x = dv["x"]
            log_h, cum_h = mixture_terms(
                pt.log(dv["t"] / bv["t_ref"]), alpha + log_hr * x, log_shape,
                gamma0 + delta * x, pt.log(bv["t_ref"]), xp=pt)
            pm.Potential("loglik", censored_loglik(dv["d"], log_h, cum_h).sum())
            cure = pm.Deterministic(
                "cure_fraction", pt.sigmoid(pt.stack([gamma0, gamma0 + delta])), dims="arm")
            pm.Deterministic("cure_difference", cure[1] - cure[0])
            pm.Deterministic("hr_uncured", pt.exp(log_hr))
            # The headline HR under the name the figures look for.
            pm.Deterministic("hr", pt.exp(log_hr))
        return model

    # ------------------------------------------------------------------ numpy
    @staticmethod
    def cure_fractions(post) -> np.ndarray:
        """(S, 2) cure fraction by arm."""
        g0 = post["cure_logit0"]
        return cure_priors.expit(np.stack([g0, g0 + post["cure_effect"]], axis=1))

    def _eta(self, post, arm):
        return post["alpha"] + (post["log_hr_uncured"] if arm == 1 else 0.0)

    def _gamma(self, post, arm):
        return post["cure_logit0"] + (post["cure_effect"] if arm == 1 else 0.0)

    def log_survival(self, post, times, arm, ctx) -> np.ndarray:
        """Marginal log S(t), shape (S, T)."""
        t = np.asarray(times, float)[None, :]
        k = np.exp(post["log_shape"])[:, None]
        with np.errstate(divide="ignore"):
            lt = np.log(t / ctx["t_ref"])
        cum_u = np.exp(self._eta(post, arm)[:, None] + k * lt)
        g = self._gamma(post, arm)[:, None]
        return np.logaddexp(_log_sigmoid(g), _log_sigmoid(-g) - cum_u)

    def cumhaz(self, post, times, arm, ctx):
        return -self.log_survival(post, times, arm, ctx)

    def median(self, post, arm, ctx):
        """Marginal median: solves pi + (1 - pi) S_u(t) = 1/2; ``inf`` where pi >= 1/2."""
        pi = cure_priors.expit(self._gamma(post, arm))
        k = np.exp(post["log_shape"])
        out = np.full(pi.shape, np.inf)
        ok = pi < 0.5
        # S_u(t) = (1/2 - pi) / (1 - pi)  ->  H_u(t) = log((1 - pi) / (1/2 - pi))
        cum_u = np.log((1.0 - pi[ok]) / (0.5 - pi[ok]))
        out[ok] = ctx["t_ref"] * (cum_u / np.exp(self._eta(post, arm)[ok])) ** (1.0 / k[ok])
        return out

    def pointwise_loglik(self, post, data, ctx):
        col = {k: np.asarray(v)[:, None] for k, v in post.items()
               if k in ("alpha", "log_hr_uncured", "log_shape", "cure_logit0", "cure_effect")}
        x = data.arm[None, :].astype(float)
        log_h, cum_h = mixture_terms(
            np.log(data.time / ctx["t_ref"])[None, :],
            col["alpha"] + col["log_hr_uncured"] * x, col["log_shape"],
            col["cure_logit0"] + col["cure_effect"] * x, math.log(ctx["t_ref"]))
        return censored_loglik(data.event[None, :], log_h, cum_h)

    def family_estimands(self, post, data=None, ctx=None) -> dict[str, np.ndarray]:
        """Named draws: ``cure_reference``, ``cure_treatment``, ``cure_difference``
        (treatment - reference), ``cure_odds_ratio``, ``hr_uncured``."""
        pi = self.cure_fractions(post)
        return {
            "cure_reference": pi[:, 0],
            "cure_treatment": pi[:, 1],
            "cure_difference": pi[:, 1] - pi[:, 0],
            "cure_odds_ratio": np.exp(post["cure_effect"]),
            "hr_uncured": np.exp(post["log_hr_uncured"]),
        }


FAMILY = MixtureCure()
build = FAMILY.build


def prior_predictive_cure(data, prior, *, baseline=None, draws: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Prior predictive draws of the cure fractions, their difference and the uncured HR.

    Draws from the model as built (``pm.draw``), so the check shows the
    priors actually used -- e.g. that the reference cure prior spreads the
    difference pi_1 - pi_0 over a wide range rather than piling it at +-1.

    Parameters
    ----------
    data : SurvivalData
        Any data set (the priors do not depend on it; the model needs one to build).
    prior : PriorSpec or PriorWithCure
        The log-HR prior; the cure prior follows it (:func:`kmbayes.cure_priors.for_prior`).
    baseline : BaselinePrior, optional
    draws, seed : int

    Returns
    -------
    dict of str to ndarray, each shape (draws,)
        Keys as :meth:`MixtureCure.family_estimands`.
    """
    import pymc as pm

    model = FAMILY.build(data, prior, baseline=baseline or BaselinePrior())
    names = ["cure_logit0", "cure_effect", "log_hr_uncured"]
    vals = pm.draw([model[n] for n in names], draws=draws, random_seed=seed)
    return FAMILY.family_estimands({n: np.asarray(v) for n, v in zip(names, vals)})


def cure_support(data) -> dict[str, dict[str, float]]:
    """What the cure fractions lean on: the end of each arm's Kaplan-Meier curve.

    Parameters
    ----------
    data : SurvivalData

    Returns
    -------
    dict of arm id to dict of str to float
        Per arm id: ``followup`` (longest time), ``last_event`` (time of
        the last death), ``at_risk_last_event`` (patients at risk at that
        death, itself included), ``followed_after_last_event`` (patients
        still followed after it, all censored), ``plateau`` (``followup -
        last_event``: how long the curve is flat at the end) and
        ``km_at_plateau`` (the KM estimate on the plateau, the model-free
        counterpart of the cure fraction).

    Notes
    -----
    For a report: "the cure fraction rests on a plateau of X months with N
    patients still followed". CLOCC (reconstructed IPD): 44 months with 7
    patients in the local-treatment arm, 35 months with 2 in the reference arm.
    """
    out = {}
    for a, arm_id in enumerate(data.arm_ids):
        t, d = data.time[data.arm == a], data.event[data.arm == a]
        order = np.lexsort((-d, t))  # deaths before censorings at tied times
        t, d = t[order], d[order]
        at_risk = t.size - np.arange(t.size)
        km = np.cumprod(np.where(d == 1, 1.0 - 1.0 / at_risk, 1.0))
        if d.sum() == 0:
            last, n_last, s = 0.0, t.size, 1.0
        else:
            i = np.flatnonzero(d == 1)[-1]
            last, n_last, s = float(t[i]), int(at_risk[i]), float(km[i])
        out[arm_id] = {
            "followup": float(t.max()),
            "last_event": last,
            "at_risk_last_event": float(n_last),
            "followed_after_last_event": float(np.sum(t > last)),
            "plateau": float(t.max() - last),
            "km_at_plateau": s,
        }
    return out
