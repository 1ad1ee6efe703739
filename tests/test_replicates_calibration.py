"""Replicates: the perturbations keep what is published, and widen the spread to the error.

The calibration itself (coverage of the central 90% of 20 replicates over
the dev figures, by 5-fold cross-validation) is measured by
``benchmarks/cv_reconstruction.py`` with the validation material; here are the
properties that hold without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmbayes.km import km
from kmbayes.reconstruct import reconstruct
from kmbayes.reconstruct import replicates as R
from kmbayes.reconstruct.replicates import reading_error, reread_curve, tilt_events
from kmbayes.trial import parse_trial

from .test_curve_engine import cox_loghr, figure_trial
from .test_summary_engine import cox_hr, kmdata_arms, summary_doc


def test_tilt_keeps_deaths_in_their_interval():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 30, 400))
    e = (rng.random(400) < 0.6).astype(int)
    edges = np.array([0.0, 6.0, 12.5, 20.0, 30.0])
    new = tilt_events(t, e, edges, 3.0, np.random.default_rng(1))
    np.testing.assert_array_equal(new[e == 0], t[e == 0])  # censorings untouched
    np.testing.assert_array_equal(np.searchsorted(edges, new, "right"), np.searchsorted(edges, t, "right"))
    assert np.abs(new - t)[e == 1].max() > 0.5  # and the deaths did move
    again = tilt_events(t, e, edges, 3.0, np.random.default_rng(1))
    np.testing.assert_array_equal(new, again)
    np.testing.assert_array_equal(tilt_events(t, e, edges, 0.0, np.random.default_rng(1)), t)


def test_reading_error_is_estimated_from_the_points():
    """Clicks with known reading error: the estimate is within a factor 1.6 of it."""
    rng = np.random.default_rng(2)
    for sd in (0.002, 0.005):
        level = np.repeat(np.linspace(1, 0.3, 40), 4)
        tt = np.linspace(0, 50, level.size)
        est, _ = reading_error(tt, level + rng.normal(0, sd, level.size))
        assert sd / 1.6 < est < sd * 1.6, (sd, est)


def test_reread_keeps_the_anchor_and_percent():
    t = np.array([0.0, 1, 2, 3, 4, 5, 6, 7])
    s = np.array([100.0, 95, 95, 90, 90, 80, 80, 75])
    tt, ss = reread_curve(t, s, 1.0, np.random.default_rng(0))
    assert tt[0] == 0 and ss[0] == 100.0 and ss.max() > 1.5
    assert not np.array_equal(ss, s)


def _spread(trial, scale_attr, value, monkeypatch, K=20):
    monkeypatch.setattr(R, scale_attr, value)
    rec = reconstruct(trial, seed=5, replicates=K)
    return rec


def test_summary_replicates_spread_with_the_scale_and_keep_published_numbers(monkeypatch):
    arms = kmdata_arms("OMEGA_3B")
    tr = parse_trial(summary_doc(arms, "OMEGA_3B"))
    ref = tr.reference_arm
    sds = []
    for v in (0.0, R.SUMMARY_TILT):
        rec = _spread(tr, "SUMMARY_TILT", v, monkeypatch)
        sds.append(np.std([math.log(cox_hr(r, ref)) for r in rec.replicates], ddof=1))
        for rep in rec.replicates[1:]:
            for arm_id, arm in tr.arms.items():
                t, e = rep[arm_id]
                assert len(t) == arm.n and int(e.sum()) == arm.events
                f = km(t, e)
                for lm in arm.survival:  # deaths stay between published times
                    assert f.survival(lm.time) == pytest.approx(lm.estimate, abs=0.03)
    assert sds[1] > 1.5 * sds[0], sds


def test_curve_replicates_spread_with_the_scale_and_keep_the_table(monkeypatch):
    trial, _ = figure_trial("CONCEPT_1A")
    sds = []
    for v in (0.0, max(R.CURVE_READ, 1.0)):
        rec = _spread(trial, "CURVE_READ", v, monkeypatch)
        sds.append(np.std([cox_loghr(r, trial.reference_arm) for r in rec.replicates[:10]], ddof=1))
        for rep in rec.replicates:
            for arm_id, arm in trial.arms.items():
                t, e = rep[arm_id]
                assert len(t) == arm.n and int(e.sum()) == arm.events
                for row in arm.at_risk:
                    assert int((t >= row.time).sum()) == row.n
    assert sds[1] > sds[0], sds


def test_replicates_reproducible():
    arms = kmdata_arms("ACT2_2C")
    tr = parse_trial(summary_doc(arms, "ACT2_2C"))
    a = reconstruct(tr, seed=9, replicates=4).csv_text(True)
    b = reconstruct(tr, seed=9, replicates=4).csv_text(True)
    c = reconstruct(tr, seed=10, replicates=4).csv_text(True)
    assert a == b and a != c
