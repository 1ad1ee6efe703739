"""``make setup`` finds a Python >= 3.12 (scripts/find-python.sh), or says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "find-python.sh"


def _fake_python(path: Path, minor: int) -> Path:
    """A stand-in interpreter that answers the version check like Python 3.<minor>."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n"
                    'case "$*" in *sys.executable*) echo "$0";; esac\n'
                    f"[ {minor} -ge 12 ]\n")
    path.chmod(0o755)
    return path


def _run(env_path: str, pyenv_root: Path) -> str:
    env = {"PATH": env_path, "PYENV_ROOT": str(pyenv_root), "HOME": str(pyenv_root)}
    return subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, env=env,
                          timeout=30).stdout.strip()


@pytest.fixture
def bare_path(tmp_path):
    """A PATH with sh and the coreutils the script needs, and python3 = Python 3.11."""
    b = tmp_path / "bin"
    b.mkdir()
    for tool in ("sh", "ls", "sort", "cat"):
        src = shutil.which(tool)
        if src:
            os.symlink(src, b / tool)
    _fake_python(b / "python3", 11)
    return str(b)


def test_an_inactive_pyenv_interpreter_is_found(tmp_path, bare_path):
    root = tmp_path / "pyenv"
    _fake_python(root / "versions" / "3.11.7" / "bin" / "python3", 11)
    want = _fake_python(root / "versions" / "3.12.1" / "bin" / "python3", 12)
    assert _run(bare_path, root) == str(want)


def test_python3_13_on_path_comes_first(tmp_path, bare_path):
    want = _fake_python(Path(bare_path) / "python3.13", 13)
    root = tmp_path / "pyenv"
    _fake_python(root / "versions" / "3.12.1" / "bin" / "python3", 12)
    assert _run(bare_path, root) == str(want)


def test_nothing_found_prints_nothing_and_make_says_what_to_install(tmp_path, bare_path):
    assert _run(bare_path, tmp_path / "empty") == ""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    out = subprocess.run([make, "-s", "-C", str(ROOT), "setup", "PYTHON=", "VENV=" + str(tmp_path / "v")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "install Python 3.12 or newer" in (out.stdout + out.stderr)
