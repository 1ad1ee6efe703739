"""Model-free anchors (KM differences, RMST variance, Bayesian bootstrap) and
the pinned/interpolated classification of :mod:`kmbayes.pinning`."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from kmbayes.anchors import bb_draws, km_anchors, km_differences, km_rmst, weighted_km_draws
from kmbayes.data import SurvivalData, simulate_trial
from kmbayes.km import km
from kmbayes.pinning import interval_support, pinned_times, support_of
from kmbayes.trial import Arm, AtRisk, Interval, Landmark, Trial, load_trial


@pytest.fixture(scope="module")
def trial_small():
    return simulate_trial(np.random.default_rng(11), shape=1.2, scale=40.0, hr=0.6)


@pytest.fixture(scope="module")
def trial_large():
    return simulate_trial(np.random.default_rng(12), n=(1500, 1500), shape=1.0, scale=40.0, hr=0.7)


def test_rmst_matches_lifelines_estimate_and_population_variance():
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    rng = np.random.default_rng(3)
    t = rng.exponential(30.0, 120)
    e = np.ones_like(t)
    rmst, var = km_rmst(t, e, 40.0)
    kmf = KaplanMeierFitter().fit(t, e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' quad warns on the step curve
        mean, pop_var = restricted_mean_survival_time(kmf, t=40.0, return_variance=True)
    assert rmst == pytest.approx(mean, rel=1e-10)
    # lifelines returns Var(min(T, tau)) in the population; without censoring the
    # Greenwood-type estimator variance is exactly that plug-in variance / n.
    assert var * t.size == pytest.approx(pop_var, rel=2e-3)
    assert var == pytest.approx(np.var(np.minimum(t, 40.0)) / t.size, rel=1e-10)


def test_rmst_with_censoring_matches_lifelines_mean(trial_small):
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    m = trial_small.arm == 0
    kmf = KaplanMeierFitter().fit(trial_small.time[m], trial_small.event[m])
    for h in (30.0, 60.0, 96.0):
        assert km_rmst(trial_small.time[m], trial_small.event[m], h)[0] == pytest.approx(
            restricted_mean_survival_time(kmf, t=h), rel=1e-10
        )


def test_delta_s_uses_greenwood_and_sign_convention(trial_small):
    (row,) = km_differences(trial_small, milestones=[36.0])
    f0 = km(trial_small.time[trial_small.arm == 0], trial_small.event[trial_small.arm == 0])
    f1 = km(trial_small.time[trial_small.arm == 1], trial_small.event[trial_small.arm == 1])
    s0, s1 = f0.survival(36.0), f1.survival(36.0)
    assert row["estimate"] == pytest.approx(s1 - s0)
    var = s0**2 * f0.gw[f0._index(36.0)] + s1**2 * f1.gw[f1._index(36.0)]
    assert row["se"] == pytest.approx(np.sqrt(var))
    assert row["lower"] < row["estimate"] < row["upper"]


def test_sign_convention_flips_with_arms():
    # Treatment (arm 1) clearly better: every difference must be positive.
    rng = np.random.default_rng(5)
    d = simulate_trial(rng, n=(200, 200), hr=0.3)
    rows = km_anchors(d, milestones=[24.0], horizons=[48.0], draws=500)
    assert all(r["estimate"] > 0 and r["p_gt_0"] > 0.99 for r in rows)
    flipped = SurvivalData(d.time, d.event, 1 - d.arm, d.arm_ids[::-1])
    rows_f = km_anchors(flipped, milestones=[24.0], horizons=[48.0], draws=500)
    for a, b in zip(rows, rows_f):
        assert b["estimate"] == pytest.approx(-a["estimate"])
        assert b["p_gt_0"] < 0.01


def test_weighted_km_with_equal_weights_is_km(trial_small):
    m = trial_small.arm == 1
    t, e = trial_small.time[m], trial_small.event[m]
    w = np.full((2, t.size), 1.0 / t.size)
    s, r = weighted_km_draws(t, e, w, milestones=[0.0, 12.0, 36.0, 200.0], horizons=[60.0])
    f = km(t, e)
    assert np.allclose(s[0], f.survival([0.0, 12.0, 36.0, 200.0]))
    assert r[0, 0] == pytest.approx(km_rmst(t, e, 60.0)[0])
    # Ties (deaths and censorings at the same rounded times), unsorted input.
    tr, er = np.round(t / 6.0)[::-1], e[::-1]
    s, r = weighted_km_draws(tr, er, w, milestones=[0.0, 3.0, 7.0], horizons=[10.0])
    assert np.allclose(s[1], km(tr, er).survival([0.0, 3.0, 7.0]))
    assert r[1, 0] == pytest.approx(km_rmst(tr, er, 10.0)[0])


def test_bb_mean_close_to_km(trial_small):
    rows = km_anchors(trial_small, milestones=[36.0, 60.0], horizons=[60.0], draws=4000, seed=1)
    for row in rows:
        draws = bb_draws(trial_small, [36.0, 60.0], [60.0], draws=4000, seed=1)[row["quantity"]]
        # Monte Carlo error of the mean is se / sqrt(4000) ~ se / 63.
        assert abs(draws.mean() - row["estimate"]) < 0.1 * row["se"]


def test_bb_interval_close_to_wald_on_large_trial(trial_large):
    rows = km_anchors(trial_large, milestones=[24.0, 48.0], horizons=[60.0], draws=2000, seed=2)
    for row in rows:
        width = row["upper"] - row["lower"]
        assert abs(row["bb_lower"] - row["lower"]) < 0.1 * width
        assert abs(row["bb_upper"] - row["upper"]) < 0.1 * width


def test_deterministic_and_fast(trial_small):
    a = km_anchors(trial_small, draws=1000, seed=7)
    b = km_anchors(trial_small, draws=1000, seed=7)
    assert a == b
    t0 = time.perf_counter()
    bb_draws(trial_small, (36, 60, 96), (60, 96), draws=4000)
    assert time.perf_counter() - t0 < 1.0


# --------------------------------------------------------------------------- pinned vs interpolated
# (pinning.py: which stretches the published numbers pin; tested here with the anchors.)


def _trial(curve=None):
    lms = (Landmark(36.0, 0.55), Landmark(60.0, 0.3))
    arms = {
        "ref": Arm(id="ref", n=59, events=53, median=Interval(40.5), survival=lms,
                   at_risk=(AtRisk(0.0, 59), AtRisk(12.0, 50))),
        "trt": Arm(id="trt", n=60, events=39, survival=lms, curve=curve),
    }
    return Trial(name="t", time_unit="months", reference_arm="ref", arms=arms)


def test_pinned_times_union_and_per_arm():
    tr = _trial()
    assert list(pinned_times(tr)) == [0.0, 12.0, 36.0, 40.5, 60.0]
    assert list(pinned_times(tr, "trt")) == [0.0, 36.0, 60.0]


def test_points_need_every_arm_pinned():
    tr = _trial()
    # 40.5 and 12 are knots of the reference arm only.
    assert support_of(tr, [0.0, 12.0, 36.0, 40.5, 50.0, 60.0]) == [
        "pinned", "interpolated", "pinned", "interpolated", "interpolated", "pinned"]
    assert support_of(tr, [35.5, 36.6], tol=0.5) == ["pinned", "interpolated"]


def test_intervals_pinned_at_both_ends():
    tr = _trial()
    assert interval_support(tr, [0, 12, 36, 60, math.inf]) == [
        "interpolated", "interpolated", "pinned", "interpolated"]
    assert interval_support(tr, [0, 36, 60]) == ["pinned", "pinned"]
    with pytest.raises(ValueError):
        interval_support(tr, [0, 36, 36])


def test_digitized_curve_pins_its_range():
    curve = (np.array([0.0, 5.0, 30.0]), np.array([1.0, 0.9, 0.6]))
    tr = _trial(curve)
    # trt's curve covers 0-30, but ref still only has its knots at 0 and 12.
    assert interval_support(tr, [0, 12, 24]) == ["pinned", "interpolated"]
    assert support_of(tr, [12.0, 31.0]) == ["pinned", "interpolated"]


def test_clocc_pinning():
    tr = load_trial(Path(__file__).resolve().parents[1] / "data" / "raw" / "clocc_os.toml")
    assert list(pinned_times(tr)) == [0.0, 36.0, 40.5, 45.6, 60.0, 96.0]
    assert interval_support(tr, [0, 12, 24, 36, 60, 96, math.inf]) == [
        "interpolated", "interpolated", "interpolated", "pinned", "pinned", "interpolated"]
