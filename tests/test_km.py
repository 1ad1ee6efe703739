"""kmbayes.km against lifelines, which produced the published numbers we score on."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from kmbayes import km as K

lifelines = pytest.importorskip("lifelines")
from lifelines import CoxPHFitter, KaplanMeierFitter  # noqa: E402
from lifelines.statistics import logrank_test  # noqa: E402
from lifelines.utils import median_survival_times  # noqa: E402


def _data(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 150))
    t = np.round(rng.exponential(10, n), int(rng.integers(0, 3)))  # rounding makes ties
    e = (rng.random(n) < rng.uniform(0.2, 1.0)).astype(int)
    if seed % 5 == 0:
        t[:2] = 0.0  # observations at time 0
    g = (rng.random(n) < 0.5).astype(int)
    return t, e, g


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_km_curve_ci_and_medians_match_lifelines(seed):
    t, e, _ = _data(seed)
    f = KaplanMeierFitter().fit(t, e)
    r = K.km(t, e)
    sf = f.survival_function_.iloc[:, 0]
    ci = f.confidence_interval_
    np.testing.assert_allclose(r.time, sf.index.values)
    np.testing.assert_allclose(r.surv, sf.values, rtol=1e-12)
    lo, hi = r.ci()
    np.testing.assert_allclose(lo, ci.iloc[:, 0].values, rtol=1e-10)
    np.testing.assert_allclose(hi, ci.iloc[:, 1].values, rtol=1e-10)
    assert r.median() == f.median_survival_time_
    m = median_survival_times(ci)
    assert r.median_ci() == (m.iloc[0, 0], m.iloc[0, 1])
    for lm in (0.5, 3.0, 7.0, 15.0, 40.0):
        row = ci[ci.index <= lm].iloc[-1]
        np.testing.assert_allclose(r.ci_at(lm), (float(f.predict(lm)), row.iloc[0], row.iloc[1]), rtol=1e-10)
        assert r.survival(lm) == pytest.approx(float(f.predict(lm)))


@pytest.mark.parametrize("seed", SEEDS)
def test_reverse_km_median_matches_lifelines(seed):
    t, e, _ = _data(seed)
    f = KaplanMeierFitter().fit(t, 1 - e)
    assert K.reverse_km_median(t, e) == f.median_survival_time_


@pytest.mark.parametrize("seed", SEEDS)
def test_cox_and_logrank_match_lifelines(seed):
    t, e, g = _data(seed)
    if e[g == 1].sum() < 2 or e[g == 0].sum() < 2:
        pytest.skip("too few events in one group")
    d = pd.DataFrame({"time": t, "event": e, "x": g})
    d = d[d.time > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CoxPHFitter().fit(d, "time", "event").summary.loc["x"]
    c = K.cox_two_group(d.time.values, d.event.values, d.x.values)
    # lifelines stops Newton-Raphson at a looser precision (its default 1e-7 on
    # the step norm); with precision=1e-12 the two agree to 1e-9.
    assert math.log(c.hr) == pytest.approx(math.log(s["exp(coef)"]), abs=1e-4)
    assert c.se == pytest.approx(s["se(coef)"], rel=1e-4)
    assert c.lower == pytest.approx(s["exp(coef) lower 95%"], rel=1e-4)
    assert c.upper == pytest.approx(s["exp(coef) upper 95%"], rel=1e-4)
    assert c.p == pytest.approx(s["p"], rel=1e-3, abs=1e-12)
    lr = logrank_test(t[g == 1], t[g == 0], e[g == 1], e[g == 0])
    k = K.logrank(t, e, g)
    assert k.chi2 == pytest.approx(lr.test_statistic, rel=1e-9)
    assert k.p == pytest.approx(lr.p_value, rel=1e-8)


def test_edge_cases():
    # All die: S reaches 0, the upper CI curve too (lifelines' conventions).
    r = K.km([1, 2, 3], [1, 1, 1])
    assert r.surv[-1] == 0.0
    assert r.median() == 2.0
    # Nobody dies: S stays 1, CIs are filled with 1, the median is never reached.
    r = K.km([1, 2, 3], [0, 0, 0])
    assert np.all(r.surv == 1.0) and np.all(np.concatenate(r.ci()) == 1.0)
    assert math.isinf(r.median()) and all(math.isinf(x) for x in r.median_ci())
    assert r.ci_at(-1.0) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        K.km([], [])


def test_z95_is_the_normal_quantile():
    # 1 - Phi(z) by the complementary error function.
    assert 0.5 * math.erfc(K.Z95 / math.sqrt(2)) == pytest.approx(0.025, rel=1e-12)
