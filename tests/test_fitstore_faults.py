"""Fault injection for the fit store: the cache never serves a posterior its manifest does not describe.

One small grid (Weibull x {reference, sceptical}, fast profile) is fitted
once per module; each test copies it and breaks it the way issue 13 did:
a crash between writing ``posterior.nc`` and ``manifest.json``, the
sceptical posterior copied over the reference one, a hand-flipped gate flag,
and hand-corrupted files. Then ``fit`` must refit (and end identical to a
clean run) and ``report`` must refuse in one line (exit 2), or exit 3 after
a failed gate -- never a traceback, never the wrong posterior.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kmbayes import fitstore, runspec
from kmbayes import io as kio
from kmbayes.data import load_ipd
from kmbayes.errors import InputError
from kmbayes.grid import fit_grid, load_grid

from .test_fuzz_inputs import check_refusal, run_inprocess

ROOT = Path(__file__).resolve().parents[1]
IPD = ROOT / "data" / "processed" / "clocc_os_ipd.csv"

SPEC = """extends = "{clocc}"
[run]
pool_replicates = false
[models]
ids = ["weibull_ph"]
[priors]
ids = ["reference", "sceptical"]
{extra}
"""


def write_spec(d: Path, extra: str = "") -> Path:
    p = d / "spec.toml"
    p.write_text(SPEC.format(clocc=ROOT / "configs" / "clocc.toml", extra=extra))
    return p


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(spec path, output root) of a fitted grid; tests copy the root before breaking it."""
    d = tmp_path_factory.mktemp("store")
    spec = write_spec(d)
    rc, out, err = run_inprocess(["fit", "--config", spec, "--output", d / "out", "--fast"], timeout=600)
    assert rc == 0, err
    return spec, d / "out"


def _copy(fitted, tmp_path) -> tuple[Path, Path]:
    spec, root = fitted
    shutil.copytree(root, tmp_path / "out")
    return spec, tmp_path / "out"


def _posterior_bytes(root: Path, prior: str) -> bytes:
    return (root / "models" / f"weibull_ph__{prior}" / "posterior.nc").read_bytes()


def _report(spec, root) -> tuple[int, str]:
    rc, _, err = run_inprocess(["report", "--config", spec, "--output", root], timeout=600)
    return rc, err


def test_swapped_posterior_is_never_served(fitted, tmp_path):
    """The sceptical posterior.nc copied over the reference one: report refuses, fit refits the right one."""
    spec, root = _copy(fitted, tmp_path)
    ref = root / "models" / "weibull_ph__reference"
    good = _posterior_bytes(root, "reference")
    shutil.copy(root / "models" / "weibull_ph__sceptical" / "posterior.nc", ref / "posterior.nc")
    rc, err = _report(spec, root)
    assert rc == 2 and "does not match its manifest" in err, err
    check_refusal(rc, err)
    # the store refuses it too, with the right key
    s = runspec.load_spec(spec)
    man = json.loads((ref / "manifest.json").read_text())
    data = load_ipd(IPD)[0]
    assert fitstore.load_verified(ref, man["cache_key"], data) is None
    # a rerun of fit replaces it with the right posterior (byte-identical to the clean run)
    fit_grid(s, IPD, root, fast=True, pool_replicates=False)
    assert _posterior_bytes(root, "reference") == good


def test_swapped_manifest_and_posterior_pair_is_refused(fitted, tmp_path):
    """Both files of the sceptical fit copied into the reference folder: hash matches, config key does not."""
    spec, root = _copy(fitted, tmp_path)
    ref, scep = root / "models" / "weibull_ph__reference", root / "models" / "weibull_ph__sceptical"
    for name in ("posterior.nc", "manifest.json"):
        shutil.copy(scep / name, ref / name)
    s = runspec.load_spec(spec)
    # Every fit matches its own manifest, but the reference folder now holds the sceptical
    # prior's fit, whose cache key is not the one the grid's tables were made from: refused.
    with pytest.raises(InputError, match="not the one the tables were made from"):
        load_grid(root, s)
    # ...and `fit` refits it rather than serving it
    again = fit_grid(s, IPD, root, fast=True, pool_replicates=False)
    assert again.fits[("weibull_ph", "reference")].prior.sigma == s.priors["reference"].sigma
    assert json.loads((ref / "manifest.json").read_text())["prior"] == "reference"


