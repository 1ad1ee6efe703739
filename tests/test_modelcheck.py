"""The checks run after the grid (:mod:`kmbayes.modelcheck`)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from kmbayes import modelcheck, priors
from kmbayes.data import simulate_trial
from kmbayes.families import BaselinePrior


@pytest.fixture(scope="module")
def data():
    return simulate_trial(np.random.default_rng(4), n=(80, 80), hr=0.7)


def test_cure_prior_predictive_matches_the_models_own_draws(data):
    """The NumPy prior predictive uses the same constants as the PyMC model (``pm.draw``)."""
    from kmbayes.families.cure import prior_predictive_cure

    ps = priors.prior_set(["sceptical", "enthusiastic"], 0.7, 0.05, {})
    spec = SimpleNamespace(models=("cure",), priors=ps, baseline=BaselinePrior())
    rows = {(r["prior"], r["quantity"]): r for r in modelcheck.cure_rows(spec, data, 1)
            if r["kind"] == "prior predictive"}
    for pname, prior in ps.items():
        ref = prior_predictive_cure(data, prior, draws=4000, seed=3)
        for q in ("cure_reference", "cure_difference"):
            lo, med, hi = np.quantile(ref[q], [0.025, 0.5, 0.975])
            r = rows[(pname, q)]
            assert abs(r["estimate"] - med) < 0.03 and abs(r["upper"] - hi) < 0.06, (pname, q)
    # the enthusiast expects a benefit, the sceptic does not
    assert rows[("enthusiastic", "p_cure_difference_gt_0")]["estimate"] > 0.9
    assert abs(rows[("sceptical", "p_cure_difference_gt_0")]["estimate"] - 0.5) < 0.05


def test_no_cure_rows_without_the_cure_model(data):
    spec = SimpleNamespace(models=("weibull_ph",), priors={}, baseline=BaselinePrior())
    assert modelcheck.cure_rows(spec, data, 1) == []


def test_ph_rows_count_every_death_once(data):
    cuts = (0.0, 12.0, 36.0, math.inf)
    rows = modelcheck.ph_rows(data, cuts, None)
    assert rows[0]["test"] == "grambsch_therneau" and 0 <= rows[0]["p"] <= 1
    win = [r for r in rows if r["test"] == "window_cox"]
    assert [r["window"] for r in win] == ["0_12", "12_36", "36_inf"]
    assert sum(r["deaths_ref"] + r["deaths_trt"] for r in win) == int(data.event.sum())
