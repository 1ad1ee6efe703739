"""smooth_tv: fine grid, event-weighted average log HR, potential = pointwise sum,
HR(t) and late/early estimands, data/prior swaps, and recovery under PH and a late effect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmbayes import families, priors, sampling
from kmbayes.data import SurvivalData, simulate_trial
from kmbayes.families import BaselinePrior, smooth_tv
from kmbayes.families._common import piecewise_cumhaz
from kmbayes.sampling import numba_cached

from .conftest import quick_fit

FAM = families.get("smooth_tv")
CUTS = families.DEFAULT_CUTS
CTX = {"t_ref": 36.0, "cuts": CUTS}
GRID = smooth_tv.fine_cuts(CUTS)
J = len(GRID) - 1


@pytest.fixture(scope="module")
def sim() -> SurvivalData:
    return simulate_trial(np.random.default_rng(11), shape=1.2, scale=40.0, hr=0.6)


def test_fine_grid_from_cuts():
    assert GRID[:3] == (0.0, 6.0, 12.0) and GRID[-2:] == (96.0, math.inf) and J == smooth_tv.N_FINE + 1
    assert smooth_tv.fine_cuts([0, 10]) == tuple(np.linspace(0, 10, 17)) + (math.inf,)
    assert smooth_tv.default_split(CUTS) == 36.0
    from kmbayes.errors import InputError

    with pytest.raises(InputError):
        smooth_tv.fine_cuts([0.0, math.inf])


def test_event_weights(sim):
    w = smooth_tv.event_weights(sim, GRID)
    assert w.shape == (J,) and w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    d, _ = sim.aggregate(GRID)
    np.testing.assert_allclose(w, d.sum(axis=0) / sim.event.sum())
    none = SurvivalData(sim.time, np.zeros(sim.n), sim.arm)
    np.testing.assert_allclose(smooth_tv.event_weights(none, GRID), 1.0 / J)


def _point(model, rng, scale=0.3):
    point = {k: v + rng.normal(0, scale, size=np.shape(v)) for k, v in model.initial_point().items()}
    inputs = {v.name: point[v.name] for v in model.value_vars}
    pot = model.replace_rvs_by_values([model["loglik"]])[0]
    loglik = float(model.compile_fn(pot, inputs=model.value_vars)(inputs))
    named = model.free_RVs + model.deterministics
    vals = model.compile_fn(model.replace_rvs_by_values(named), inputs=model.value_vars)(inputs)
    return loglik, {v.name: np.asarray(x)[None] for v, x in zip(named, vals)}


def test_potential_equals_pointwise_sum_and_average_is_event_weighted(sim):
    model = FAM.build(sim, priors.sceptical(), cuts=CUTS)
    assert list(model.coords["grid"]) == families.interval_labels(GRID)
    assert model.named_vars_to_dims["log_hr_grid"] == ("grid",)
    loglik, post = _point(model, np.random.default_rng(1))
    np.testing.assert_allclose(FAM.pointwise_loglik(post, sim, CTX).sum(), loglik, rtol=1e-9)
    # log_hr_avg is the event-weighted average of the grid log HRs by construction
    w = smooth_tv.event_weights(sim, GRID)
    np.testing.assert_allclose(post["log_hr_grid"] @ w, post["log_hr_avg"], atol=1e-12)
    np.testing.assert_allclose(post["log_base_grid"] @ w, post["log_base_avg"], atol=1e-12)
    est = FAM.family_estimands(post, sim, CTX)
    np.testing.assert_allclose(est["hr_avg_event_weighted"], np.exp(post["log_hr_avg"]))


def test_data_and_prior_swap_without_rebuild(sim):
    """Data of another size (new omega) and another prior go in through pm.set_data."""
    import pymc as pm

    model = FAM.build(sim, priors.reference(), cuts=CUTS)
    logp = model.compile_logp()
    ip = model.initial_point()
    before = logp(ip)
    other = simulate_trial(np.random.default_rng(5), n=(40, 45), shape=0.9)
    fresh = FAM.build(other, priors.pessimistic(), cuts=CUTS)
    names = {v.name for v in model.data_vars}
    with model:
        pm.set_data({k: v for k, v in sampling.model_values("smooth_tv", other, priors.pessimistic(), CUTS,
                                                      BaselinePrior()).items() if k in names})
    np.testing.assert_allclose(logp(ip), fresh.compile_logp()(ip), rtol=1e-10)
    assert not np.isclose(before, logp(ip))


def _post(log_hr_grid, s=1, log_base=-4.0):
    lh = np.broadcast_to(np.asarray(log_hr_grid, float), (s, J)).copy()
    return {"log_hr_grid": lh, "log_base_grid": np.full((s, J), log_base),
            "log_hr_avg": np.zeros(s)}


def test_ph_point_gives_flat_hr_and_unit_ratio(sim):
    post = _post(np.full(J, math.log(0.6)), s=3)
    post["log_hr_avg"][:] = math.log(0.6)
    hr_t = np.exp(FAM.log_hr_at(post, [0.0, 6.0, 24.0, 48.0, 84.0, 200.0], CTX))
    np.testing.assert_allclose(hr_t, 0.6)
    est = FAM.family_estimands(post, sim, CTX)
    assert set(est) == {"hr_avg_event_weighted", "hr_early", "hr_late", "hr_ratio_late_early"}
    np.testing.assert_allclose(est["hr_ratio_late_early"], 1.0)
    np.testing.assert_allclose(est["hr_early"], 0.6)
    assert FAM.log_hr_by_interval(post, CTX).shape == (3, len(CUTS) - 1)
    np.testing.assert_allclose(FAM.log_hr_by_interval(post, CTX), math.log(0.6))


def test_step_in_log_hr_gives_late_early_ratio(sim):
    step = np.where(np.arange(J) < 6, 0.0, math.log(0.4))  # HR 1 before 36 months, 0.4 after
    est = FAM.family_estimands(_post(step), sim, CTX)
    np.testing.assert_allclose(est["hr_early"], 1.0)
    np.testing.assert_allclose(est["hr_late"], 0.4)
    np.testing.assert_allclose(est["hr_ratio_late_early"], 0.4)
    # another split moves the boundary
    est = FAM.family_estimands(_post(step), sim, dict(CTX, split=60.0))
    assert est["hr_late"][0] == pytest.approx(0.4) and est["hr_early"][0] > 0.4
    by = np.exp(FAM.log_hr_by_interval(_post(step), CTX))[0]
    np.testing.assert_allclose(by, [1, 1, 1, 0.4, 0.4, 0.4])  # the run's coarse intervals


def test_cumhaz_and_median():
    rng = np.random.default_rng(3)
    post = {"log_base_grid": rng.normal(-4, 0.3, (4, J)), "log_hr_grid": rng.normal(-0.3, 0.3, (4, J))}
    t = np.array([0.0, 3.0, 50.0, 200.0])
    h1 = FAM.cumhaz(post, t, 1, CTX)
    np.testing.assert_allclose(h1, piecewise_cumhaz(post["log_base_grid"] + post["log_hr_grid"], t, GRID))
    assert h1.shape == (4, 4) and np.all(h1[:, 0] == 0)
    m = FAM.median(post, 0, CTX)
    np.testing.assert_allclose([FAM.cumhaz({k: v[i:i + 1] for k, v in post.items()}, [m[i]], 0, CTX)[0, 0]
                                for i in range(4)], math.log(2))


# ----------------------------------------------------------------------------- sampling


def _fit(data, seed):
    return quick_fit("smooth_tv", data, priors.reference(), cuts=CUTS, draws=1000, tune=1000,
                           seed=seed, target_accept=0.95)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [22, 23, 24])
def test_recovery_under_ph(seed):
    """Weibull PH, HR 0.6 (n = 300 per arm): HR(t) flat, late/early ratio centred near 1.

    Seeds 21-28 were all checked: every 95% interval of the ratio covers 1;
    seed 21's only just (0.98-1.57: that sample's Cox HR is 0.55 before 36
    months and 0.70 after), too close for a stable test.
    """
    d = simulate_trial(np.random.default_rng(seed), n=(300, 300), shape=1.1, scale=36.0, hr=0.6)
    f = _fit(d, 1)
    assert f.diagnostics["divergences"] == 0 and f.diagnostics["rhat_max"] < 1.02
    est = f.estimands()
    lo, med, hi = np.quantile(est["hr_ratio_late_early"], [0.025, 0.5, 0.975])
    assert lo < 1 < hi and 0.75 < med < 1.33
    lo, hi = np.quantile(est["hr_avg_event_weighted"], [0.025, 0.975])
    assert lo < 0.6 < hi
    hr_t = np.exp(FAM.log_hr_at(f.post, [6.0, 24.0, 48.0, 84.0], f.ctx))
    band = np.quantile(hr_t, [0.025, 0.975], axis=0)
    assert np.all((band[0] < 0.6) & (0.6 < band[1]))
    # Shrunk towards PH: the step SD falls well below its prior median (0.17),
    # and HR(t) moves little.
    assert np.median(f.post["tau_hr"]) < 0.12
    med_t = np.median(hr_t, axis=0)
    assert med_t.max() / med_t.min() < 1.4


@pytest.mark.slow
def test_late_effect_is_found():
    """HR 1 for 36 months, 0.4 after: P(HR_late / HR_early < 1) > 0.95."""
    d = simulate_trial(np.random.default_rng(22), n=(300, 300), cuts=[0, 36, math.inf],
                       rates=[0.02, 0.02], hrs=[1.0, 0.4])
    f = _fit(d, 2)
    assert f.diagnostics["divergences"] == 0 and f.diagnostics["rhat_max"] < 1.02
    est = f.estimands()
    assert np.mean(est["hr_ratio_late_early"] < 1) > 0.95
    lo, hi = np.quantile(est["hr_late"], [0.025, 0.975])
    assert lo < 0.4 < hi
    hr_t = np.median(np.exp(FAM.log_hr_at(f.post, [6.0, 84.0], f.ctx)), axis=0)
    assert hr_t[0] > 0.75 and hr_t[1] < 0.6
    # another data set (other n, other omega) and prior reuse the compiled model
    n = len(numba_cached._COMPILED)
    small = simulate_trial(np.random.default_rng(23), n=(50, 55))
    g = quick_fit("smooth_tv", small, priors.PriorSpec("tight", 0.0, 0.01), cuts=CUTS,
                        draws=300, tune=300, seed=3, target_accept=0.95)
    assert len(numba_cached._COMPILED) == n and g.idata["log_likelihood"]["obs"].shape[-1] == small.n
    assert abs(float(np.mean(g.post["log_hr_avg"]))) < 0.03