def test_crash_between_posterior_and_manifest(fitted, tmp_path, monkeypatch):
    """A crash after posterior.nc is renamed but before manifest.json: the rerun refits, ending as a clean run."""
    spec, root = _copy(fitted, tmp_path)
    s = runspec.load_spec(spec)
    clean = {p: _posterior_bytes(root, p) for p in ("reference", "sceptical")}
    # Fit with another seed and crash mid-way through the two renames of the first fit written.
    s2 = runspec.parse_spec({**s.raw, "run": {**s.raw.get("run", {}), "seed": 7}}, base=ROOT, path=spec)
    real_replace = os.replace
    calls = {"n": 0}

    def crashing_replace(src, dst):
        calls["n"] += 1
        real_replace(src, dst)
        if str(dst).endswith("posterior.nc"):
            raise KeyboardInterrupt("simulated SIGKILL between posterior.nc and manifest.json")

    monkeypatch.setattr(kio.os, "replace", crashing_replace)
    with pytest.raises(KeyboardInterrupt):
        fit_grid(s2, IPD, root, fast=True, pool_replicates=False, force=True)
    monkeypatch.setattr(kio.os, "replace", real_replace)
    ref = root / "models" / "weibull_ph__reference"
    assert _posterior_bytes(root, "reference") != clean["reference"]  # the new posterior, the old manifest
    man = json.loads((ref / "manifest.json").read_text())
    assert fitstore.load_verified(ref, man["cache_key"], load_ipd(IPD)[0]) is None  # torn: never served
    # The next command rolls the journal forward: the pair is whole again (the seed-7 fit), and
    # report refuses it because it was made with another configuration (seed).
    rc, err = _report(spec, root)
    assert rc == 2 and ("another configuration" in err or "not the one the tables were made from" in err), err
    check_refusal(rc, err)
    man = json.loads((ref / "manifest.json").read_text())
    assert man["posterior_sha256"] == fitstore.file_sha(ref / "posterior.nc")
    assert not list(ref.glob(".*.tmp"))
    fit_grid(s, IPD, root, fast=True, pool_replicates=False)
    assert {p: _posterior_bytes(root, p) for p in clean} == clean


def test_flipped_gate_flag_is_not_believed(tmp_path):
    """A fit that failed the gate, its manifest flag edited to true: report still exits 3."""
    spec = write_spec(tmp_path, extra="[fast]\ness_min = 1e9\nretry = false")
    root = tmp_path / "out"
    rc, _, err = run_inprocess(["fit", "--config", spec, "--output", root, "--fast"], timeout=600)
    assert rc == 3, err
    check_refusal(rc, err, ok_codes=(3,))
    for mp in (root / "models").glob("*/manifest.json"):
        man = json.loads(mp.read_text())
        assert man["gate_passed"] is False
        man["gate_passed"] = True
        mp.write_text(json.dumps(man))
    s = runspec.load_spec(spec)
    assert all(not f.gate_passed for f in load_grid(root, s).fits.values())
    rc, err = _report(spec, root)
    assert rc == 3, err
    assert "failed the diagnostic gate" in err


CORRUPTIONS = {
    "posterior_truncated": lambda r: _truncate(r / "models" / "weibull_ph__reference" / "posterior.nc"),
    "posterior_deleted": lambda r: (r / "models" / "weibull_ph__reference" / "posterior.nc").unlink(),
    "posterior_is_dir": lambda r: _replace_with_dir(r / "models" / "weibull_ph__reference" / "posterior.nc"),
    "manifest_deleted": lambda r: (r / "models" / "weibull_ph__reference" / "manifest.json").unlink(),
    "manifest_not_json": lambda r: (r / "models" / "weibull_ph__reference" / "manifest.json").write_text("{nope"),
    "manifest_is_list": lambda r: (r / "models" / "weibull_ph__reference" / "manifest.json").write_text("[1, 2]"),
    "manifest_binary": lambda r: (r / "models" / "weibull_ph__reference" / "manifest.json").write_bytes(b"\xff\x00" * 50),
    "manifest_key_edited": lambda r: _edit_key(r / "models" / "weibull_ph__reference"),
    "results_empty": lambda r: (r / "reports" / "results.csv").write_text(""),
    "results_garbage": lambda r: (r / "reports" / "results.csv").write_bytes(b"\x00\x01garbage\n\xff"),
    "results_wrong_columns": lambda r: (r / "reports" / "results.csv").write_text("a,b\n1,2\n"),
    "diagnostics_deleted": lambda r: (r / "reports" / "diagnostics.csv").unlink(),
    "models_dir_deleted": lambda r: shutil.rmtree(r / "models"),
}


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:500])


