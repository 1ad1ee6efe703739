"""Documented limits (``kmbayes.limits.LIMITS``): refused just past each one, accepted at it.

Each refusal is one line naming the field, exit 2, nothing written, and
quick (the point of a limit is not to start minutes of work).
"""

from __future__ import annotations

import copy
import time
import tomllib
from pathlib import Path

import pytest

from kmbayes import limits
from kmbayes.errors import InputError
from kmbayes.limits import LIMITS
from kmbayes.trial import load_trial

from .test_fuzz_inputs import TRIALS, check_refusal, dump_toml, run_inprocess

ROOT = Path(__file__).resolve().parents[1]
BASE = tomllib.loads(TRIALS[0].read_text())


def test_every_limit_is_documented():
    for key in LIMITS:
        assert f"``{key}``" in limits.__doc__, key


def _trial(tmp_path, mutate) -> Path:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    p = tmp_path / "t.toml"
    p.write_text(dump_toml(doc))
    return p


def _refused(argv, field, tmp_path):
    t = time.perf_counter()
    rc, out, err = run_inprocess(argv)
    assert rc == 2, err
    assert field in err, (field, err)
    check_refusal(rc, err)
    assert time.perf_counter() - t < 5
    return err


def _strip_landmarks(d):
    for a in d["arms"].values():
        a.pop("survival", None)
        a.pop("median", None)
        a.pop("at_risk", None)
    d.pop("reported", None)


@pytest.mark.parametrize("n, ok", [(LIMITS["arm_n_max"], True), (LIMITS["arm_n_max"] + 1, False),
                                   (1e18, False), (10**6, False), (LIMITS["arm_n_min"] - 1, False), (1, False)])
def test_arm_size_limits(tmp_path, n, ok):
    def mut(d):
        _strip_landmarks(d)
        d["arms"]["combined"]["n"] = n
        d["arms"]["combined"]["events"] = 1
    p = _trial(tmp_path, mut)
    if ok:
        assert load_trial(p).arms["combined"].n == n
    else:
        with pytest.raises(InputError) as ei:
            load_trial(p)
        assert ei.value.field == "arms.combined.n"
        _refused(["reconstruct", p, "--out", tmp_path / "o.csv"], "arms.combined.n", tmp_path)
        assert not (tmp_path / "o.csv").exists()


def test_large_numbers_refused(tmp_path):
    p = _trial(tmp_path, lambda d: d["arms"]["combined"]["median"].update(estimate=1e300))
    _refused(["reconstruct", p, "--out", tmp_path / "o.csv"], "arms.combined.median.estimate", tmp_path)


def test_curve_points_limit(tmp_path):
    (tmp_path / "c.csv").write_text("t,s\n" + "\n".join(f"{i},{1 - i / 1e5}" for i in range(LIMITS["curve_points_max"] + 5)))
    p = _trial(tmp_path, lambda d: d["arms"]["combined"].update(curve="c.csv"))
    _refused(["reconstruct", p, "--out", tmp_path / "o.csv"], "arms.combined.curve", tmp_path)


@pytest.mark.parametrize("reps", [LIMITS["replicates_max"] + 1, 2000])
def test_replicates_limit(tmp_path, reps):
    _refused(["reconstruct", TRIALS[0], "--out", tmp_path / "o.csv", "--replicates", str(reps)], "--replicates", tmp_path)
    assert not (tmp_path / "o.csv").exists()


def test_patient_rows_limit(tmp_path):
    def mut(d):
        _strip_landmarks(d)
        for a in d["arms"].values():
            a["n"] = LIMITS["arm_n_max"]
            a["events"] = 10
    p = _trial(tmp_path, mut)
    reps = LIMITS["patient_rows_max"] // (2 * LIMITS["arm_n_max"]) + 1
    _refused(["reconstruct", p, "--out", tmp_path / "o.csv", "--replicates", str(reps)], "--replicates", tmp_path)


def test_ipd_rows_limit(tmp_path):
    ipd = tmp_path / "big.csv"
    with open(ipd, "w") as fh:
        fh.write("time,event,arm\n")
        fh.write("1.0,1,a\n" * (LIMITS["patient_rows_max"] + 2))
    _refused(["fit", "--output", tmp_path / "o", "--data", ipd, "--fast"], "--data", tmp_path)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.nc"))


