"""Bad input: one line naming the field, exit code 2, no traceback, no output.

Every case starts from the valid CLOCC file and breaks one thing, so each
test can only fail for the reason it names.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from kmbayes.errors import InputError
from kmbayes.trial import load_trial

from .conftest import CLOCC_TOML, run_cli

BASE = CLOCC_TOML.read_text()


def _replace(old: str, new: str, count: int = 1) -> str:
    assert old in BASE, old  # the case must really change the file
    return BASE.replace(old, new, count)


def _drop_arm_systemic() -> str:
    head, _, rest = BASE.partition("[arms.systemic]")
    _, _, tail = rest.partition("# Held out")
    return _replace('reference_arm = "systemic"', 'reference_arm = "combined"').split("[arms.systemic]")[0] + "# Held out" + tail


CASES: dict[str, tuple[str, str]] = {
    # name: (file text, field the message must name)
    "events_exceed_n": (_replace("events = 39", "events = 61"), "arms.combined.events"),
    "survival_rises": (
        _replace("{ time = 60, estimate = 0.431, lower = 0.303, upper = 0.553 }",
                 "{ time = 60, estimate = 0.631, lower = 0.503, upper = 0.753 }"),
        "arms.combined.survival",
    ),
    "ci_excludes_estimate": (
        _replace("{ time = 36, estimate = 0.569, lower = 0.433, upper = 0.685 }",
                 "{ time = 36, estimate = 0.569, lower = 0.583, upper = 0.685 }"),
        "arms.combined.survival[0].lower",
    ),
    "median_ci_excludes_estimate": (
        _replace("median = { estimate = 45.6, lower = 30.3, upper = 67.8 }",
                 "median = { estimate = 45.6, lower = 30.3, upper = 40.0 }"),
        "arms.combined.median.upper",
    ),
    "negative_time": (
        _replace("{ time = 36, estimate = 0.569", "{ time = -36, estimate = 0.569"),
        "arms.combined.survival[0].time",
    ),
    "probability_above_one": (
        _replace("{ time = 36, estimate = 0.569, lower = 0.433, upper = 0.685 }",
                 "{ time = 36, estimate = 56.9, lower = 43.3, upper = 68.5 }"),
        "arms.combined.survival[0].estimate",
    ),
    "probability_negative": (
        _replace("lower = 0.033", "lower = -0.033"),
        "arms.systemic.survival[2].lower",
    ),
    "reference_arm_not_an_arm": (_replace('reference_arm = "systemic"', 'reference_arm = "control"'), "trial.reference_arm"),
    "missing_n": (_replace("n = 60\n", ""), "arms.combined.n"),
    "string_for_number": (_replace("events = 53", 'events = "53"'), "arms.systemic.events"),
    "string_for_survival": (_replace("estimate = 0.089", 'estimate = "8.9%"'), "arms.systemic.survival[2].estimate"),
    "broken_toml": (_replace("[arms.combined]", "[arms.combined"), "file"),
    "one_arm_only": (_drop_arm_systemic(), "arms"),
    "empty_file": ("", "file"),
    "whitespace_file": ("  \n\n", "file"),
    "missing_trial_table": (BASE.replace("[trial]", "[trail]"), "trial"),
    "median_contradicts_landmark": (
        _replace("median = { estimate = 45.6, lower = 30.3, upper = 67.8 }",
                 "median = { estimate = 25.6, lower = 20.3, upper = 27.8 }"),
        "arms.combined.median",
    ),
    "negative_followup": (_replace("median = 116.4", "median = -116.4"), "followup.median"),
    "bad_arm_id": (BASE.replace("[arms.combined]", '[arms."com bined"]'), "arms.com bined"),
    "at_risk_rises": (
        _replace("events = 39\n", "events = 39\nat_risk = [ { time = 0, n = 60 }, { time = 12, n = 61 } ]\n"),
        "arms.combined.at_risk[1].n",
    ),
    "missing_curve_file": (
        _replace("events = 39\n", 'events = 39\ncurve = "no_such_curve.csv"\n'),
        "arms.combined.curve",
    ),
    # issue 13: huge numbers, limits, paths leaving the trial's directory, odd ids
    "n_as_huge_float": (_replace("n = 60\n", "n = 1e18\n"), "arms.combined.n"),
    "n_past_limit_with_fewer_events": (_replace("n = 60\n", "n = 1000000\n"), "arms.combined.n"),
    "one_patient_arm": (_replace("n = 60\n", "n = 1\n"), "arms.combined.n"),
    "median_1e300": (_replace("median = { estimate = 45.6, lower = 30.3, upper = 67.8 }",
                              "median = { estimate = 1e300, lower = 30.3 }"), "arms.combined.median.estimate"),
    "curve_absolute_path": (_replace("events = 39\n", 'events = 39\ncurve = "/etc/passwd"\n'), "arms.combined.curve"),
    "curve_parent_dir": (_replace("events = 39\n", 'events = 39\ncurve = "../x.csv"\n'), "arms.combined.curve"),
    "curve_path_too_long": (_replace("events = 39\n", f'events = 39\ncurve = "{"c" * 300}.csv"\n'), "arms.combined.curve"),
    "arm_id_too_long": (BASE.replace("[arms.combined]", f"[arms.{'c' * 300}]"), "arms.ccc"),
    "deeply_nested": (BASE + "x = " + "[" * 600 + "]" * 600 + "\n", "file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_trial_file(case: str, tmp_path: Path) -> None:
    text, field = CASES[case]
    trial = tmp_path / "trial.toml"
    trial.write_text(text)
    out = tmp_path / "out" / "ipd.csv"
    r = run_cli("reconstruct", trial, "--out", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one line, so no traceback
    assert "Traceback" not in r.stderr
    assert field in lines[0], (field, lines[0])
    assert len(lines[0]) < 300 and "\x1b" not in lines[0]
    assert r.stdout == ""
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # nothing half-written


def test_binary_file(tmp_path: Path) -> None:
    trial = tmp_path / "trial.toml"
    trial.write_bytes(bytes(range(256)) * 4)
    r = run_cli("reconstruct", trial, "--out", tmp_path / "ipd.csv")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "binary" in r.stderr
    assert not (tmp_path / "ipd.csv").exists()


def test_missing_file(tmp_path: Path) -> None:
    r = run_cli("reconstruct", tmp_path / "nope.toml", "--out", tmp_path / "ipd.csv")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "not found" in r.stderr
    assert not (tmp_path / "ipd.csv").exists()


def test_bad_replicates(tmp_path: Path) -> None:
    r = run_cli("reconstruct", CLOCC_TOML, "--out", tmp_path / "ipd.csv", "--replicates", "0")
    assert r.returncode == 2
    assert "--replicates" in r.stderr
    assert not (tmp_path / "ipd.csv").exists()


def test_existing_output_untouched_on_error(tmp_path: Path) -> None:
    """A failed run leaves a previous output exactly as it was."""
    out = tmp_path / "ipd.csv"
    out.write_text("previous\n")
    bad = tmp_path / "trial.toml"
    bad.write_text(CASES["events_exceed_n"][0])
    r = run_cli("reconstruct", bad, "--out", out)
    assert r.returncode == 2
    assert out.read_text() == "previous\n"


def test_valid_clocc_file_parses() -> None:
    trial = load_trial(CLOCC_TOML)
    doc = tomllib.loads(CLOCC_TOML.read_text())
    assert trial.reference_arm == doc["trial"]["reference_arm"]
    assert trial.arm_ids[0] == "systemic"
    assert trial.treatment_arm == "combined"
    for arm_id, arm in trial.arms.items():
        assert arm.n == doc["arms"][arm_id]["n"]
        assert arm.events == doc["arms"][arm_id]["events"]
        assert [lm.time for lm in arm.survival] == [s["time"] for s in doc["arms"][arm_id]["survival"]]
    assert trial.reported_hr is not None and trial.reported_hr.estimate == doc["reported"]["hazard_ratio"]["estimate"]


def test_error_message_names_field_programmatically(tmp_path: Path) -> None:
    p = tmp_path / "t.toml"
    p.write_text(CASES["missing_n"][0])
    with pytest.raises(InputError) as ei:
        load_trial(p)
    assert ei.value.field == "arms.combined.n"
    assert re.search(r"missing", str(ei.value))


def test_curve_file_parsing(tmp_path: Path) -> None:
    """Curves: optional header, percent scale, and a clear error on junk."""
    good = tmp_path / "c.csv"
    good.write_text("T,S\n0,100\n5,80\n10,55\n")
    text = _replace("events = 39\n", 'events = 39\ncurve = "c.csv"\n')
    p = tmp_path / "t.toml"
    p.write_text(text)
    arm = load_trial(p).arms["combined"]
    assert arm.curve is not None
    assert arm.curve[1].max() == pytest.approx(1.0)
    assert arm.curve[1][-1] == pytest.approx(0.55)
    good.write_text("time,survival\n0,1\n5,abc\n")
    with pytest.raises(InputError) as ei:
        load_trial(p)
    assert ei.value.field == "arms.combined.curve"


def test_median_is_checked_against_landmarks_within_its_rounding(tmp_path: Path) -> None:
    """A median printed as 0.3 may be 0.25: S(0.296) = 0.398 does not contradict it, S(0.24) does."""
    text = """[trial]
name = "t"
endpoint = "survival"
time_unit = "years"
reference_arm = "a"

[arms.a]
n = 100
events = 80
median = { estimate = 0.3, lower = 0.2, upper = 0.3 }
survival = [{ time = LANDMARK, estimate = 0.398, lower = 0.3, upper = 0.49 }]

[arms.b]
n = 100
events = 80
"""
    p = tmp_path / "t.toml"
    p.write_text(text.replace("LANDMARK", "0.296"))
    assert load_trial(p).arms["a"].median.estimate == 0.3
    p.write_text(text.replace("LANDMARK", "0.24"))
    with pytest.raises(InputError) as ei:
        load_trial(p)
    assert ei.value.field == "arms.a.median"
