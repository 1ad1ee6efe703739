"""Tipping point by importance reweighting: edge cases of the draws."""

from __future__ import annotations

import types

import numpy as np
import pytest

from kmbayes import estimands, tipping
from kmbayes.priors import PriorSpec


def test_threshold_met_exactly_at_the_fitted_prior(monkeypatch):
    # 570 of 600 draws below 0 under the fitted N(0, 1) prior: P(HR < 1) is
    # exactly 0.95, so the root is the fitted prior itself and every weight
    # is equal. ArviZ refuses such weights; a fresh clone's grid once hit it.
    rng = np.random.default_rng(0)
    b = np.r_[-np.abs(rng.normal(0.3, 0.1, 570)), np.abs(rng.normal(0.05, 0.02, 30))]
    monkeypatch.setattr(estimands, "log_hr_draws", lambda fit: b)
    fit = types.SimpleNamespace(prior=PriorSpec("reference", 0.0, 1.0, "test"))
    out = tipping.tipping_point_is(fit, 0.95)
    assert out["sigma"] == pytest.approx(1.0)
    assert out["p_hr_lt_1"] == pytest.approx(0.95)
    assert out["pareto_k"] == 0.0


def test_pareto_k_of_spread_weights_is_computed():
    k = tipping._psis_k(np.random.default_rng(1).standard_t(2, 600))
    assert np.isfinite(k) and k != 0.0
