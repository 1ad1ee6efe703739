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


def quick_fit(name, data, prior, *, cuts=None, draws=1000, tune=1000, chains=2, seed=0,
              target_accept=0.9, loo=True):
    """One fit through :func:`kmbayes.fitting.fit_one` (no gate, no retry), with the
    flattened draws, ``ctx`` and the family's estimands at hand (recovery tests)."""
    from types import SimpleNamespace

    from kmbayes import families
    from kmbayes.diagnostics import Gate
    from kmbayes.fitting import fit_one, flat_draws
    from kmbayes.runspec import SamplerSettings

    s = SamplerSettings(draws=draws, tune=tune, chains=chains, target_accept=target_accept)
    fit = fit_one(name, data, prior, cuts=cuts or families.DEFAULT_CUTS, settings=s,
                  gate=Gate(ess_min=0, rhat_max=100), seed=seed, retry=False, loo=loo)
    post = flat_draws(fit.idata["posterior"].to_dataset())
    fam = families.get(name)
    return SimpleNamespace(fit=fit, idata=fit.idata, post=post, ctx=fit.ctx, data=data,
                           diagnostics=fit.diagnostics,
                           estimands=lambda: fam.family_estimands(post, data, fit.ctx))


def loo_difference(better, worse) -> tuple[float, float]:
    """Sum and SE of the pointwise elpd differences (PSIS-LOO) of two fits of the same data."""
    import warnings

    import arviz as az
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = az.loo(better.idata, pointwise=True).elpd_i
        b = az.loo(worse.idata, pointwise=True).elpd_i
    diff = np.asarray(a).ravel() - np.asarray(b).ravel()
    return float(diff.sum()), float(np.sqrt(diff.size * np.var(diff, ddof=1)))
