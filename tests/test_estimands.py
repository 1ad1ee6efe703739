"""Estimands on hand-constructed posteriors with known answers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pytest

from kmbayes import estimands, priors
from kmbayes.data import SurvivalData, simulate_trial


@dataclass(eq=False)
class FakeFit:
    model: str
    idata: object
    data: SurvivalData
    ctx: dict
    prior: priors.PriorSpec = field(default_factory=priors.reference)


def _idata(**arrays):
    return az.from_dict({"posterior": {k: np.asarray(v, float).reshape(1, -1, *np.shape(v)[1:])
                                       for k, v in arrays.items()}})


@pytest.fixture(scope="module")
def data():
    return simulate_trial(np.random.default_rng(3))


def _exp_fit(data, lam, log_hr, cuts=(0.0, 12.0, math.inf), model="piecewise_ph"):
    """A piecewise model with the same rate in every interval = exponential."""
    lam = np.asarray(lam, float)
    j = len(cuts) - 1
    arrays = {"log_lambda": np.repeat(np.log(lam)[:, None], j, axis=1), "log_hr": np.asarray(log_hr, float)}
    if model == "piecewise_tv":
        arrays = {"log_lambda": arrays["log_lambda"], "log_hr_mean": arrays["log_hr"],
                  "log_hr_interval": np.repeat(arrays["log_hr"][:, None], j, axis=1)}
    return FakeFit(model, _idata(**arrays), data, {"t_ref": 36.0, "cuts": tuple(cuts)})


def test_exponential_survival_rmst_median(data):
    lam = np.array([0.01, 0.02, 0.03, 0.04])
    log_hr = np.log(np.array([0.5, 0.6, 0.7, 0.8]))
    fit = _exp_fit(data, lam, log_hr)
    ref, trt = data.arm_ids
    s = estimands.survival_draws(fit, [0, 36, 60])
    np.testing.assert_allclose(s[ref][0], np.exp(-lam[:, None] * [0, 36, 60]), rtol=1e-12)
    lam1 = lam * np.exp(log_hr)
    np.testing.assert_allclose(s[trt][0], np.exp(-lam1[:, None] * [0, 36, 60]), rtol=1e-12)
    r = estimands.rmst_draws(fit, 60.0)
    np.testing.assert_allclose(r[ref], (1 - np.exp(-lam * 60)) / lam, rtol=1e-4)
    np.testing.assert_allclose(r[trt], (1 - np.exp(-lam1 * 60)) / lam1, rtol=1e-4)
    np.testing.assert_allclose(r["difference"], r[trt] - r[ref])
    m = estimands.median_draws(fit)
    np.testing.assert_allclose(m[ref], math.log(2) / lam, rtol=1e-12)
    np.testing.assert_allclose(m[trt], math.log(2) / lam1, rtol=1e-12)
    np.testing.assert_allclose(estimands.hr_draws(fit), np.exp(log_hr))
    hr_t, t = estimands.hr_over_time(fit, [1, 50, 200])
    assert hr_t.shape == (4, 3) and np.allclose(hr_t, np.exp(log_hr)[:, None])


def test_weibull_median_and_survival(data):
    # S0(t) = exp(-exp(alpha) (t / t_ref)^k); median where S = 1/2
    alpha, k, t_ref = np.array([-0.5, 0.1]), np.array([0.8, 1.5]), 36.0
    fit = FakeFit("weibull_ph", _idata(alpha=alpha, log_shape=np.log(k), log_hr=np.zeros(2)),
                  data, {"t_ref": t_ref, "cuts": None})
    med = estimands.median_draws(fit)[data.reference]
    np.testing.assert_allclose(med, t_ref * (math.log(2) / np.exp(alpha)) ** (1 / k))
    s = estimands.survival_draws(fit, med[:1])[data.reference][0]
    assert s[0, 0] == pytest.approx(0.5)


def test_time_varying_hr_steps(data):
    cuts = (0.0, 36.0, math.inf)
    lh = np.array([[0.0, -1.0], [0.1, -0.9]])
    arrays = {"log_lambda": np.full((2, 2), math.log(0.02)), "log_hr_mean": lh.mean(axis=1),
              "log_hr_interval": lh}
    fit = FakeFit("piecewise_tv", _idata(**arrays), data, {"t_ref": 36.0, "cuts": cuts})
    hr_t, _ = estimands.hr_over_time(fit, [10.0, 35.9, 36.0, 100.0])
    np.testing.assert_allclose(hr_t, np.exp(lh[:, [0, 0, 1, 1]]))
    ih = estimands.interval_hr_draws(fit)
    assert list(ih) == ["hr_0_36", "hr_36_inf"]
    # survival of the treatment arm uses the interval HRs
    s = estimands.survival_draws(fit, [60.0])[data.treatment][0][:, 0]
    expected = np.exp(-(0.02 * np.exp(lh[:, 0]) * 36 + 0.02 * np.exp(lh[:, 1]) * 24))
    np.testing.assert_allclose(s, expected)


def test_summarise_rows_and_probabilities(data):
    rng = np.random.default_rng(0)
    log_hr = rng.normal(math.log(0.6), 0.2, size=4000)
    lam = np.full(4000, 0.02)
    fit = _exp_fit(data, lam, log_hr, model="piecewise_tv")
    rows = {r["quantity"]: r for r in estimands.summarise(fit, (36, 60, 96), (60, 96))}
    ref, trt = data.arm_ids
    for q in ["hr", "p_hr_lt_1", "p_hr_lt_0.8", "p_hr_lt_0.7", "hr_0_12", "hr_12_inf",
              f"surv_{ref}_36", f"surv_{trt}_96", "surv_diff_36", "surv_diff_60", "surv_diff_96",
              f"rmst_{ref}_60", f"rmst_{trt}_96", "rmst_diff_60", "rmst_diff_96",
              f"median_{ref}", f"median_{trt}"]:
        assert q in rows, q
    assert rows["p_hr_lt_1"]["estimate"] == pytest.approx(np.mean(np.exp(log_hr) < 1))
    assert math.isnan(rows["p_hr_lt_1"]["lower"])
    assert rows["p_hr_lt_0.7"]["estimate"] == pytest.approx(0.78, abs=0.03)  # Phi(log(0.7/0.6)/0.2)
    h = rows["hr"]
    assert h["lower"] < h["estimate"] < h["upper"]
    assert h["estimate"] == pytest.approx(0.6, abs=0.02)


def test_cox_likelihood_and_prior_spec(data):
    y, se = estimands.cox_likelihood(data)
    assert -2 < y < 1 and 0.1 < se < 0.5
    fit = _exp_fit(data, [0.02] * 2, [0.0, 0.0])
    fit.prior = priors.sceptical()
    assert estimands.prior_spec(fit) == (0.0, pytest.approx(0.2168, abs=1e-4))


def test_headline_mcse_matches_the_iid_formula(data):
    # Independent draws: the MCSE of P(HR < 1) is sqrt(p (1 - p) / S).
    rng = np.random.default_rng(4)
    s = 8000
    log_hr = rng.normal(-0.3, 0.2, size=s)
    fit = _exp_fit(data, np.full(s, 0.02), log_hr)
    m = estimands.headline_mcse(fit)
    p = np.mean(log_hr < 0)
    assert m["p_hr_lt_1"] == pytest.approx(math.sqrt(p * (1 - p) / s), rel=0.2)
    # The SE of the median HR: about 1.25 SD(HR) / sqrt(S) for a near-normal posterior.
    hr = np.exp(log_hr)
    assert m["hr"] == pytest.approx(1.2533 * hr.std() / math.sqrt(s), rel=0.25)
    # Every draw below 0.8 (HR about 0.37): P = 1, with no estimate of its error.
    tight = _exp_fit(data, np.full(400, 0.02), rng.normal(-1.0, 0.01, size=400))
    assert math.isnan(estimands.headline_mcse(tight)["p_hr_lt_0.8"])
    rows = {r["quantity"]: r for r in estimands.summarise(fit, milestones=(36,), rmst_horizons=())}
    assert rows["p_hr_lt_1"]["mcse"] == m["p_hr_lt_1"] and math.isnan(rows["surv_diff_36"]["mcse"])
