"""Posterior predictive check against the published numbers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from kmbayes.data import SurvivalData, simulate_trial
from kmbayes.families import get
from kmbayes.km import km
from kmbayes.ppc import (
    COLUMNS,
    check_against_publication,
    format_ppc_csv,
    misfitting,
    replicate_km,
    sample_censoring_times,
    sample_event_times,
    write_ppc_csv,
)
from kmbayes.trial import Arm, Interval, Landmark, Trial

WEIBULL = get("weibull_ph")
CTX = {"t_ref": 36.0, "cuts": (0.0, 12.0, 24.0, 36.0, 60.0, 96.0, math.inf)}
SHAPE, SCALE, HR = 1.2, 40.0, 0.6
ARMS = ("systemic", "combined")


def truth_post(s: int = 1000, sd: float = 0.0, seed: int = 0, shape=SHAPE, scale=SCALE, hr=HR) -> dict:
    """Weibull PH draws at (or, with ``sd``, around) a known truth.

    H_0(t) = (t / scale)^shape, so alpha = log H_0(t_ref) = shape log(t_ref / scale).
    """
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sd, (3, s))
    return {
        "alpha": shape * math.log(CTX["t_ref"] / scale) + noise[0],
        "log_shape": math.log(shape) + noise[1],
        "log_hr": math.log(hr) + noise[2],
    }


def published_from(data: SurvivalData, landmarks=(36.0, 60.0, 96.0)) -> Trial:
    """A trial file whose 'published' numbers are the KM summaries of ``data``."""
    arms = {}
    for k, arm_id in enumerate(ARMS):
        m = data.arm == k
        f = km(data.time[m], data.event[m])
        lms = tuple(Landmark(t, *f.ci_at(t)) for t in landmarks)
        lo, hi = f.median_ci()
        med = Interval(f.median(), lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None)
        arms[arm_id] = Arm(id=arm_id, n=int(m.sum()), events=int(data.event[m].sum()),
                           median=med if math.isfinite(med.estimate) else None, survival=lms)
    return Trial(name="sim", time_unit="months", reference_arm=ARMS[0], arms=arms)


def sim(seed: int, **kw) -> SurvivalData:
    return simulate_trial(np.random.default_rng(seed), shape=SHAPE, scale=SCALE, hr=HR,
                          arm_ids=ARMS, **kw)


# --------------------------------------------------------------------------- building blocks


def test_replicate_km_equals_km_per_row():
    rng = np.random.default_rng(0)
    t = np.round(rng.exponential(30.0, (40, 25)), 0)  # rounding forces ties
    e = (rng.uniform(size=t.shape) < 0.7).astype(float)
    lms = [0.0, 10.0, 30.0, 80.0]
    s, med = replicate_km(t, e, lms)
    for r in range(t.shape[0]):
        f = km(t[r], e[r])
        assert np.allclose(s[r], f.survival(lms))
        assert med[r] == f.median()


def test_event_times_follow_the_weibull():
    rng = np.random.default_rng(1)
    post = truth_post(200)
    t = sample_event_times(WEIBULL, post, 1, CTX, 200, rng, t_max=150.0)
    emp = [np.mean(t <= x) for x in (12.0, 36.0, 96.0)]
    exact = [1 - math.exp(-HR * (x / SCALE) ** SHAPE) for x in (12.0, 36.0, 96.0)]
    assert np.allclose(emp, exact, atol=0.01)  # 40 000 draws: SE ~0.0025
    # Beyond the grid end: inf, exactly as often as S(150).
    assert np.mean(np.isinf(t)) == pytest.approx(math.exp(-HR * (150 / SCALE) ** SHAPE), abs=0.01)


def test_predictive_interval_is_closed_on_atoms_and_rounding():
    from kmbayes.ppc import _half_unit, _row

    assert _half_unit(0.089) == pytest.approx(0.0005)
    assert _half_unit(40.5) == pytest.approx(0.05)
    # A KM S(96) of 1/59 (one survivor) that replicated trials also produce 3% of
    # the time is not a misfit, and neither is its published rounding 0.017.
    rep = np.r_[np.full(30, 1 / 59), np.full(970, 3 / 59)]
    for pub in (1 / 59, 0.017):
        row = _row("m", "p", "a", "S(96)", pub, None, None, rep, rep, 0.95)
        assert row["verdict"] == "ok" and row["predictive_lower"] == 1 / 59
    row = _row("m", "p", "a", "S(96)", 0.0001, None, None, rep, rep, 0.95)
    assert row["verdict"] == "misfit" and row["predictive_tail"] == 0.0


def test_censoring_times_reproduce_reverse_km():
    data = sim(2, n=(300, 300), accrual=60.0, min_followup=30.0)  # censored over 30..90
    m = data.arm == 0
    c = sample_censoring_times(data.time[m], data.event[m], (20000,), np.random.default_rng(3))
    rk = km(data.time[m], 1 - data.event[m])
    for x in (40.0, 60.0, 80.0):
        assert np.mean(c > x) == pytest.approx(rk.survival(x), abs=0.015)
    assert c.max() <= data.time[m].max()


# --------------------------------------------------------------------------- the check


def true_trial(data: SurvivalData) -> Trial:
    """'Published' numbers equal to the population truth (an infinitely large trial)."""
    arms = {}
    for k, arm_id in enumerate(ARMS):
        hr = HR if k == 1 else 1.0
        surv = tuple(Landmark(t, math.exp(-hr * (t / SCALE) ** SHAPE)) for t in (36.0, 60.0, 96.0))
        med = SCALE * (math.log(2.0) / hr) ** (1.0 / SHAPE)
        m = data.arm == k
        arms[arm_id] = Arm(id=arm_id, n=int(m.sum()), events=int(data.event[m].sum()),
                           median=Interval(med), survival=surv)
    return Trial(name="truth", time_unit="months", reference_arm=ARMS[0], arms=arms)


def test_truth_passes_single_trial():
    data = sim(4)
    rows = check_against_publication(WEIBULL, truth_post(sd=0.02), CTX, true_trial(data), data,
                                     model="weibull_ph", prior="truth", replicates=500, seed=1)
    assert len(rows) == 8  # 3 landmarks + median, two arms
    assert all(r["verdict"] == "ok" and r["in_implied"] for r in rows)
    assert all(r["predictive_tail"] > 0.2 for r in rows)  # the truth sits mid-distribution
    assert misfitting(rows) == set()


def test_truth_predictive_coverage_is_nominal():
    # Calibration of the replicated trials (size, censoring, KM): with draws at
    # the truth, the published KM values fall in the 95% predictive interval
    # about 95% of the time over independent trials. A wrong censoring pattern
    # or at-risk count moves this far away.
    hits = []
    for seed in range(30):
        data = sim(100 + seed)
        rows = check_against_publication(WEIBULL, truth_post(400), CTX, published_from(data), data,
                                         replicates=400, seed=seed)
        hits += [r["verdict"] == "ok" for r in rows]
    assert 0.88 <= np.mean(hits) <= 0.995


def test_planted_misfit_is_flagged():
    # 'Published' curves with a cure fraction: S plateaus near 0.45 after 5 years
    # in both arms, while the PH Weibull draws (median ~ 3 years) keep falling.
    rng = np.random.default_rng(5)
    n = 60
    arm = np.r_[np.zeros(n, int), np.ones(n, int)]
    cured = rng.uniform(size=2 * n) < 0.45
    t = np.where(cured, np.inf, rng.exponential(15.0, 2 * n))
    cens = rng.uniform(90.0, 150.0, 2 * n)
    data = SurvivalData(np.minimum(t, cens), (t <= cens).astype(float), arm, ARMS)
    post = truth_post(1000, sd=0.05, hr=1.0)
    rows = check_against_publication(WEIBULL, post, CTX, published_from(data), data,
                                     model="weibull_ph", prior="reference", seed=0)
    bad = {(r["arm"], r["statistic"]) for r in rows if r["verdict"] == "misfit"}
    assert ("systemic", "S(96)") in bad and ("combined", "S(96)") in bad
    assert misfitting(rows) == {("weibull_ph", "reference")}
    assert not any(r["in_implied"] for r in rows if r["statistic"] == "S(96)")


def test_piecewise_family_runs_and_is_deterministic():
    data = sim(6)
    fam = get("piecewise_ph")
    rng = np.random.default_rng(0)
    # Rates matching the Weibull truth roughly (H(36) ~ 0.88 over 36 months).
    post = {"log_lambda": np.log(0.025) + rng.normal(0, 0.05, (500, 6)),
            "log_hr": np.log(HR) + rng.normal(0, 0.05, 500)}
    a = check_against_publication(fam, post, CTX, published_from(data), data, seed=3, replicates=300)
    b = check_against_publication(fam, post, CTX, published_from(data), data, seed=3, replicates=300)
    c = check_against_publication(fam, post, CTX, published_from(data), data, seed=4, replicates=300)
    assert a == b
    assert a != c


def test_arm_order_must_match():
    data = sim(7)
    trial = published_from(data)
    flipped = SurvivalData(data.time, data.event, 1 - data.arm, ARMS[::-1])
    with pytest.raises(ValueError):
        check_against_publication(WEIBULL, truth_post(), CTX, trial, flipped)


def test_fast():
    data = sim(8)
    trial = published_from(data)
    post = truth_post(4000, sd=0.1)
    t0 = time.perf_counter()
    check_against_publication(WEIBULL, post, CTX, trial, data, replicates=500)
    assert time.perf_counter() - t0 < 1.5


def test_csv_has_no_nan_and_fixed_precision(tmp_path):
    import pandas as pd

    data = sim(9)
    trial = published_from(data)
    # Drop a CI bound: it must come out as an empty cell.
    arm = trial.arms["systemic"]
    lm0 = arm.survival[0]
    trial.arms["systemic"] = Arm(id=arm.id, n=arm.n, events=arm.events, median=arm.median,
                                 survival=(Landmark(lm0.time, lm0.estimate),) + arm.survival[1:])
    rows = check_against_publication(WEIBULL, truth_post(), CTX, trial, data, model="weibull_ph",
                                     prior="reference", replicates=200)
    path = tmp_path / "out" / "ppc.csv"
    write_ppc_csv(rows, path)
    text = path.read_text()
    assert "nan" not in text.lower()
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert tuple(df.columns) == COLUMNS
    first = df.iloc[0]
    assert first["published_lower"] == "" and first["published_upper"] == ""
    assert all(len(v.split(".")[1]) == 3 for v in df["implied_median"])
    assert set(df["verdict"]) <= {"ok", "misfit"}
    assert format_ppc_csv(rows) == text


def test_check_fit_reads_a_fit_object():
    from types import SimpleNamespace

    import xarray as xr

    from kmbayes.ppc import check_fit

    data = sim(10)
    post = truth_post(200, sd=0.02)
    posterior = xr.Dataset({k: (("chain", "draw"), v.reshape(2, 100)) for k, v in post.items()})
    fit = SimpleNamespace(model="weibull_ph", prior=SimpleNamespace(name="reference"), data=data,
                          ctx=CTX, idata=xr.DataTree.from_dict({"posterior": posterior}))
    rows = check_fit(fit, true_trial(data), replicates=100, seed=2)
    direct = check_against_publication(WEIBULL, post, CTX, true_trial(data), data, model="weibull_ph",
                                       prior="reference", replicates=100, seed=2)
    assert rows == direct
