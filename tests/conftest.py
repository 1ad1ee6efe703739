"""Shared fixtures: paths, a CLI runner, and the CLOCC trial file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
CLOCC_TOML = ROOT / "data" / "raw" / "clocc_os.toml"
CLOCC_IPD = ROOT / "data" / "processed" / "clocc_os_ipd.csv"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m kmbayes ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "kmbayes", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def clocc_toml() -> Path:
    return CLOCC_TOML
