"""Grambsch-Therneau test and window Cox HRs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmbayes.data import simulate_trial
from kmbayes.km import cox_two_group
from kmbayes.ph_test import grambsch_therneau, window_cox

LATE = dict(cuts=[0.0, 36.0, math.inf], rates=[0.02, 0.02], hrs=[1.0, 0.3])


@pytest.fixture(scope="module")
def ph_trial():
    return simulate_trial(np.random.default_rng(1), n=(300, 300), shape=1.0, scale=40.0, hr=0.6)


@pytest.fixture(scope="module")
def late_trial():
    # No effect for 3 years, then HR 0.3: the CLOCC pattern, exaggerated.
    return simulate_trial(np.random.default_rng(1), n=(300, 300), **LATE)


def test_gt_does_not_reject_under_ph(ph_trial):
    for tf in ("km", "rank"):
        res = grambsch_therneau(ph_trial, tf)
        assert res["p"] > 0.05
        assert res["chi2"] >= 0 and res["df"] == 1


def test_gt_rejects_late_effect(late_trial):
    for tf in ("km", "rank"):
        assert grambsch_therneau(late_trial, tf)["p"] < 0.01


def test_gt_reports_the_cox_hr(ph_trial):
    res = grambsch_therneau(ph_trial)
    c = cox_two_group(ph_trial.time, ph_trial.event, ph_trial.arm)
    assert res["hr"] == pytest.approx(c.hr, rel=1e-6)
    assert res["lower"] == pytest.approx(c.lower, rel=1e-5)
    with pytest.raises(ValueError):
        grambsch_therneau(ph_trial, "loglog")


def test_whole_range_window_is_overall_cox(late_trial):
    (row,) = window_cox(late_trial, [(0.0, math.inf)])
    c = cox_two_group(late_trial.time, late_trial.event, late_trial.arm)
    assert row["hr"] == pytest.approx(c.hr, rel=1e-9)
    assert (row["lower"], row["upper"]) == pytest.approx((c.lower, c.upper), rel=1e-9)
    assert row["deaths_ref"] + row["deaths_trt"] == int(late_trial.event.sum())
    assert row["at_risk_start"] == late_trial.n


def test_window_matches_lifelines_left_truncation(late_trial):
    import pandas as pd
    from lifelines import CoxPHFitter

    a, b = 36.0, 96.0
    t, e, g = late_trial.time, late_trial.event, late_trial.arm
    m = t > a
    df = pd.DataFrame({"entry": a, "time": np.minimum(t[m], b), "event": (e[m] * (t[m] <= b)).astype(int),
                       "x": g[m].astype(float)})
    cph = CoxPHFitter().fit(df, duration_col="time", event_col="event", entry_col="entry")
    (row,) = window_cox(late_trial, [(a, b)])
    assert row["hr"] == pytest.approx(math.exp(cph.params_["x"]), rel=1e-5)  # lifelines stops at its tolerance
    assert row["deaths_ref"] + row["deaths_trt"] == int(df["event"].sum())


def test_windows_recover_the_late_effect(late_trial):
    early, late = window_cox(late_trial, [(0, 36), (36, math.inf)])
    assert early["lower"] < 1.0 < early["upper"]
    assert late["upper"] < 0.6
    assert early["window"] == "0_36" and late["window"] == "36_inf"


def test_empty_window_rejected_and_no_deaths_is_nan(ph_trial):
    with pytest.raises(ValueError):
        window_cox(ph_trial, [(12, 12)])
    (row,) = window_cox(ph_trial, [(1e6, math.inf)])
    assert row["at_risk_start"] == 0 and math.isnan(row["hr"])
