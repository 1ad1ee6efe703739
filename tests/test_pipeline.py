"""The CLI mirrors the pipeline: help for every subcommand, and end-to-end runs.

The end-to-end runs use ``--fast`` (few draws) and write under a temporary
``--output`` directory, from a working directory outside the repository, so
they also check that ``kmbayes run`` works from anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kmbayes.figures import FIGURE_STEMS
from kmbayes.trial import load_trial

from .conftest import ROOT, run_cli

SUBCOMMANDS = ["reconstruct", "fit", "report", "run"]


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help(sub: str) -> None:
    r = run_cli(sub, "--help")
    assert r.returncode == 0
    assert f"usage: kmbayes {sub}" in r.stdout


def test_top_level_help_lists_pipeline() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for sub in SUBCOMMANDS:
        assert sub in r.stdout


def test_fit_with_missing_config_is_input_error(tmp_path: Path) -> None:
    r = run_cli("fit", "--config", tmp_path / "nope.toml", "--output", tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "--config" in r.stderr or "file" in r.stderr


def test_run_with_bad_trial_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[trial]\nname = 'x'\n")
    out = tmp_path / "out"
    r = run_cli("run", "--trial", bad, "--output", out, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert not out.exists()


def _assert_full_output(out: Path, trial_path: Path) -> None:
    trial = load_trial(trial_path)
    stem = trial_path.stem
    assert (out / "data" / "processed" / f"{stem}_ipd.csv").exists()
    assert (out / "data" / "processed" / f"{stem}_ipd_replicates.csv").exists()
    for s in FIGURE_STEMS:
        for ext in ("png", "pdf"):
            f = out / "reports" / "figures" / f"{s}.{ext}"
            assert f.exists() and f.stat().st_size > 1000, f
    res = pd.read_csv(out / "reports" / "results.csv")
    assert list(res.columns[:6]) == ["model", "prior", "quantity", "estimate", "lower", "upper"]
    assert {"hr", "p_hr_lt_1"} <= set(res.quantity)
    diag = pd.read_csv(out / "reports" / "diagnostics.csv")
    assert {"rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "bfmi_min", "pareto_k_max"} <= set(diag.columns)
    report = (out / "reports" / "reanalysis.md").read_text()
    for arm in trial.arms.values():
        assert arm.name in report  # the trial's own arm names
    for s in FIGURE_STEMS:
        assert f"{s}.png" in report
    assert "## Reproducibility" in report
    assert list((out / "models").glob("*/manifest.json"))


@pytest.mark.slow
def test_run_second_trial_end_to_end(tmp_path: Path) -> None:
    """``kmbayes run --trial`` on another trial writes the same set of outputs."""
    trial = ROOT / "data" / "raw" / "checkmate017_os.toml"
    out = tmp_path / "cm017"
    r = run_cli("run", "--trial", trial, "--output", out, "--fast", cwd=tmp_path, timeout=1800)
    assert r.returncode in (0, 3), r.stderr[-2000:]
    _assert_full_output(out, trial)
    assert "Nivolumab" in r.stdout


@pytest.mark.slow
def test_run_clocc_end_to_end_fast(tmp_path: Path) -> None:
    out = tmp_path / "clocc"
    r = run_cli("run", "--output", out, "--fast", cwd=tmp_path, timeout=1800)
    assert r.returncode in (0, 3), r.stderr[-2000:]
    _assert_full_output(out, ROOT / "data" / "raw" / "clocc_os.toml")
    assert "headline" in r.stdout.lower()  # the summary: the headline rule's sentences


def test_scripted_fit_from_config_diff(tmp_path: Path) -> None:
    """``kmbayes fit --config <spec>`` runs a sensitivity spec (a diff of clocc.toml) from anywhere."""
    out = tmp_path / "sens"
    r = run_cli("fit", "--config", ROOT / "configs" / "sceptical_only.toml", "--models", "weibull_ph",
                "--fast", "--output", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    res = pd.read_csv(out / "reports" / "results.csv")
    assert set(res.prior) == {"sceptical"} and set(res.model) == {"weibull_ph"}
    manifest = (out / "models" / "weibull_ph__sceptical" / "manifest.json").read_text()
    for key in ("seed", "git_commit", "config_hash", "data_hash"):
        assert key in manifest
    # the main results are untouched by a sensitivity run
    assert not (tmp_path / "reports").exists()
