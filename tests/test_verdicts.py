"""Verdicts of the check table: tolerances, warnings naming a miss, ``--strict``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from kmbayes.reconstruct import reconstruct
from kmbayes.reconstruct.check import MISS, OK, check_rows, misses, rows_to_csv
from kmbayes.trial import load_trial

from .conftest import CLOCC_TOML, run_cli

IMPOSSIBLE = """
[trial]
name = "impossible"
time_unit = "months"
reference_arm = "a"

[arms.a]
n = 30
events = 20
survival = [ { time = 12, estimate = 0.5, lower = 0.49, upper = 0.51 } ]

[arms.b]
n = 30
events = 15
median = { estimate = 20.0 }
"""


def test_clocc_every_published_number_ok():
    tr = load_trial(CLOCC_TOML)
    rows = check_rows(tr, reconstruct(tr, seed=1, replicates=3).replicates)
    for r in rows:
        if r.section == "held_out":
            assert r.verdict == "" and r.tolerance is None
        else:
            assert r.verdict == OK, r.warning()
            assert r.tolerance is not None and r.tolerance >= 0
            if r.statistic in ("n", "events"):
                assert r.tolerance == 0
            if r.statistic.startswith("S("):
                assert r.tolerance >= 0.0005  # at least the rounding of a 3-decimal estimate
    table = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert {"tolerance", "verdict"} <= set(table[0])


def test_moved_reconstruction_is_a_miss():
    """Verdicts can fail: stretch one arm's times and its landmarks are missed."""
    tr = load_trial(CLOCC_TOML)
    rep = dict(reconstruct(tr, seed=1).replicates[0])
    t, e = rep["combined"]
    # Doubled: a median's tolerance includes the spacing of the curve's
    # jumps around it, which is wide on CLOCC's sparse curve, so a smaller
    # stretch may leave the median, or a landmark on a flat stretch, inside.
    rep["combined"] = (t * 2.0, e)
    missed = misses(check_rows(tr, [rep]))
    names = {(r.arm, r.statistic) for r in missed}
    assert ("combined", "S(60)") in names and ("combined", "median") in names
    assert all(r.verdict == MISS for r in missed)
    assert not any(r.arm == "systemic" for r in missed)
    w = next(r for r in missed if r.statistic == "S(60)").warning()
    assert w.startswith("arms.combined S(60): reconstructed") and "published 0.431" in w


def test_miss_warns_and_strict_fails(tmp_path: Path):
    p = tmp_path / "t.toml"
    p.write_text(IMPOSSIBLE)
    out = tmp_path / "o.csv"
    r = run_cli("reconstruct", p, "--out", out)
    assert r.returncode == 0
    warn = [x for x in r.stderr.splitlines() if x.startswith("kmbayes: warning: arms.a S(12)")]
    assert warn, r.stderr
    assert "MISS" in r.stdout
    out.unlink()
    r = run_cli("reconstruct", p, "--out", out, "--strict")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "kmbayes: error:" in r.stderr and "S(12)" in r.stderr and "Traceback" not in r.stderr
    assert out.exists() and out.with_name("o.check.csv").exists()  # written, to show the miss
    rows = list(csv.DictReader(open(out.with_name("o.check.csv"), encoding="utf-8")))
    assert any(x["statistic"].startswith("S(12)") and x["verdict"] == MISS for x in rows)


def test_strict_passes_when_everything_fits(tmp_path: Path):
    out = tmp_path / "o.csv"
    r = run_cli("reconstruct", CLOCC_TOML, "--out", out, "--strict", "-q")
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr


def test_tolerance_grows_with_discreteness():
    """Fewer patients: bigger KM steps, wider tolerance on S (one death's drop)."""
    tr = load_trial(CLOCC_TOML)
    rep = reconstruct(tr, seed=1).replicates[0]
    rows = {(r.arm, r.statistic): r for r in check_rows(tr, [rep])}
    t, e = rep["systemic"]
    y = int(np.sum(t > 96))
    s96 = rows[("systemic", "S(96)")]
    assert abs(s96.tolerance - (0.0005 + 0.5 * s96.replicate1 / y)) < 1e-9
