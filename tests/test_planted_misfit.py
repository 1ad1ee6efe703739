"""A planted misfit is flagged end to end: Weibull PH fitted to data from a cure model.

The data come from a mixture cure model with a long plateau (cure fractions
0.15 vs 0.40); the "published" numbers are their own Kaplan-Meier landmarks.
A fitted Weibull PH model cannot bend to the plateau and must miss one of
them; the cure model, fitted to the same data, must reproduce them all.
"""

from __future__ import annotations

import numpy as np
import pytest

from kmbayes import priors
from kmbayes.km import km
from kmbayes.ppc import check_fit, misfitting
from kmbayes.trial import Arm, Landmark, Trial

from .conftest import quick_fit
from .test_cure import simulate_cure_trial

ARMS = ("control", "treated")


def _published(data) -> Trial:
    arms = {}
    for k, arm_id in enumerate(ARMS):
        m = data.arm == k
        f = km(data.time[m], data.event[m])
        surv = tuple(Landmark(t, round(float(f.survival(t)), 3)) for t in (12.0, 36.0, 96.0, 144.0))
        arms[arm_id] = Arm(id=arm_id, n=int(m.sum()), events=int(data.event[m].sum()), survival=surv)
    return Trial(name="planted", time_unit="months", reference_arm=ARMS[0], arms=arms)


@pytest.mark.slow
def test_weibull_ph_on_cure_data_is_flagged_and_the_cure_model_is_not():
    d = simulate_cure_trial(np.random.default_rng(11), n=(250, 250), cure_fraction=(0.15, 0.40),
                            shape=1.5, scale=20.0, hr_uncured=0.9, min_followup=150.0)
    d = type(d)(d.time, d.event, d.arm, ARMS)
    trial = _published(d)
    wb = quick_fit("weibull_ph", d, priors.reference(), draws=1000, tune=500, seed=1, loo=False)
    cure = quick_fit("cure", d, priors.reference(), draws=1000, tune=1000, seed=1, loo=False)
    wb_rows = check_fit(wb.fit, trial, replicates=400, seed=2)
    cure_rows = check_fit(cure.fit, trial, replicates=400, seed=2)
    assert misfitting(wb_rows) == {("weibull_ph", "reference")}, [
        (r["arm"], r["statistic"], r["published"], r["predictive_lower"], r["predictive_upper"])
        for r in wb_rows]
    assert misfitting(cure_rows) == set()
