"""CI types: the ``ci`` field, the four Greenwood scales, the misfit warning, and their use."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmbayes.errors import InputError
from kmbayes.km import CI_KINDS, km, loglog_ci, survival_ci
from kmbayes.reconstruct import reconstruct
from kmbayes.reconstruct.check import check_rows, misses
from kmbayes.trial import ci_fit_warnings, ci_misfit, parse_trial

from .test_summary_engine import kmdata_arms, nice_landmarks

SURV = np.array([0.9, 0.6, 0.3, 0.08])
GW = np.array([0.002, 0.01, 0.03, 0.12])


def test_each_scale_is_symmetric_where_it_should_be():
    z = 1.959963984540054
    lo, hi = survival_ci(SURV, GW, "plain")
    np.testing.assert_allclose(hi - SURV, SURV - lo)
    np.testing.assert_allclose(SURV - lo, z * SURV * np.sqrt(GW))
    lo, hi = survival_ci(SURV, GW, "log")
    np.testing.assert_allclose(np.log(hi) - np.log(SURV), np.log(SURV) - np.log(lo))
    lo, hi = survival_ci(SURV, GW, "arcsine")
    a = np.arcsin(np.sqrt(SURV))
    np.testing.assert_allclose(np.arcsin(np.sqrt(hi)) - a, a - np.arcsin(np.sqrt(lo)))
    lo, hi = survival_ci(SURV, GW, "log-log")
    np.testing.assert_allclose((lo, hi), loglog_ci(SURV, GW))
    for kind in CI_KINDS:
        lo, hi = survival_ci(SURV, GW, kind)
        assert np.all((0 <= lo) & (lo <= SURV) & (SURV <= hi) & (hi <= 1))
    with pytest.raises(ValueError):
        survival_ci(SURV, GW, "logit")


def _doc(ci_trial=None, ci_arm=None, lm=None):
    lm = lm or {"time": 12, "estimate": 0.6, "lower": 0.5, "upper": 0.7}
    a = {"n": 100, "events": 50, "survival": [lm]}
    if ci_arm:
        a["ci"] = ci_arm
    t = {"name": "x", "time_unit": "months", "reference_arm": "a"}
    if ci_trial:
        t["ci"] = ci_trial
    return {"trial": t, "arms": {"a": a, "b": {"n": 100, "events": 40, "median": {"estimate": 20.0}}}}


def test_field_per_trial_and_per_arm():
    tr = parse_trial(_doc())
    assert tr.arms["a"].ci == tr.arms["b"].ci == "log-log"
    tr = parse_trial(_doc(ci_trial="plain"))
    assert tr.arms["a"].ci == tr.arms["b"].ci == "plain"
    tr = parse_trial(_doc(ci_trial="plain", ci_arm="log"))
    assert (tr.arms["a"].ci, tr.arms["b"].ci) == ("log", "plain")
    with pytest.raises(InputError) as ex:
        parse_trial(_doc(ci_arm="logit"))
    assert ex.value.field == "arms.a.ci"
    with pytest.raises(InputError) as ex:
        parse_trial(_doc(ci_trial=3))
    assert ex.value.field == "trial.ci"


def _published(kind, s=0.12, gw=0.05):
    lo, hi = survival_ci(np.array([s]), np.array([gw]), kind)
    return {"time": 12, "estimate": round(s, 3), "lower": round(float(lo[0]), 3), "upper": round(float(hi[0]), 3)}


@pytest.mark.parametrize("kind", CI_KINDS)
def test_misfit_warning_names_the_landmark(kind):
    lm = _published(kind)
    assert not parse_trial(_doc(ci_arm=kind, lm=lm)).warnings  # declared right: silent
    others = [k for k in CI_KINDS if k != kind and k != "arcsine" and kind != "arcsine"]
    for other in others:  # arcsine sits between plain and log: too close to tell apart here
        w = parse_trial(_doc(ci_arm=other, lm=lm)).warnings
        assert len(w) == 1 and w[0].startswith("arms.a.survival[0]") and f'"{kind}"' in w[0]


def test_symmetric_interval_declared_log_log_warns():
    """The issue's CLOCC example: a symmetric CI around S(96) = 0.089."""
    tr = parse_trial(_doc(lm={"time": 96, "estimate": 0.089, "lower": 0.015, "upper": 0.163}))
    assert len(tr.warnings) == 1 and "plain" in tr.warnings[0]
    assert ci_misfit(tr.arms["a"].survival[0], "plain") <= 1.0
    assert ci_misfit(tr.arms["a"].survival[0], "log-log") > 1.0


def test_published_log_log_cis_of_real_figures_fit():
    for name in ("ACT2_2C", "CONCEPT_1A", "OMEGA_3B"):
        for t, e in kmdata_arms(name).values():
            f = km(t, e)
            for lt in nice_landmarks(float(t.max())):
                s, lo, hi = f.ci_at(lt)
                if 0 < s < 1:
                    doc = _doc(lm={"time": lt, "estimate": round(s, 3), "lower": round(lo, 3),
                                   "upper": round(hi, 3)})
                    assert not ci_fit_warnings(parse_trial(doc).arms["a"])


@pytest.mark.parametrize("kind", ["plain", "log"])
def test_reconstruction_reads_cis_as_declared(kind):
    """CIs published on another scale: declared, they are reproduced; undeclared, missed."""
    arms = kmdata_arms("OMEGA_3B")
    ids = sorted(arms)
    lms = nice_landmarks(max(float(t.max()) for t, _ in arms.values()))
    doc = {"trial": {"name": "x", "time_unit": "months", "reference_arm": ids[0], "ci": kind}, "arms": {}}
    for a in ids:
        f = km(*arms[a])
        surv = []
        for lt in lms:
            s, lo, hi = f.ci_at(lt, kind=kind)
            if 0 < s < 1:
                surv.append({"time": lt, "estimate": round(s, 3), "lower": round(lo, 3), "upper": round(hi, 3)})
        m = f.median()
        d = {"n": len(arms[a][0]), "events": int(arms[a][1].sum()), "survival": surv}
        if math.isfinite(m):
            d["median"] = {"estimate": round(m, 1)}
        doc["arms"][a] = d
    tr = parse_trial(doc)
    rec = reconstruct(tr, seed=1)
    bounds = [r for r in check_rows(tr, rec.replicates) if r.statistic.endswith(("lower", "upper"))
              and r.statistic.startswith("S(")]
    assert bounds and not misses(bounds), [r.warning() for r in misses(bounds)]
    # The same numbers read as log-log: at least one bound is off beyond its tolerance
    # or the trial warns that the CIs are not log-log.
    del doc["trial"]["ci"]
    tr2 = parse_trial(doc)
    rows2 = check_rows(tr2, reconstruct(tr2, seed=1).replicates)
    assert tr2.warnings or misses(rows2)