def _replace_with_dir(p: Path) -> None:
    p.unlink()
    p.mkdir()


def _edit_key(folder: Path) -> None:
    """The manifest's cache key hand-edited (the posterior file still carries its own key)."""
    man = json.loads((folder / "manifest.json").read_text())
    man["cache_key"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(man))


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_cache_is_one_line_exit_2(fitted, tmp_path, case):
    spec, root = _copy(fitted, tmp_path)
    CORRUPTIONS[case](root)
    rc, err = _report(spec, root)
    assert rc == 2, (case, err)
    check_refusal(rc, err)


def test_leftover_temp_files_are_removed(fitted, tmp_path):
    """Temp files of a killed run are removed at the next run start (under the lock); others are kept."""
    spec, root = _copy(fitted, tmp_path)
    folder = root / "models" / "weibull_ph__reference"
    junk = [folder / ".posterior.nc.abc123xy.tmp", root / "reports" / ".results.csv.k2j3h4g5.tmp"]
    for j in junk:
        j.write_text("half-written")
    (folder / ".tmp-q1w2e3r4").mkdir()
    keep = root / "reports" / "notes.tmp"
    keep.write_text("mine")
    s = runspec.load_spec(spec)
    with kio.output_lock(root):
        pass
    assert not any(j.exists() for j in junk) and not (folder / ".tmp-q1w2e3r4").exists()
    assert keep.exists()
    assert load_grid(root, s).fits  # the store is intact


def test_second_concurrent_run_fails_fast(fitted, tmp_path):
    spec, root = _copy(fitted, tmp_path)
    with kio.output_lock(root):
        rc, _, err = run_inprocess(["fit", "--config", spec, "--output", root, "--fast"])
        assert rc == 2 and "another kmbayes run" in err, err
        check_refusal(rc, err)
        rc, err = _report(spec, root)
        assert rc == 2 and "another kmbayes run" in err
    rc, _, err = run_inprocess(["fit", "--config", spec, "--output", root, "--fast"])
    assert rc == 0, err  # the lock is released with the first holder


KILL_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from kmbayes import io as kio
real = os.replace
n = {"k": 0}
def replace(src, dst):
    real(src, dst)
    if not str(dst).endswith(".json"):
        n["k"] += 1
        if n["k"] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
kio.os.replace = replace
root = Path(sys.argv[1])
kio.write_many_atomic({root / "reports" / "a.csv": "new a", root / "reports" / "b.csv": "new b",
                       root / "reports" / "c.csv": "new c"})
"""


@pytest.mark.parametrize("kill_after", [1, 2])
def test_sigkill_between_renames_rolls_forward(tmp_path, kill_after):
    """A multi-file write killed between its renames ends all-new at the next command (journal)."""
    import subprocess
    import sys

    reports = tmp_path / "reports"
    reports.mkdir()
    for n in "abc":
        (reports / f"{n}.csv").write_text(f"old {n}")
    r = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(tmp_path), str(kill_after)],
                       capture_output=True, text=True, env={**os.environ})
    assert r.returncode == -9, r.stderr
    state = {n: (reports / f"{n}.csv").read_text() for n in "abc"}
    assert state["a"] == "new a" and state["c"] == "old c"  # torn: what the journal repairs
    assert list(reports.glob(".kmbayes-journal.*.json"))
    with kio.output_lock(tmp_path):
        pass
    assert {n: (reports / f"{n}.csv").read_text() for n in "abc"} == {n: f"new {n}" for n in "abc"}
    assert sorted(p.name for p in reports.iterdir()) == ["a.csv", "b.csv", "c.csv"]


def test_kill_before_journal_keeps_old_set(tmp_path, monkeypatch):
    """Killed while writing temp files (no journal yet): the old set stays, temp files are swept."""
    reports = tmp_path / "reports"
    reports.mkdir()
    for n in "ab":
        (reports / f"{n}.csv").write_text(f"old {n}")
    (reports / ".a.csv.x1y2z3w4.tmp").write_text("new a")  # as a kill mid-write leaves it
    with kio.output_lock(tmp_path):
        pass
    assert {n: (reports / f"{n}.csv").read_text() for n in "ab"} == {"a": "old a", "b": "old b"}
    assert sorted(p.name for p in reports.iterdir()) == ["a.csv", "b.csv"]
