"""Model families: likelihoods against SciPy, logp/gradients, coords, compile reuse."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kmbayes import families, fitting, priors, runspec
from kmbayes.data import SurvivalData, simulate_trial
from kmbayes.diagnostics import Gate
from kmbayes.families import BaselinePrior, interval_labels
from kmbayes.families._common import piecewise_pointwise
from kmbayes.sampling import numba_cached

CUTS = families.DEFAULT_CUTS


@pytest.fixture(scope="module")
def sim() -> SurvivalData:
    return simulate_trial(np.random.default_rng(11), shape=1.2, scale=40.0, hr=0.6)


def test_weibull_pointwise_matches_scipy(sim):
    # H_a(t) = exp(alpha + beta a) (t / t_ref)^k is a Weibull with shape k and
    # scale t_ref * exp(-(alpha + beta a) / k).
    t_ref, alpha, beta, log_k = 36.0, -0.2, -0.4, math.log(1.3)
    post = {k: np.array([v]) for k, v in
            {"alpha": alpha, "log_hr": beta, "log_shape": log_k}.items()}
    ll = families.get("weibull_ph").pointwise_loglik(post, sim, {"t_ref": t_ref, "cuts": None})[0]
    k = math.exp(log_k)
    scale = t_ref * np.exp(-(alpha + beta * sim.arm) / k)
    expected = np.where(
        sim.event == 1,
        stats.weibull_min.logpdf(sim.time, k, scale=scale),
        stats.weibull_min.logsf(sim.time, k, scale=scale),
    )
    np.testing.assert_allclose(ll, expected, rtol=1e-10, atol=1e-10)


def test_one_interval_piecewise_is_exponential(sim):
    lam0, hr = 0.02, 0.7
    log_rate = np.log(np.array([[[lam0]], [[lam0 * hr]]]))[:, :, 0][None]  # (1, 2, 1)
    ll = piecewise_pointwise(log_rate, sim, (0.0, math.inf))[0]
    rate = np.where(sim.arm == 1, lam0 * hr, lam0)
    expected = np.where(
        sim.event == 1,
        stats.expon.logpdf(sim.time, scale=1 / rate),
        stats.expon.logsf(sim.time, scale=1 / rate),
    )
    np.testing.assert_allclose(ll, expected, rtol=1e-10)


def test_aggregated_poisson_kernel_equals_sum_of_patients(sim):
    rng = np.random.default_rng(0)
    log_rate = np.log(rng.uniform(0.005, 0.05, size=(3, 2, len(CUTS) - 1)))
    per_patient = piecewise_pointwise(log_rate, sim, CUTS).sum(axis=1)
    d, e = sim.aggregate(CUTS)
    aggregated = (d[None] * log_rate - np.exp(log_rate) * e[None]).sum(axis=(1, 2))
    np.testing.assert_allclose(per_patient, aggregated, rtol=1e-12)
    n_events = sim.counts()
    assert d.sum(axis=1).tolist() == [n_events[a][1] for a in sim.arm_ids]
    np.testing.assert_allclose(e.sum(), sim.time.sum())


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_model_logp_matches_numpy_loglik(name, sim):
    """The sampled model's likelihood term equals the NumPy per-patient sum (used for LOO)."""
    fam = families.get(name)
    model = fam.build(sim, priors.sceptical(), cuts=CUTS, baseline=BaselinePrior())
    point = model.initial_point()
    rng = np.random.default_rng(1)
    point = {k: v + rng.normal(0, 0.1, size=np.shape(v)) for k, v in point.items()}
    inputs = {v.name: point[v.name] for v in model.value_vars}
    pot = model.replace_rvs_by_values([model.potentials[0]])[0]
    loglik = float(model.compile_fn(pot, inputs=model.value_vars)(inputs))
    # Untransformed values for the NumPy side
    named = model.free_RVs + model.deterministics
    outs = model.replace_rvs_by_values(named)
    vals = model.compile_fn(outs, inputs=model.value_vars)(inputs)
    post = {v.name: np.asarray(x)[None] for v, x in zip(named, vals)}
    ctx = {"t_ref": 36.0, "cuts": CUTS}
    np.testing.assert_allclose(fam.pointwise_loglik(post, sim, ctx).sum(), loglik, rtol=1e-9)


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_logp_and_gradient_finite_and_coords(name, sim):
    model = families.build(name, sim, priors.reference(), cuts=CUTS)
    ip = model.initial_point()
    assert np.isfinite(model.compile_logp()(ip))
    assert np.all(np.isfinite(model.compile_dlogp()(ip)))
    assert list(model.coords["arm"]) == list(sim.arm_ids)
    if name in ("piecewise_ph", "piecewise_tv"):  # smooth_tv's grid: tests/test_smooth_tv.py
        assert list(model.coords["interval"]) == interval_labels(CUTS)
        assert model.named_vars_to_dims["log_lambda"] == ("interval",)
    if name == "piecewise_tv":
        assert model.named_vars_to_dims["log_hr_interval"] == ("interval",)
        assert interval_labels(CUTS)[-1] == "96_inf"


def test_cut_validation():
    from kmbayes.errors import InputError

    assert families.check_cuts([0, 12, 24]) == (0.0, 12.0, 24.0, math.inf)
    for bad in ([12, 24], [0, 24, 12], [0], "x"):
        with pytest.raises(InputError) as ex:
            families.check_cuts(bad)
        assert ex.value.field == "models.cuts"


def test_prior_swap_and_data_swap_do_not_recompile(sim):
    """One compiled object per family serves every prior and data set."""
    other = simulate_trial(np.random.default_rng(5), n=(40, 45))
    args = (CUTS, BaselinePrior())
    c1 = numba_cached.compiled("piecewise_ph", sim, priors.reference(), *args)
    n = len(numba_cached._COMPILED)
    c2 = numba_cached.compiled("piecewise_ph", other, priors.sceptical(), *args)
    assert c1 is c2 and len(numba_cached._COMPILED) == n
    s = runspec.SamplerSettings(draws=200, tune=200)
    gate = Gate(ess_min=0, rhat_max=10)
    a = fitting.fit_one("piecewise_ph", sim, priors.reference(), settings=s, gate=gate, seed=1, loo=False)
    b = fitting.fit_one("piecewise_ph", sim, priors.PriorSpec("tight", 0.0, 0.01), settings=s,
                        gate=gate, seed=1, loo=False)
    assert len(numba_cached._COMPILED) == n
    # the swapped prior really is used: a N(0, 0.01) prior pins the log HR at 0
    assert abs(float(b.idata["posterior"]["log_hr"].mean())) < 0.03
    assert abs(float(a.idata["posterior"]["log_hr"].mean())) > 0.1
    # and the swapped data too: the log-likelihood has one column per patient
    c = fitting.fit_one("piecewise_ph", other, priors.reference(), settings=s, gate=gate, seed=1, loo=True)
    assert c.idata["log_likelihood"]["obs"].shape[-1] == other.n
    assert len(numba_cached._COMPILED) == n


@pytest.mark.parametrize("name", list(families.FAMILIES))
def test_prior_predictive_survival_is_plausible(name, sim):
    """Reference-arm 5-year OS prior predictive spreads over (0, 1), not piled at the ends."""
    s60 = families.prior_predictive_survival(name, sim, priors.reference(), [60.0], draws=4000)[:, 0]
    q25, q50, q75 = np.quantile(s60, [0.25, 0.5, 0.75])
    assert 0.05 < q25 < q50 < q75 < 0.9
    assert np.mean(s60 < 0.01) < 0.15
    assert np.mean(s60 > 0.99) < 0.05