SPEC_CASES = [
    (f"[sampler]\ndraws = {LIMITS['draws_max'] + 1}", "sampler.draws"),
    (f"[sampler]\ntune = {LIMITS['tune_max'] + 1}", "sampler.tune"),
    (f"[sampler]\nchains = {LIMITS['chains_max'] + 1}", "sampler.chains"),
    ("[fast]\ndraws = 1000000000", "fast.draws"),
    (f"[sampler]\nchains = {LIMITS['chains_max']}\ndraws = {LIMITS['draws_total_max'] // LIMITS['chains_max'] + 1}",
     "sampler.draws"),
    (f"[priors]\nids = ['w']\n[priors.custom.w]\nmu = 0\nsigma = {LIMITS['sigma_max'] * 10:g}", "priors.custom.w.sigma"),
    ("[priors]\nids = ['w']\n[priors.custom.w]\nmu = 0\nsigma = 1e-9", "priors.custom.w.sigma"),
    ("[priors]\nids = ['w']\n[priors.custom.w]\nmu = 1e5\nsigma = 1", "priors.custom.w.mu"),
    ("[models.baseline]\nsd_log_cumhaz = 1e6", "models.baseline.sd_log_cumhaz"),
    ("[models.baseline]\ntime_ref = 1e-300", "models.baseline.time_ref"),
    (f"[run]\nreplicates = {LIMITS['replicates_max'] + 1}", "run.replicates"),
    (f"[run]\nseed = {LIMITS['seed_max'] + 1}", "run.seed"),
    ("[models]\ncuts = [{}]".format(", ".join(str(i) for i in range(LIMITS["cuts_max"] + 1))), "models.cuts"),
    ("[run]\ntrial = '" + "x" * (LIMITS["path_chars_max"] + 1) + "'", "run.trial"),
]


@pytest.mark.parametrize("extra, field", SPEC_CASES)
def test_spec_limits(tmp_path, extra, field):
    spec = tmp_path / "spec.toml"
    spec.write_text(f'extends = "{ROOT / "configs" / "clocc.toml"}"\n{extra}\n')
    _refused(["fit", "--config", spec, "--output", tmp_path / "o", "--fast"], field, tmp_path)
    assert not (tmp_path / "o").exists()


def test_documented_configs_within_limits():
    from kmbayes.runspec import load_spec

    for p in sorted((ROOT / "configs").glob("*.toml")):
        load_spec(p)
    for p in TRIALS:
        load_trial(p)


# --------------------------------------------------------------------------- end to end (slow)


@pytest.mark.slow
def test_run_smallest_allowed_arms_does_not_crash(tmp_path):
    """5 patients and 1 event per arm (the lower limits): ``run`` finishes (0 or 3), never a traceback."""
    def mut(d):
        _strip_landmarks(d)
        n, e = LIMITS["arm_n_min"], LIMITS["arm_events_min"]
        # one landmark each: a trial with only n and events is refused (nothing says when)
        d["arms"]["combined"].update(n=n, events=e, survival=[{"time": 12, "estimate": 1 - e / n}])
        d["arms"]["systemic"].update(n=n, events=e + 1,
                                     survival=[{"time": 12, "estimate": 1 - (e + 1) / n}])
        d["followup"] = {"median": 24.0}
    p = _trial(tmp_path, mut)
    rc, out, err = run_inprocess(["run", "--trial", p, "--output", tmp_path / "o", "--fast"], timeout=1200)
    assert rc in (0, 3), err[-2000:]


def test_run_refuses_arm_without_events(tmp_path):
    def mut(d):
        _strip_landmarks(d)
        d["arms"]["combined"].update(events=0)
    p = _trial(tmp_path, mut)
    _refused(["run", "--trial", p, "--output", tmp_path / "o", "--fast"], "arms.combined.events", tmp_path)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_run_with_mathtext_label_does_not_crash(tmp_path):
    """An arm label holding matplotlib mathtext (``$\\frac$``) is drawn literally, end to end."""
    p = _trial(tmp_path, lambda d: d["arms"]["combined"].update(label="$\\frac$ combined"))
    rc, out, err = run_inprocess(["run", "--trial", p, "--output", tmp_path / "o", "--fast"], timeout=1200)
    assert rc in (0, 3), err[-2000:]
    assert list((tmp_path / "o" / "reports" / "figures").glob("*.png"))
