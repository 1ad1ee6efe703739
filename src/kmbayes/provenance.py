"""Provenance of a result: hashes, seeds, package versions and the git commit.

Every fit and table carries a manifest built from these (seed, versions,
commit, config hash, data hash), so a result says where it came from and a
cache entry can be checked against what would produce it now.
"""

from __future__ import annotations

import hashlib
import math
import platform
import subprocess
from functools import cache
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parent

#: modules whose source changes what a fit is (with every family module)
FIT_SOURCES = ("data.py", "priors.py", "fitting.py", "diagnostics.py", "sampling/__init__.py",
               "sampling/numba_cached.py", "sampling/nutpie_public.py", "sampling/pymc_nuts.py")


def sha(text: str | bytes) -> str:
    """SHA-256 hex digest of a string or bytes."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def file_sha(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


@cache
def code_hash() -> str:
    """Hash of the source of every module that changes what a fit is."""
    files = sorted((PACKAGE_DIR / "families").glob("*.py")) + [PACKAGE_DIR / f for f in FIT_SOURCES]
    h = hashlib.sha256()
    for f in files:
        if f.exists():
            h.update(str(f.relative_to(PACKAGE_DIR)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@cache
def environment_info() -> dict:
    """Package versions and git commit (``"unknown"`` outside a repository)."""
    from . import __version__

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10,
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    info = {"python": platform.python_version(), "kmbayes": __version__, "numpy": np.__version__}
    for pkg in ("pymc", "pytensor", "arviz", "nutpie", "numba"):
        info[pkg] = package_version(pkg)
    info["git_commit"] = commit
    return info


def display_path(p) -> str:
    """A path relative to the repository when inside it, so manifests do not depend on the checkout."""
    p = Path(p).resolve()
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return str(p)


def derive_seed(run_seed: int, *parts) -> int:
    """Per-fit seed: a hash of the run seed and the fit's identity (stable across runs)."""
    return int(sha(":".join(map(str, (run_seed, *parts))))[:8], 16)


def jsonable(x):
    """``x`` with NumPy scalars, paths and non-finite floats made JSON-safe."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


@cache
def package_hash() -> str:
    """Hash of the whole package's source: tables, figures and reports depend on all of it."""
    h = hashlib.sha256()
    for f in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(f.relative_to(PACKAGE_DIR)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def outputs_verified(record: dict, root: Path) -> bool:
    """True if every file in ``record`` (relative path -> SHA-256) exists under ``root`` with that hash."""
    try:
        return bool(record) and all(file_sha(root / rel) == digest for rel, digest in record.items())
    except OSError:
        return False
