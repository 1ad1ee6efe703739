"""The tipping point: how sceptical a reader must be before the evidence stops convincing.

The smallest SD sigma of a sceptical N(0, sigma^2) prior on the log HR at
which P(HR < 1) still reaches a threshold (default 95%): in closed form from
the published HR and from a Cox fit to the reconstruction (conjugate normal),
per model from a normal approximation of its fitted likelihood and by
importance reweighting of its draws, and confirmed by refitting the model at
those priors (cheap: the compiled model is reused).

References
----------
Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials
and Health-Care Evaluation. Wiley; 2004. Section 3.11.
Vehtari A, Simpson D, Gelman A, Yao Y, Gabry J. Pareto smoothed importance
sampling. J Mach Learn Res. 2024;25(72):1-58.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import estimands, priors
from .fitting import FitResult
from .priors import PriorSpec

TIPPING_COLUMNS = ["method", "model", "source", "sigma", "prior_p_hr_lt_mcid", "p_hr_lt_1", "mcse",
                   "pareto_k", "note"]


def _psis_k(log_weights: np.ndarray) -> float:
    """Pareto k of PSIS-smoothed log weights (ArviZ 1.x array interface)."""
    from arviz_stats.base import array_stats

    if np.ptp(log_weights) == 0:
        # Equal weights: the target prior is the fitted one, so reweighting
        # is exact (ArviZ refuses a tail with no spread).
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k = array_stats.psislw(log_weights - log_weights.max())
    return float(k)

def likelihood_from_fit(fit: FitResult) -> tuple[float, float]:
    """Normal approximation to the likelihood of the log HR implied by a fit.

    The posterior mean m and SD s of the (mean) log HR with the fit's normal
    prior N(mu0, s0) removed by precision subtraction:
    1/se^2 = 1/s^2 - 1/s0^2, y = se^2 (m/s^2 - mu0/s0^2). Exact if the
    posterior is normal; with the vague reference prior it is just (m, s).
    """
    b = estimands.log_hr_draws(fit)
    m, s = float(np.mean(b)), float(np.std(b))
    prec = 1 / s**2 - 1 / fit.prior.sigma**2
    if prec <= 0:  # prior dominates completely: no information in the data
        return m, math.inf
    se2 = 1 / prec
    return se2 * (m / s**2 - fit.prior.mu / fit.prior.sigma**2), math.sqrt(se2)


def tipping_point_is(fit: FitResult, threshold_prob: float = 0.95) -> dict:
    """Tipping point from a fitted model by importance reweighting.

    The posterior under prior N(0, s) is proportional to the fitted posterior
    times N(log HR; 0, s) / p_fit(log HR), so each draw gets that weight and
    P(HR < 1) under N(0, s) is a weighted mean; a root find on log s gives the
    smallest s with P(HR < 1) >= ``threshold_prob``. The search is bracketed
    around the normal-approximation answer (:func:`likelihood_from_fit`,
    :func:`kmbayes.priors.tipping_point_conjugate`) because far below it the
    weights degenerate onto a handful of draws. The Pareto k of the
    PSIS-smoothed weights at the solution says whether to trust it
    (k < 0.7; Vehtari et al. 2024); :func:`tipping_table` also confirms the answer
    by refitting the model at that prior (cheap: same compiled model).

    Returns ``{"sigma", "p_hr_lt_1", "pareto_k", "sigma_normal"}``; sigma is
    inf if even the fitted prior does not reach the threshold.

    References
    ----------
    Vehtari A, Simpson D, Gelman A, Yao Y, Gabry J. Pareto smoothed importance
    sampling. J Mach Learn Res. 2024;25(72):1-58.
    """
    from scipy import optimize, stats

    b = estimands.log_hr_draws(fit)
    base = fit.prior.logpdf(b)
    y, se = likelihood_from_fit(fit)
    s_norm = priors.tipping_point_conjugate(y, se, threshold_prob) if math.isfinite(se) else math.inf

    def weights(s):
        lw = stats.norm.logpdf(b, 0.0, s) - base
        lw -= lw.max()
        w = np.exp(lw)
        return w / w.sum()

    def f(log_s):
        return float(np.sum(weights(math.exp(log_s)) * (b < 0))) - threshold_prob

    out = {"sigma": math.inf, "p_hr_lt_1": float(np.mean(b < 0)), "pareto_k": math.nan,
           "sigma_normal": s_norm}
    hi = math.log(max(fit.prior.sigma, 1e-3))
    if not math.isfinite(s_norm) or f(hi) < 0:
        return out
    lo = math.log(s_norm / 3)
    if f(lo) >= 0:  # reweighting disagrees badly with the normal approximation
        out.update(sigma=s_norm, p_hr_lt_1=math.nan)
        return out
    s = math.exp(optimize.brentq(f, lo, hi, xtol=1e-6))
    k = _psis_k(stats.norm.logpdf(b, 0.0, s) - base)
    out.update(sigma=s, p_hr_lt_1=f(math.log(s)) + threshold_prob, pareto_k=k)
    return out


def prob_mcid(sigma: float, mcid: float) -> float:
    from scipy import stats

    return float(stats.norm.cdf(math.log(mcid) / sigma)) if math.isfinite(sigma) else math.nan

def tipping_table(fits, spec, data, trial, fit_cached, out_root, refit_models=None):
    """How sceptical before P(HR < 1) < threshold: the smallest sigma of a N(0, sigma) prior.

    Rows (``method``): ``conjugate`` -- closed form from the published HR's CI
    and from the Cox fit to the IPD; per model, ``normal`` -- closed form from
    a normal approximation of the fitted likelihood, ``importance`` --
    importance reweighting of the reference fit's draws (PSIS k reported;
    P(HR < 1) near 0.95 rests on the few draws near HR = 1, so this is only a
    starting value), and ``refit`` -- the model refitted at those sigmas and
    at a corrected sigma (``... (corrected sigma)``: the normal-approximation
    curve shifted to pass through the refits): the refit closest to the
    threshold is the model-based tipping point. ``mcse`` is the Monte Carlo
    SE of a refit's P(HR < 1) (about 0.005-0.01): P changes slowly with sigma,
    so the model-based tipping sigma is only determined to about +-0.02.

    ``refit_models`` limits the refits to those models (default: all); the
    run refits only the headline model, whose tipping point the report states.
    For the cure model the prior set acts on the HR among the uncured, while
    its benefit acts through the cure fraction, so "how sceptical about the
    HR" is not its question: it gets a row saying so and no computation.
    """
    import pandas as pd

    from . import families

    thr = spec.tipping_threshold
    rows = []

    def add(method, model, source, sigma, p, k=math.nan, note="", mcse=math.nan):
        rows.append({"method": method, "model": model, "source": source, "sigma": sigma,
                     "prior_p_hr_lt_mcid": prob_mcid(sigma, spec.mcid_hr), "p_hr_lt_1": p,
                     "mcse": mcse, "pareto_k": k, "note": note})

    if trial is not None and trial.reported_hr is not None and trial.reported_hr.lower and trial.reported_hr.upper:
        r = trial.reported_hr
        y, se = priors.normal_likelihood_from_ci(r.estimate, r.lower, r.upper)
        s = priors.tipping_point_conjugate(y, se, thr)
        add("conjugate", "normal", "published HR", s, thr if math.isfinite(s) else math.nan)
    try:
        y, se = estimands.cox_likelihood(data)
        s = priors.tipping_point_conjugate(y, se, thr)
        add("conjugate", "normal", "Cox on IPD", s, thr if math.isfinite(s) else math.nan)
    except Exception as ex:  # lifelines convergence issues should not sink the grid
        add("conjugate", "normal", "Cox on IPD", math.nan, math.nan, note=f"failed: {type(ex).__name__}")
    for model in spec.models:
        src = ("reference" if (model, "reference") in fits
               else next((p for (m, p) in fits if m == model), None))
        if src is None:
            continue
        fit = fits[(model, src)]
        if families.get(model).effect_name == "hazard ratio among the uncured":
            add("none", model, f"{src} fit", math.nan, math.nan,
                note="not computed: the model's benefit acts through the cure fraction, not an HR")
            continue
        res = tipping_point_is(fit, thr)
        add("normal", model, f"{src} fit", res["sigma_normal"],
            thr if math.isfinite(res["sigma_normal"]) else math.nan,
            note="normal approximation of the fitted likelihood")
        k = res["pareto_k"]
        add("importance", model, f"{src} fit", res["sigma"], res["p_hr_lt_1"], k,
            note="" if not k > 0.7 else "Pareto k > 0.7: reweighting unreliable, see refit")
        # Confirm by refitting at each candidate tipping prior (same compiled
        # model, new prior data), then correct once and refit there: the
        # refits, not the approximations, are the model's answer. Refit
        # P(HR < 1) is a Monte Carlo estimate (SE ~0.005 near 0.95), too noisy
        # for a secant between two nearby sigmas, so the correction keeps the
        # shape of the normal-approximation curve z(sigma) = Phi^-1 P(HR < 1)
        # and only shifts its level by the mean refit offset.
        from scipy import stats

        y, se = likelihood_from_fit(fit)
        offsets = []

        def refit_at(sig, which, model=model, offsets=offsets, y=y, se=se):
            tp = PriorSpec(f"tipping_{which}", 0.0, float(f"{sig:.6g}"), "tipping-point sceptical prior")
            refit = fit_cached(model, tp.name, tp, data, out_root / "models" / f"{model}__{tp.name}")
            p = float(np.mean(estimands.hr_draws(refit) < 1.0))
            ess = refit.diagnostics.get("ess_bulk_min") or math.nan
            add("refit", model, f"N(0, {tp.sigma:.4g}) fit ({which} sigma)", tp.sigma, p,
                note="" if refit.gate_passed else "refit failed the gate",
                mcse=math.sqrt(p * (1 - p) / ess) if ess > 0 else math.nan)
            if 0 < p < 1 and math.isfinite(se):
                p_norm = priors.conjugate_posterior(tp, y, se).prob_hr_lt(1.0)
                offsets.append(float(stats.norm.ppf(p) - stats.norm.ppf(p_norm)))

        if refit_models is not None and model not in refit_models:
            continue
        done_sigmas = set()
        for which, sig in (("normal", res["sigma_normal"]), ("importance", res["sigma"])):
            if math.isfinite(sig) and f"{sig:.6g}" not in done_sigmas:
                done_sigmas.add(f"{sig:.6g}")
                refit_at(sig, which)
        if offsets:
            target = float(stats.norm.cdf(stats.norm.ppf(thr) - np.mean(offsets)))
            sig = priors.tipping_point_conjugate(y, se, target) if 0.5 < target < 1 else math.inf
            if math.isfinite(sig):
                refit_at(sig, "corrected")
    return pd.DataFrame(rows, columns=TIPPING_COLUMNS)

