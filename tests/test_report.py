"""The report's method items are read from what was done, not from the config."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from kmbayes.report import sampling_items


def _fit(chains, draws, target_accept, tune=300, gate=None):
    post = SimpleNamespace(sizes={"chain": chains, "draw": draws})
    manifest = {"attempts": [{"target_accept": 0.9, "tune": tune},
                             {"target_accept": target_accept, "tune": tune}],
                "gate": gate or {"rhat_max": 1.01, "ess_min": 400.0, "divergences_max": 0}}
    return SimpleNamespace(idata={"posterior": post}, manifest=manifest)


def test_sampling_items_report_draws_retries_mcse_and_gate():
    fits = {("weibull_ph", "reference"): _fit(2, 2500, 0.9),
            ("weibull_ph", "sceptical"): _fit(2, 5000, 0.95),  # a retried fit shows
            ("piecewise_tv", "reference"): _fit(2, 5000, 0.95)}
    res = pd.DataFrame({"quantity": ["hr", "p_hr_lt_1", "p_hr_lt_0.8", "surv_diff_36"],
                        "mcse": [0.0021, 0.0024, 0.0084, math.nan]})
    five, six = sampling_items(fits, res)
    assert "Weibull PH 2 × 2500 draws (target acceptance 0.9) or 2 × 5000 draws " \
           "(target acceptance 0.95)" in five
    assert "HR per interval 2 × 5000 draws (target acceptance 0.95)" in five
    assert "after 300 tuning steps" in five
    assert "at most 0.84 percentage points" in five and "at most 0.0021" in five
    assert "R-hat ≤ 1.01, bulk and tail ESS ≥ 400, no divergences" in six


def test_sampling_items_without_mcse_or_manifest():
    fit = SimpleNamespace(idata={"posterior": SimpleNamespace(
        sizes={"chain": 4, "draw": 1000})}, manifest=None)
    five, six = sampling_items({("piecewise_ph", "reference"): fit},
                               pd.DataFrame({"quantity": ["hr"]}))
    assert "4 × 1000 draws" in five and "Monte Carlo" not in five
    assert "R-hat" not in six and "flagged" in six
