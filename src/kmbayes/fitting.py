"""Fit the model x prior grid: compile once, swap data and priors, gate, cache, write.

Speed comes from four decisions:

1. Each family is compiled once per process for nutpie with its data, baseline
   and prior constants as ``pm.Data``; every prior, replicate and retry swaps
   new values into the same compiled object -- no recompilation. By default
   (``[sampler] compile = "numba"``) PyTensor compiles the log density and
   its gradient with numba and :mod:`kmbayes._nutpie_numba` wraps them in C
   callbacks; all of it is cached on disk, so a family costs ~15 s once per
   machine and ~0.1 s per later process (``KMBAYES_COMPILE_CACHE=0`` turns
   off kmbayes' part of that cache).
2. The numba callbacks run without the GIL, so nutpie samples the chains of a
   fit as threads, in parallel. The C backend (``compile = "c"``, also the
   automatic fallback) makes every gradient a Python callback; its chains
   would contend for the GIL as threads, so each runs alone in a process:
   chain 0 in the caller, the others in a pool of persistent ``spawn``-ed
   worker processes (:class:`_ChainPool`). Every chain has its own seed
   (:func:`chain_seed`), so the draws are the same whichever process runs a
   chain. ``KMBAYES_WORKERS=<n>`` caps the workers (default: CPUs - 1;
   ``0`` runs the chains one after another in the caller). If the pool cannot
   start or a worker dies, the remaining chains run in the caller.
3. The piecewise likelihoods are Poisson kernels on per-arm x interval
   sufficient statistics, so a gradient costs O(intervals), not O(patients);
   per-patient log-likelihoods for LOO are computed afterwards with NumPy.
4. Fits are cached on disk: a fit whose cache key (data, model, cut points,
   baseline and prior constants, sampler settings, seed, package versions and
   the source of the fitting modules) matches the manifest next to its
   ``posterior.nc`` is loaded instead of refitted.

Every fit goes through the diagnostic gate of :mod:`kmbayes.diagnostics`. A
failing fit is retried with safer settings (higher target_accept, twice the
tuning and draws), then with PyMC's NUTS; if it still fails it is kept but
flagged (``gate_passed`` false in its manifest, ``diagnostics.csv`` and the
``flag`` column of ``results.csv``). :func:`fit_grid` never raises for a
failed gate unless ``strict=True``; the CLI raises
:class:`~kmbayes.errors.FitFailedError` after the outputs are written.

References
----------
Vehtari A, Gelman A, Simpson D, Carpenter B, Buerkner P-C. Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of
MCMC. Bayesian Anal. 2021;16(2):667-718.
Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials
and Health-Care Evaluation. Wiley; 2004.
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import subprocess
import threading
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from . import _nutpie_numba, estimands, families, priors
from . import diagnostics as diag_mod
from .data import SurvivalData, file_digest, load_ipd
from .diagnostics import Gate
from .errors import FitFailedError, InputError
from .families import BaselinePrior
from .io import atomic_path, write_many_atomic, write_text_atomic
from .priors import PriorSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULT_COLUMNS = ["model", "prior", "quantity", "estimate", "lower", "upper", "mcse", "flag"]
_SOURCE_FILES = ("data.py", "priors.py", "fitting.py", "diagnostics.py", "_nutpie_numba.py")


# =========================================================================== spec


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings of one profile (``[sampler]``, ``[fast]``, ``[pooling]``)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    target_accept: float = 0.9
    backend: str = "nutpie"
    compile: str = "numba"
    retry: bool = True

    def safer(self) -> SamplerSettings:
        """Retry settings: target_accept up (0.95, then 0.99), twice the tune and draws."""
        ta = 0.99 if self.target_accept >= 0.95 else 0.95
        return dataclasses.replace(self, target_accept=ta, tune=self.tune * 2, draws=self.draws * 2)


@dataclass(frozen=True)
class RunSpec:
    """A parsed run spec (``configs/*.toml``). See ``configs/clocc.toml``."""

    name: str
    trial: Path | None
    seed: int
    replicates: int
    models: tuple[str, ...]
    cuts: tuple[float, ...]
    baseline: BaselinePrior
    priors: dict[str, PriorSpec]
    mcid_hr: float
    tail: float
    sampler: SamplerSettings
    fast_sampler: SamplerSettings
    pool_sampler: SamplerSettings
    milestones: tuple[float, ...]
    rmst_horizons: tuple[float, ...]
    gate: Gate
    fast_gate: Gate
    fast_replicates: int = 3
    pool_gate: Gate = field(default_factory=lambda: Gate(rhat_max=1.02, ess_min=100.0))
    #: per-model changes to the main sampler settings (``[sampler.<model>]``)
    model_sampler: dict = field(default_factory=dict)
    pool_replicates: bool = True
    data: Path | None = None
    tipping_threshold: float = 0.95
    path: Path | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def settings(self, fast: bool, model: str | None = None) -> SamplerSettings:
        """Sampler settings of a profile, with ``[sampler.<model>]`` overrides (full profile)."""
        if fast:
            return self.fast_sampler
        return self.model_sampler.get(model, self.sampler)

    def gate_for(self, fast: bool) -> Gate:
        return self.fast_gate if fast else self.gate

    def config_hash(self) -> str:
        """Hash of the parsed spec's fit-relevant content (manifest ``config_hash``)."""
        doc = {
            "models": list(self.models),
            "cuts": [str(c) for c in self.cuts],
            "baseline": dataclasses.asdict(self.baseline),
            "priors": {k: [v.mu, v.sigma] for k, v in self.priors.items()},
            "sampler": dataclasses.asdict(self.sampler),
            "model_sampler": {k: dataclasses.asdict(v) for k, v in self.model_sampler.items()},
            "fast": dataclasses.asdict(self.fast_sampler),
            "pooling": dataclasses.asdict(self.pool_sampler),
            "gate": self.gate.as_dict(),
            "fast_gate": self.fast_gate.as_dict(),
            "seed": self.seed,
            "replicates": self.replicates,
            "estimands": [list(self.milestones), list(self.rmst_horizons)],
        }
        return _sha(json.dumps(doc, sort_keys=True))


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _get(tbl: dict, key: str, fld: str, kind, default=None, *, lo=None, hi=None):
    if key not in tbl:
        if default is None:
            raise InputError(f"{fld}.{key}", "missing (required)")
        return default
    v = tbl[key]
    name = f"{fld}.{key}"
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputError(name, f"expected an integer, got {v!r}")
    elif kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(name, f"expected a number, got {v!r}")
        v = float(v)
    elif kind is str:
        if not isinstance(v, str):
            raise InputError(name, f"expected a string, got {v!r}")
    elif kind is bool:
        if not isinstance(v, bool):
            raise InputError(name, f"expected true or false, got {v!r}")
    elif kind is list:
        if not isinstance(v, list):
            raise InputError(name, f"expected an array, got {v!r}")
    if lo is not None and v < lo:
        raise InputError(name, f"must be >= {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise InputError(name, f"must be <= {hi}, got {v!r}")
    return v


def _table(doc: dict, key: str) -> dict:
    v = doc.get(key, {})
    if not isinstance(v, dict):
        raise InputError(key, "expected a table")
    return v


def _resolve(p: str, base: Path) -> Path:
    """A path from a config: relative to the config's directory if it exists there, else the repo root."""
    q = Path(p)
    if q.is_absolute():
        return q
    for root in (base, REPO_ROOT):
        if (root / q).exists():
            return (root / q).resolve()
    return (REPO_ROOT / q).resolve()


def _sampler(tbl: dict, fld: str, default: SamplerSettings) -> SamplerSettings:
    s = SamplerSettings(
        draws=_get(tbl, "draws", fld, int, default.draws, lo=10),
        tune=_get(tbl, "tune", fld, int, default.tune, lo=10),
        chains=_get(tbl, "chains", fld, int, default.chains, lo=1),
        target_accept=_get(tbl, "target_accept", fld, float, default.target_accept, lo=0.5, hi=0.999),
        backend=_get(tbl, "backend", fld, str, default.backend),
        compile=_get(tbl, "compile", fld, str, default.compile),
        retry=_get(tbl, "retry", fld, bool, default.retry),
    )
    if s.backend not in ("nutpie", "pymc"):
        raise InputError(f"{fld}.backend", f"must be 'nutpie' or 'pymc', got {s.backend!r}")
    if s.compile not in ("c", "numba"):
        raise InputError(f"{fld}.compile", f"must be 'c' or 'numba', got {s.compile!r}")
    return s


def _numbers(v, fld: str) -> tuple[float, ...]:
    if not isinstance(v, list) or not v:
        raise InputError(fld, f"expected a non-empty array of numbers, got {v!r}")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0 or not math.isfinite(x):
            raise InputError(f"{fld}[{i}]", f"expected a positive number, got {x!r}")
        out.append(float(x))
    return tuple(out)


def parse_spec(doc: dict, base: Path | None = None, path: Path | None = None) -> RunSpec:
    """Validate a run-spec document (parsed TOML) -> :class:`RunSpec`."""
    base = base or REPO_ROOT
    run = _table(doc, "run")
    name = _get(run, "name", "run", str, "run")
    trial = _resolve(_get(run, "trial", "run", str), base) if "trial" in run else None
    data = _resolve(_get(run, "data", "run", str), base) if "data" in run else None
    seed = _get(run, "seed", "run", int, 20170, lo=0)
    replicates = _get(run, "replicates", "run", int, 1, lo=1)
    pool = _get(run, "pool_replicates", "run", bool, replicates > 1)

    mt = _table(doc, "models")
    ids = _get(mt, "ids", "models", list, list(families.FAMILIES))
    if not ids:
        raise InputError("models.ids", "empty")
    for m in ids:
        if not isinstance(m, str) or m not in families.FAMILIES:
            raise InputError("models.ids", f"unknown model {m!r} (known: {', '.join(families.FAMILIES)})")
    cuts = families.check_cuts(_get(mt, "cuts", "models", list, list(families.DEFAULT_CUTS[:-1])))
    bt = mt.get("baseline", {})
    if not isinstance(bt, dict):
        raise InputError("models.baseline", "expected a table")
    unknown = set(bt) - {f.name for f in dataclasses.fields(BaselinePrior)}
    if unknown:
        raise InputError(f"models.baseline.{sorted(unknown)[0]}", "unknown key")
    baseline = BaselinePrior(**{k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in bt.items()})

    pt_ = _table(doc, "priors")
    pids = _get(pt_, "ids", "priors", list, list(priors.STANDARD_IDS))
    if not pids:
        raise InputError("priors.ids", "empty")
    mcid = _get(pt_, "mcid_hr", "priors", float, priors.DEFAULT_MCID_HR)
    if not 0 < mcid < 1:
        raise InputError("priors.mcid_hr", f"must be in (0, 1), got {mcid}")
    tail = _get(pt_, "tail", "priors", float, priors.DEFAULT_TAIL)
    if not 0 < tail < 0.5:
        raise InputError("priors.tail", f"must be in (0, 0.5), got {tail}")
    customs = pt_.get("custom", {})
    if not isinstance(customs, dict):
        raise InputError("priors.custom", "expected a table of tables")
    for pid in pids:
        if not isinstance(pid, str):
            raise InputError("priors.ids", f"expected strings, got {pid!r}")
    prior_specs = priors.prior_set(pids, mcid, tail, customs)

    st = _table(doc, "sampler")
    sampler = _sampler({k: v for k, v in st.items() if not isinstance(v, dict)}, "sampler", SamplerSettings())
    model_sampler = {}
    for k, v in st.items():
        if isinstance(v, dict):
            if k not in families.FAMILIES:
                raise InputError(f"sampler.{k}", f"unknown model (known: {', '.join(families.FAMILIES)})")
            model_sampler[k] = _sampler(v, f"sampler.{k}", sampler)
    ft = _table(doc, "fast")
    fast = _sampler(ft, "fast", dataclasses.replace(sampler, draws=300, tune=300))
    pl = _table(doc, "pooling")
    pool_s = _sampler(pl, "pooling", dataclasses.replace(sampler, draws=500, tune=500))

    gt = _table(doc, "gate")
    gate = Gate(
        rhat_max=_get(gt, "rhat_max", "gate", float, 1.01, lo=1.0),
        ess_min=_get(gt, "ess_min", "gate", float, 400.0, lo=0.0),
        divergences_max=_get(gt, "divergences_max", "gate", int, 0, lo=0),
    )
    # Few draws cannot reach ESS 400, and with 2 short chains the R-hat of a
    # converged fit scatters above 1.01; the fast profile (smoke tests,
    # notebooks -- never reported results) keeps the divergence check with a
    # proportionally looser R-hat and ESS bar. Manifests record the profile.
    fast_gate = dataclasses.replace(
        gate,
        ess_min=_get(ft, "ess_min", "fast", float, 100.0, lo=0.0),
        rhat_max=_get(ft, "rhat_max", "fast", float, 1.05, lo=1.0),
    )
    fast_reps = _get(ft, "replicates", "fast", int, min(3, replicates), lo=1)
    # A replicate is one component of a mixture of K posteriors: its Monte
    # Carlo error is averaged over the K components, so each needs ESS >=
    # ess_min / K-ish (default 100) rather than 400, and with 2 short chains a
    # converged run's R-hat scatters around 1.01, so components must reach
    # R-hat <= 1.02 (no divergences, as always).
    pool_gate = Gate(
        rhat_max=_get(pl, "rhat_max", "pooling", float, 1.02, lo=1.0),
        ess_min=_get(pl, "ess_min", "pooling", float, 100.0, lo=0.0),
        divergences_max=gate.divergences_max,
    )

    et = _table(doc, "estimands")
    milestones = _numbers(et.get("milestones", [36, 60, 96]), "estimands.milestones")
    horizons = _numbers(et.get("rmst_horizons", [60, 96]), "estimands.rmst_horizons")
    tt = _table(doc, "tipping")
    thr = _get(tt, "threshold_prob", "tipping", float, 0.95, lo=0.5, hi=0.999)

    return RunSpec(
        name=name, trial=trial, seed=seed, replicates=replicates, models=tuple(ids), cuts=cuts,
        baseline=baseline, priors=prior_specs, mcid_hr=mcid, tail=tail, sampler=sampler,
        fast_sampler=fast, pool_sampler=pool_s, milestones=milestones, rmst_horizons=horizons,
        gate=gate, fast_gate=fast_gate, fast_replicates=fast_reps, pool_gate=pool_gate,
        model_sampler=model_sampler, pool_replicates=pool,
        data=data, tipping_threshold=thr, path=path, raw=doc,
    )


def load_spec(path: str | Path) -> RunSpec:
    """Read and validate a run spec (TOML).

    Raises
    ------
    InputError
        Naming the offending field (``file`` for unreadable/invalid TOML).
    """
    path = Path(path)
    doc = _read_spec_doc(path, seen=())
    return parse_spec(doc, base=path.resolve().parent, path=path.resolve())


def _merge(base: dict, over: dict) -> dict:
    """Deep merge: tables merge key by key, anything else in ``over`` replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_spec_doc(path: Path, seen: tuple) -> dict:
    """Read a run spec; ``extends = "other.toml"`` layers it over another spec.

    This makes a sensitivity analysis a literal config diff: the file holds
    only what differs from the spec it extends (paths relative to itself).
    """
    if not path.is_file():
        raise InputError("file", f"run spec not found: {path}")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as ex:
        raise InputError("file", f"invalid TOML in {path.name}: {ex}") from None
    parent = doc.pop("extends", None)
    if parent is None:
        return doc
    if not isinstance(parent, str):
        raise InputError("extends", f"expected a file name, got {parent!r}")
    ppath = (path.parent / parent).resolve()
    if ppath in seen:
        raise InputError("extends", f"circular extends via {ppath.name}")
    return _merge(_read_spec_doc(ppath, seen + (path.resolve(),)), doc)


def subset_spec(spec: RunSpec, models=None, priors=None) -> RunSpec:
    """The spec restricted to some models and/or priors (CLI ``--models``/``--priors``)."""
    out = spec
    if models:
        bad = [m for m in models if m not in families.FAMILIES]
        if bad:
            raise InputError("--models", f"unknown model {bad[0]!r} (known: {', '.join(families.FAMILIES)})")
        out = dataclasses.replace(out, models=tuple(models))
    if priors:
        bad = [p for p in priors if p not in spec.priors]
        if bad:
            raise InputError("--priors", f"unknown prior {bad[0]!r} (in config: {', '.join(spec.priors)})")
        out = dataclasses.replace(out, priors={p: spec.priors[p] for p in priors})
    return out


def adapt_spec_to_trial(spec: RunSpec, trial) -> RunSpec:
    """Adapt time-scale choices of a spec to another trial file.

    The CLOCC cut points, milestones and reference time are in months of a
    ~10-year follow-up. For another trial: milestones and RMST horizons come
    from its published landmark times, cut points from those landmarks (plus
    halves of the first, so early hazard changes are seen) and the reference
    time from its published medians (else half the median follow-up).
    """
    lms = sorted({lm.time for a in trial.arms.values() for lm in a.survival if lm.time > 0})
    meds = [a.median.estimate for a in trial.arms.values() if a.median is not None]
    out = spec
    if lms:
        cuts = sorted({0.0, lms[0] / 3, 2 * lms[0] / 3, *lms})
        out = dataclasses.replace(
            out,
            milestones=tuple(lms),
            rmst_horizons=tuple(lms[-2:]) if len(lms) >= 2 else tuple(lms),
            cuts=families.check_cuts(cuts),
        )
    elif trial.followup_median:
        f = trial.followup_median
        out = dataclasses.replace(
            out,
            milestones=(f / 2, f),
            rmst_horizons=(f,),
            cuts=families.check_cuts([0.0, f / 4, f / 2, f]),
        )
    t_ref = float(np.mean(meds)) if meds else (trial.followup_median / 2 if trial.followup_median else None)
    if t_ref:
        out = dataclasses.replace(out, baseline=dataclasses.replace(out.baseline, time_ref=t_ref))
    return dataclasses.replace(out, trial=Path(trial.path).resolve() if trial.path else out.trial, data=None)


# =========================================================================== results


@dataclass(eq=False)
class FitResult:
    """One fitted model x prior.

    Attributes
    ----------
    model : str
        Family id.
    prior : PriorSpec
        The prior on the (mean) log HR.
    idata : arviz.InferenceData
        Posterior, sample_stats, log_likelihood (``obs``, per patient) and
        constant_data (the data and the cut points).
    diagnostics : dict
        :func:`kmbayes.diagnostics.compute` output plus ``failures``/``warnings``.
    gate_passed : bool
    data : SurvivalData
    ctx : dict
        ``t_ref`` and ``cuts`` (what the estimands need besides the draws).
    manifest : dict
    cached : bool
        Loaded from disk rather than sampled in this call.
    """

    model: str
    prior: PriorSpec
    idata: Any
    diagnostics: dict
    gate_passed: bool
    data: SurvivalData
    ctx: dict
    manifest: dict = field(default_factory=dict)
    cached: bool = False
    path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.model}/{self.prior.name}"


@dataclass(eq=False)
class GridResult:
    """All fits of a grid and the tables written from them.

    ``fits[(model, prior)]`` are the primary fits (point reconstruction);
    ``pooled[(model, prior)]`` the replicate-pooled fits if pooling ran.
    """

    fits: dict[tuple[str, str], FitResult]
    results: Any
    diagnostics: Any = None
    loo: Any = None
    tipping: Any = None
    pooling: Any = None
    pooled: dict[tuple[str, str], FitResult] = field(default_factory=dict)
    out_root: Path | None = None
    spec: RunSpec | None = None

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(model, prior) of fits that failed the gate (primary and pooled)."""
        out = [k for k, f in self.fits.items() if not f.gate_passed]
        out += [k for k, f in self.pooled.items() if not f.gate_passed and k not in out]
        return out

    @property
    def gate_passed(self) -> bool:
        return not self.failed


# =========================================================================== env / keys


@cache
def code_hash() -> str:
    """Hash of the source of every module that changes what a fit is."""
    here = Path(__file__).resolve().parent
    files = sorted((here / "families").glob("*.py")) + [here / f for f in _SOURCE_FILES]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@cache
def environment_info() -> dict:
    """Package versions and git commit (``"unknown"`` outside a repository)."""
    import arviz
    import nutpie
    import pymc
    import pytensor

    from . import __version__

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=10,
        ).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "python": platform.python_version(),
        "kmbayes": __version__,
        "numpy": np.__version__,
        "pymc": pymc.__version__,
        "pytensor": pytensor.__version__,
        "arviz": arviz.__version__,
        "nutpie": nutpie.__version__,
        "git_commit": commit,
    }


def _display_path(p) -> str:
    """A path relative to the repository when inside it, so manifests do not depend on the checkout."""
    p = Path(p).resolve()
    root = Path(__file__).resolve().parents[2]
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def derive_seed(run_seed: int, *parts) -> int:
    """Per-fit seed: a hash of the run seed and the fit's identity (stable across runs)."""
    return int(_sha(":".join(map(str, (run_seed, *parts))))[:8], 16)


def _fit_key(model, data, cuts, baseline, prior, settings, gate, seed) -> str:
    env = environment_info()
    doc = {
        "model": model,
        "data": data.digest(),
        "cuts": [str(c) for c in cuts] if families.get(model).uses_cuts else None,
        "baseline": dataclasses.asdict(baseline),
        "prior": [prior.mu, prior.sigma],
        "sampler": dataclasses.asdict(settings),
        "gate": gate.as_dict(),
        "seed": seed,
        "code": code_hash(),
        "versions": {k: v for k, v in env.items() if k != "git_commit"},
    }
    return _sha(json.dumps(doc, sort_keys=True))


# =========================================================================== sampling

_COMPILED: dict[tuple, Any] = {}


@dataclass
class _Compiled:
    """A family compiled for nutpie, plus how to swap data into it."""

    nutpie_model: Any
    shared: dict[str, Any]  # name -> pytensor shared variable (C path) or {} (numba path)
    mode: str

    def with_values(self, values: dict[str, np.ndarray]):
        if self.mode == "numba":
            return self.nutpie_model.with_values(values)
        # C path: the compiled functions read pytensor shared variables; fits
        # run one at a time, so setting them before sampling is the swap.
        for k, v in values.items():
            if k in self.shared:
                self.shared[k].set_value(np.asarray(v, dtype=self.shared[k].dtype))
        return self.nutpie_model


class _Locked:
    """``fn`` behind a lock (PyTensor functions are not re-entrant); picklable."""

    def __init__(self, fn):
        self.fn = fn
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self.fn(*args, **kwargs)

    def __getstate__(self):
        return {"fn": self.fn}

    def __setstate__(self, state):
        self.fn = state["fn"]
        self._lock = threading.Lock()


def _initial_point_fn(pm_model) -> _Locked:
    """PyMC's jittered initial point of the unconstrained parameters (as nutpie uses it)."""
    from pymc.initial_point import make_initial_point_fn

    return _Locked(make_initial_point_fn(
        model=pm_model, return_transformed=True, jitter_rvs=set(pm_model.free_RVs),
        default_strategy="support_point",
    ))


def _c_functions(pm_model) -> dict:
    """The compiled PyTensor functions nutpie needs for a model (picklable).

    Per gradient, the time is PyTensor's VM walking ~30-50 small C ops plus
    nutpie's Rust->Python call, so the functions run without garbage
    collection of intermediates (``allow_gc=False``: buffers are reused
    instead of reallocated, ~25% less per call for piecewise_tv).
    """
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords
    from pytensor.compile.mode import get_default_mode

    ipfn = _initial_point_fn(pm_model)
    mode = get_default_mode()
    if hasattr(mode.linker, "allow_gc"):
        mode = mode.clone(link_kwargs={"allow_gc": False})
    n_dim, _, logp_pt, expand_pt, _, shape_info = _make_functions(
        pm_model, mode=mode, compute_grad=True, join_expanded=False, pymc_initial_point_fn=ipfn,
    )
    dims, coords = _prepare_dims_and_coords(pm_model, shape_info)
    return {"n_dim": n_dim, "logp": logp_pt, "expand": expand_pt, "initial_point": ipfn,
            "shape_info": shape_info, "dims": dims, "coords": coords}


def _flat_initial_point(functions: dict):
    """``seed -> flat unconstrained vector`` from the PyMC initial-point function."""
    from nutpie.compile_pymc import _rv_dict_to_flat_array_wrapper

    names, slices, shapes = functions["shape_info"]
    free = [i for i, sl in enumerate(slices) if sl.stop <= functions["n_dim"]]
    return _rv_dict_to_flat_array_wrapper(
        functions["initial_point"], names=[names[i] for i in free], shapes=[shapes[i] for i in free])


def _compile_c(pm_model=None, functions: dict | None = None):
    """Compile a PyMC model for nutpie with PyTensor's C backend.

    nutpie's numba backend costs 10-20 s of numba compilation per family and
    process; the C backend's compiled modules are cached on disk by PyTensor,
    so a family compiles in ~1 s (graph rewrites and linking), and loading its
    functions from :func:`compiled_model`'s cache takes ~0.05 s.

    The Python side of each gradient is kept minimal: the VM is called
    directly (``Function.__call__``'s checks cost about as much as the model).
    Outputs live in buffers the VM reuses, so they are copied before they go
    to nutpie. A PyTensor function is not re-entrant, so each concurrently
    running chain needs its own copy (~10-30 ms each, sharing the data
    containers, which only change between fits); a copy goes back to a free
    list when nutpie drops its chain's callback, so the next fit reuses it.

    Returns ``(nutpie model, {name: shared variable})``.
    """
    import weakref

    from nutpie.compiled_pyfunc import from_pyfunc

    f = functions if functions is not None else _c_functions(pm_model)
    n_dim, logp_pt, expand_pt = f["n_dim"], f["logp"], f["expand"]
    names, _, shapes = f["shape_info"]
    initial_point_fn = _flat_initial_point(f)
    free_logp: list = []
    free_expand: list = []

    def make_logp_func():
        fn = free_logp.pop() if free_logp else logp_pt.copy()
        vm, inp = fn.vm, fn.input_storage[0].storage
        o0, o1 = (o.storage for o in fn.output_storage)

        def logp(x, **_shared):
            inp[0] = x
            vm()
            return float(o0[0]), np.array(o1[0], dtype="float64", order="C")

        weakref.finalize(logp, free_logp.append, fn)
        return logp

    def make_expand_func(seed1, seed2, chain):
        fn = free_expand.pop() if free_expand else expand_pt.copy()
        if fn.update_input_storage or len(fn.output_storage) != len(names):
            fn.trust_input = True  # updates to apply: keep Function.__call__

            def expand(x, **_shared):
                return {n: np.array(v, dtype="float64", order="C").reshape(sh)
                        for n, v, sh in zip(names, fn(x), shapes)}
        else:
            vm, inp = fn.vm, fn.input_storage[0].storage
            outs = [o.storage for o in fn.output_storage]

            def expand(x, **_shared):
                inp[0] = x
                vm()
                return {n: np.array(o[0], dtype="float64", order="C").reshape(sh)
                        for n, o, sh in zip(names, outs, shapes)}

        weakref.finalize(expand, free_expand.append, fn)
        return expand

    compiled = from_pyfunc(
        ndim=n_dim, make_logp_fn=make_logp_func, make_expand_fn=make_expand_func,
        expanded_dtypes=[np.dtype("float64")] * len(names), expanded_shapes=shapes,
        expanded_names=names, make_initial_point_fn=initial_point_fn, dims=f["dims"],
        coords=f["coords"],
    )
    shared = {v.name: v for v in [*logp_pt.get_shared(), *expand_pt.get_shared()]}
    return compiled, shared


_CACHE_OFF = ("0", "false", "no", "off")


def _functions_cache_file(model: str, cuts, values: dict, mode: str = "c") -> Path | None:
    """Where :func:`compiled_model` keeps a family's compiled functions (None: cache off).

    The key holds everything the compiled graph depends on: the family, its
    cut points, the source of the fitting modules and families
    (:func:`code_hash`), package versions, PyTensor's flags and the shapes of
    the data containers. The file sits in PyTensor's compile directory, next
    to the C modules it links against.
    """
    if os.environ.get("KMBAYES_COMPILE_CACHE", "1").strip().lower() in _CACHE_OFF:
        return None
    try:
        import cloudpickle
        import nutpie
        import pymc
        import pytensor

        doc = {
            "model": model,
            "mode": mode,
            "cuts": None if cuts is None else [str(c) for c in cuts],
            "code": code_hash(),
            "versions": [platform.python_version(), np.__version__, pymc.__version__,
                         pytensor.__version__, nutpie.__version__, cloudpickle.__version__,
                         _package_version("numba")],
            "pytensor": [pytensor.config.floatX, pytensor.config.mode, pytensor.config.linker,
                         os.environ.get("PYTENSOR_FLAGS", "")],
            "values": {k: [str(v.dtype), list(v.shape)] for k, v in sorted(values.items())},
        }
        root = Path(pytensor.config.compiledir) / "kmbayes"
    except Exception:
        return None
    return root / f"{model}-{_sha(json.dumps(doc, sort_keys=True))[:32]}.pkl"


def _load_functions(path: Path | None, values: dict) -> dict | None:
    if path is None or not path.exists():
        return None
    import pickle

    try:
        with open(path, "rb") as fh:
            f = pickle.load(fh)
        shared = {v.name for v in [*f["logp"].get_shared(), *f["expand"].get_shared()]
                  if not _is_rng(v)}
        if not shared <= set(values):  # a container nothing would fill: compile afresh
            return None
        return f
    except Exception:  # unreadable or from an incompatible build: compile afresh
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _is_rng(var) -> bool:
    return "Generator" in type(var.type).__name__ or "RandomState" in type(var.type).__name__


def _save_functions(path: Path | None, functions: dict) -> None:
    if path is None:
        return
    try:
        import cloudpickle

        blob = cloudpickle.dumps(functions)
        with atomic_path(path) as tmp:
            tmp.write_bytes(blob)
        # Entries of older code versions are never read again.
        cutoff = time.time() - 30 * 86400
        for old in path.parent.glob("*.pkl"):
            if old.stat().st_mtime < cutoff:
                old.unlink()
    except Exception:  # the cache is an optimisation; never fail a fit for it
        pass


def compiled_model(model: str, data: SurvivalData, prior: PriorSpec, cuts, baseline: BaselinePrior,
                   mode: str = "numba") -> _Compiled:
    """The family compiled for nutpie, once per process, family, cut points and mode.

    ``mode`` is ``"numba"`` (PyTensor's numba backend behind C callbacks that
    nutpie calls without the GIL, :mod:`kmbayes._nutpie_numba`; ~0.1-0.3 s per
    fit of 2 x 1300 iterations) or ``"c"`` (PyTensor's C backend behind
    nutpie's Python-function interface: ~0.5 s per chain, and chains need
    separate processes). Swap data with ``.with_values(model_values(...))``;
    nothing is recompiled.

    What a family costs to compile is paid once per machine, not per process:
    the PyTensor functions (graph rewriting and linking, ~1 s) are pickled to
    disk (see :func:`_functions_cache_file`; ``KMBAYES_COMPILE_CACHE=0``
    turns that off), and the machine code sits in PyTensor's caches (C
    modules, or numba's cache for the numba functions and kmbayes' callbacks).
    Cold, the numba path takes ~15 s for the three families; warm, ~2 s in
    all (mostly numba's start-up).
    """
    fam = families.get(model)
    key = (model, tuple(cuts) if fam.uses_cuts else None, mode)
    if key not in _COMPILED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode not in ("c", "numba"):
                raise InputError("sampler.compile", f"must be 'c' or 'numba', got {mode!r}")
            values = model_values(model, data, prior, cuts, baseline)
            path = _functions_cache_file(model, key[1], values, mode)
            functions = _load_functions(path, values)
            if functions is None:
                pm_model = fam.build(data, prior, cuts=cuts, baseline=baseline)
                functions = (_nutpie_numba.make_functions(pm_model, _initial_point_fn(pm_model))
                             if mode == "numba" else _c_functions(pm_model))
                _save_functions(path, functions)
            if mode == "numba":
                _COMPILED[key] = _Compiled(
                    _nutpie_numba.build(functions, values, _flat_initial_point(functions)), {}, mode)
            else:
                _COMPILED[key] = _Compiled(*_compile_c(functions=functions), mode)
    return _COMPILED[key]


def model_values(model, data, prior, cuts, baseline) -> dict[str, np.ndarray]:
    """All ``pm.Data`` values of a fit (data, baseline constants, prior)."""
    fam = families.get(model)
    vals = dict(fam.data_values(data, cuts))
    vals.update(baseline.values())
    vals.update(fam.prior_values(prior))
    return {k: np.asarray(v, dtype=float) for k, v in vals.items()}


def chain_seed(seed: int, chain: int) -> int:
    """Seed of one chain of a fit: the same wherever the chain runs (worker or caller)."""
    return derive_seed(seed, "chain", chain)


def _sample_chain(model, data, prior, cuts, baseline, settings, seed):
    """One chain, in this process, with the C backend (``chains=1, cores=1``).

    This is the unit of work of the chain workers and of the sequential
    fallback alike, so a chain's draws depend only on its seed.
    """
    import nutpie

    compiled = compiled_model(model, data, prior, cuts, baseline, "c")
    c = compiled.with_values(model_values(model, data, prior, cuts, baseline))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nutpie.sample(
            c, draws=settings.draws, tune=settings.tune, chains=1, cores=1, seed=seed,
            progress_bar=False, save_warmup=False, target_accept=settings.target_accept,
        )


def _concat_chains(traces: list) -> Any:
    """Single-chain traces -> one InferenceData with chains 0..C-1 (as nutpie returns)."""
    if len(traces) == 1:
        return traces[0]
    import arviz as az
    import xarray as xr

    groups = {}
    for g in ("posterior", "sample_stats"):
        parts = [getattr(t, g).assign_coords(chain=[c]) for c, t in enumerate(traces)]
        groups[g] = xr.concat(parts, dim="chain", combine_attrs="override")
    return az.InferenceData(**groups)


def _sample_nutpie(model, data, prior, cuts, baseline, settings, seed):
    """Sample with nutpie: numba backend (default) or C backend (fallback).

    numba: the compiled callbacks run without the GIL, so nutpie runs the
    chains as threads of this process, in parallel. If the numba path cannot
    be built here (see :mod:`kmbayes._nutpie_numba`), the fit falls back to
    the C backend once per process, with a warning; ``sample_stats`` records
    which backend ran (attribute ``kmbayes_compile``).

    C: every logp/gradient is a Python callback, so chains run as nutpie
    threads of one process serialise on the GIL and thrash it (piecewise_tv,
    1000 draws, 2 chains: 2.30 s on 2 threads, 1.16 s on one, 0.64 s for a
    single chain). Each chain therefore runs alone in a process (``chains=1,
    cores=1``) with its own seed, :func:`chain_seed`: chain 0 here, the others
    in the worker pool, or here one after another when the pool is off or
    broken -- the draws are the same either way.
    """
    if settings.compile not in ("c", "numba"):
        raise InputError("sampler.compile", f"must be 'c' or 'numba', got {settings.compile!r}")
    if settings.compile == "numba" and _NUMBA_BROKEN is None:
        import nutpie

        try:
            compiled = compiled_model(model, data, prior, cuts, baseline, "numba")
        except Exception as ex:  # e.g. an incompatible nutpie/PyTensor: use the C backend
            _numba_broken(ex)
        else:
            c = compiled.with_values(model_values(model, data, prior, cuts, baseline))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idata = nutpie.sample(
                    c, draws=settings.draws, tune=settings.tune, chains=settings.chains,
                    cores=max(1, min(settings.chains, _n_cpus())), seed=seed,
                    progress_bar=False, save_warmup=False, target_accept=settings.target_accept,
                )
            idata.sample_stats.attrs["kmbayes_compile"] = "numba"
            return idata
    idata = _sample_c(model, data, prior, cuts, baseline, settings, seed)
    idata.sample_stats.attrs["kmbayes_compile"] = "c"
    return idata


#: why the numba path is off for the rest of the process
_NUMBA_BROKEN: str | None = None


def _numba_broken(ex: Exception) -> None:
    global _NUMBA_BROKEN
    _NUMBA_BROKEN = f"{type(ex).__name__}: {ex}"[:300]
    warnings.warn(f"kmbayes: nutpie's numba backend is unavailable ({_NUMBA_BROKEN}); "
                  "sampling with the C backend instead", RuntimeWarning, stacklevel=3)


def _sample_c(model, data, prior, cuts, baseline, settings, seed):
    """The C backend: chain 0 here, the others in the worker pool (see :class:`_ChainPool`)."""
    args = (model, data, prior, cuts, baseline, settings)
    seeds = [chain_seed(seed, c) for c in range(settings.chains)]
    hosts = ["main"] * settings.chains
    pool = _chain_pool(settings.chains)
    # Submitted before this process compiles, so the workers' compile of a new
    # family overlaps with ours.
    jobs = pool.submit(args, {c: seeds[c] for c in range(1, settings.chains)}) if pool else {}
    try:
        t0 = time.perf_counter()
        traces = {0: _sample_chain(*args, seeds[0])}
        if pool is not None:
            done = pool.collect(jobs, lambda c: _sample_chain(*args, seeds[c]), time.perf_counter() - t0)
            for c, (trace, host) in done.items():
                traces[c], hosts[c] = trace, host
            jobs = {}
        for c in range(1, settings.chains):
            if c not in traces:
                traces[c] = _sample_chain(*args, seeds[c])
    finally:
        if pool is not None and jobs:
            pool.cancel(jobs)
    _LAST_CHAIN_HOSTS[:] = hosts
    return _concat_chains([traces[c] for c in range(settings.chains)])


# --------------------------------------------------------------------------- chain workers

#: where each chain of the last C-backend fit ran (``"main"`` or ``"worker"``); for tests
_LAST_CHAIN_HOSTS: list[str] = []
_POOL: _ChainPool | None = None
#: why the pool is off for the rest of the process (it failed to start or a worker died)
_POOL_DISABLED: str | None = None
_IN_WORKER = False


def _n_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _n_workers() -> int:
    """Worker processes to use: ``KMBAYES_WORKERS`` if set, else one per spare CPU."""
    cpus = _n_cpus()
    env = os.environ.get("KMBAYES_WORKERS", "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            warnings.warn(f"KMBAYES_WORKERS={env!r} is not an integer; using {cpus - 1}", stacklevel=2)
    return max(0, cpus - 1)


def _chain_pool(chains: int) -> _ChainPool | None:
    """The process's chain-worker pool, started at first use; None if off or broken.

    It holds at most ``chains - 1`` workers and at most ``KMBAYES_WORKERS``
    (default: CPUs - 1), growing if a later fit has more chains.
    """
    global _POOL
    n = min(_n_workers(), chains - 1)
    if n <= 0 or _IN_WORKER or _POOL_DISABLED is not None:
        return None
    if _POOL is not None and not _POOL.alive():
        _disable_pool("a chain worker died")
        return None
    try:
        if _POOL is None:
            _POOL = _ChainPool()
        _POOL.grow(n)
    except Exception as ex:  # e.g. inside a daemonic process: sample in-process instead
        _disable_pool(f"could not start chain workers: {type(ex).__name__}: {ex}")
        return None
    return _POOL


def _disable_pool(reason: str) -> None:
    """Stop the workers for the rest of the process; chains then run in the caller."""
    global _POOL_DISABLED
    _POOL_DISABLED = reason
    shutdown_workers()
    warnings.warn(f"kmbayes: {reason}; sampling chains one after another in this process",
                  RuntimeWarning, stacklevel=2)


def shutdown_workers() -> None:
    """Stop the chain-worker pool (registered with :mod:`atexit`); the next fit starts a new one."""
    global _POOL
    pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def reset_compiled() -> None:
    """Forget every compiled family and stop the chain workers (a cold start, for benchmarks)."""
    global _POOL_DISABLED
    _COMPILED.clear()
    shutdown_workers()
    _POOL_DISABLED = None


atexit.register(shutdown_workers)


class _ChainPool:
    """Persistent ``spawn``-ed worker processes that sample chains 1..C-1 of a fit.

    Why processes: with the C backend a chain is a stream of Python callbacks
    (per gradient ~5-17 us of PyTensor VM plus ~10 us of nutpie's Rust->Python
    call), so two chains as threads of one process contend for the GIL:
    piecewise_tv (1000 draws) took 2.30 s as 2 threads, 1.16 s as 2 chains one
    after the other and 0.64 s for one chain; two processes run two chains in
    about the time of one. ``spawn`` (not ``fork``) because nutpie/Rust and
    BLAS threads may already exist in the caller. Each worker compiles (or
    loads) a family once (its own ``_COMPILED``), when its first task for that
    family arrives -- tasks are queued before the caller compiles, so both
    compile at the same time.

    Work stealing keeps a slow worker from ever costing more than sampling
    sequentially: a worker claims a task (shared ``claims`` slot, under its
    lock) only once its compiled model is ready; a task still unclaimed when
    the caller has finished its own chain is claimed and run by the caller
    (so while workers start up, the first fits simply run in the caller).
    Draws do not depend on who runs a chain. A worker that dies, errs or
    overruns makes the caller run the chain itself.
    """

    SLOTS = 4096
    #: a claimed chain may take this many times the caller's own chain (at least MIN_WAIT s)
    OVERRUN = 20.0
    MIN_WAIT = 120.0

    def __init__(self):
        import multiprocessing as mp

        self._ctx = mp.get_context("spawn")
        self.steal = True
        self._tid = 0
        self._claims = self._ctx.Array("q", self.SLOTS)
        self._tasks = self._ctx.Queue()
        self._tasks.cancel_join_thread()  # never block interpreter exit on unsent tasks
        self._workers: list = []

    def grow(self, n: int) -> None:
        """Start workers until there are ``n``."""
        while len(self._workers) < n:
            r, w = self._ctx.Pipe(duplex=False)
            p = self._ctx.Process(target=_worker_main, args=(self._tasks, w, self._claims),
                                  name=f"kmbayes-chains-{len(self._workers) + 1}", daemon=True)
            try:
                p.start()
            finally:
                w.close()
            self._workers.append((p, r))

    def alive(self) -> bool:
        return all(p.is_alive() for p, _ in self._workers)

    def _claim(self, tid: int) -> bool:
        return _claim(self._claims, tid)

    def submit(self, args: tuple, seeds: dict[int, int]) -> dict[int, int]:
        """Queue chains ``{chain: seed}``; returns ``{task id: chain}``."""
        jobs = {}
        for c, sd in seeds.items():
            self._tid += 1
            with self._claims.get_lock():
                self._claims[self._tid % self.SLOTS] = self._tid
            self._tasks.put((self._tid, args, sd))
            jobs[self._tid] = c
        return jobs

    def cancel(self, jobs: dict[int, int]) -> None:
        """Withdraw unstarted tasks (a worker skips a task it cannot claim)."""
        for tid in jobs:
            self._claim(tid)

    def collect(self, jobs: dict[int, int], run_local: Callable,
                t_chain: float = 0.0) -> dict[int, tuple[Any, str]]:
        """Results ``{chain: (trace, host)}`` of ``jobs``, stealing unstarted ones.

        ``run_local(chain)`` samples a chain here; ``t_chain`` is how long the
        caller's own chain took (what a worker's chain is expected to take).
        """
        from multiprocessing.connection import wait

        jobs = dict(jobs)
        out: dict[int, tuple[Any, str]] = {}
        t_local = t_chain

        def local(c):
            nonlocal t_local
            t0 = time.perf_counter()
            out[c] = (run_local(c), "main")
            t_local = max(t_local, time.perf_counter() - t0)

        while jobs:
            # Take what has arrived (and drop replies to withdrawn tasks).
            for _, conn in self._workers:
                while jobs and conn.poll():
                    try:
                        kind, tid, payload = conn.recv()
                    except (EOFError, OSError):
                        break
                    c = jobs.pop(tid, None)
                    if c is None:
                        continue
                    if kind == "done":
                        out[c] = (payload, "worker")
                    else:  # the worker could not compile or sample it: do it here
                        local(c)
            if not jobs:
                break
            if self.steal:
                # Latest first: the queue hands out the earliest first.
                tid = next((t for t in sorted(jobs, reverse=True) if self._claim(t)), None)
                if tid is not None:
                    local(jobs.pop(tid))
                    continue
            if not self.alive():
                _disable_pool("a chain worker died")
                break
            limit = max(self.MIN_WAIT, self.OVERRUN * t_local)
            t0 = time.perf_counter()
            ready = wait([conn for _, conn in self._workers] + [p.sentinel for p, _ in self._workers],
                         timeout=limit)
            if not ready and time.perf_counter() - t0 >= limit:
                _disable_pool(f"a chain worker took over {limit:.0f} s")
                break
        for c in sorted(jobs.values()):  # the pool broke: finish here, one chain after another
            local(c)
        return out

    def close(self) -> None:
        for _ in self._workers:
            try:
                self._tasks.put(None)
            except Exception:
                pass
        deadline = time.monotonic() + 3.0
        for p, conn in self._workers:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(timeout=1.0)
            conn.close()
        self._workers = []
        self._tasks.close()


def _claim(claims, tid: int) -> bool:
    """Atomically take task ``tid`` (False if someone else already took it)."""
    slot = tid % _ChainPool.SLOTS
    with claims.get_lock():
        if claims[slot] != tid:
            return False
        claims[slot] = -1
        return True


def _worker_main(tasks, conn, claims) -> None:
    """A chain worker: compile, claim, sample one chain, send the trace back; repeat."""
    import queue
    import signal
    from multiprocessing import parent_process

    global _IN_WORKER
    _IN_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    warnings.simplefilter("ignore")
    parent = parent_process()
    while True:
        try:
            task = tasks.get(timeout=2.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return
            continue
        except (EOFError, OSError):
            return
        if task is None:
            return
        tid, args, seed = task
        try:
            # Compile before claiming: until it is ready the caller may as well run the chain.
            compiled_model(*args[:5], "c")
        except Exception as ex:
            msg = ("error", tid, f"{type(ex).__name__}: {ex}")
        else:
            if not _claim(claims, tid):
                msg = ("skip", tid, None)
            else:
                try:
                    msg = ("done", tid, _sample_chain(*args, seed))
                except Exception as ex:
                    msg = ("error", tid, f"{type(ex).__name__}: {ex}")
        try:
            conn.send(msg)
        except (OSError, EOFError):
            return


def _sample_pymc(model, data, prior, cuts, baseline, settings, seed):
    import pymc as pm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = families.get(model).build(data, prior, cuts=cuts, baseline=baseline)
        with m:
            idata = pm.sample(
                draws=settings.draws, tune=settings.tune, chains=settings.chains,
                cores=min(settings.chains, 2), target_accept=settings.target_accept,
                random_seed=seed, progressbar=False, compute_convergence_checks=False,
            )
    return idata


def _finish_idata(idata, model, data, prior, cuts, baseline):
    """Add per-patient log-likelihood, the data and identifying attrs to ``idata``."""
    import xarray as xr

    fam = families.get(model)
    # Transformed copies (e.g. tau_log__) duplicate their constrained variable.
    post = idata.posterior[[v for v in idata.posterior.data_vars if not v.endswith("__")]]
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    arrays = {k: np.asarray(v.values).reshape(nc * nd, *v.shape[2:]) for k, v in post.data_vars.items()}
    ctx = {"t_ref": baseline.time_ref, "cuts": tuple(cuts)}
    ll = fam.pointwise_loglik(arrays, data, ctx).reshape(nc, nd, data.n)
    coords = {"chain": post.chain.values, "draw": post.draw.values, "patient": np.arange(data.n)}
    llds = xr.Dataset({"obs": (("chain", "draw", "patient"), ll)}, coords=coords)
    cd = xr.Dataset(
        {
            "time": ("patient", np.asarray(data.time)),
            "event": ("patient", np.asarray(data.event)),
            "arm": ("patient", np.asarray(data.arm, dtype=np.int64)),
            "cuts": ("cut", np.asarray(cuts, float)),
            "t_ref": ((), float(baseline.time_ref)),
        },
        coords={"patient": np.arange(data.n), "cut": np.arange(len(cuts))},
    )
    import arviz as az

    # A fresh InferenceData: drops PyMC's own constant_data/observed_data so
    # both samplers produce the same groups.
    idata = az.InferenceData(
        posterior=post, sample_stats=idata.sample_stats, log_likelihood=llds, constant_data=cd
    )
    idata.posterior.attrs.update(
        {
            "model": model,
            "prior": prior.name,
            "prior_mu": float(prior.mu),
            "prior_sigma": float(prior.sigma),
            "reference_arm": data.arm_ids[0],
            "treatment_arm": data.arm_ids[1],
            "time_unit": data.time_unit,
            "replicate": -1 if data.replicate is None else int(data.replicate),
        }
    )
    return idata


def fit_one(
    model: str,
    data: SurvivalData,
    prior: PriorSpec,
    *,
    cuts=families.DEFAULT_CUTS,
    baseline: BaselinePrior | None = None,
    settings: SamplerSettings | None = None,
    gate: Gate | None = None,
    seed: int = 0,
    retry: bool | None = None,
    loo: bool = True,
    pymc_fallback: bool = True,
) -> FitResult:
    """Sample one model x prior x data set, gate it, retry if needed.

    Attempts: the given settings with the given backend; then
    :meth:`SamplerSettings.safer` twice with nutpie; then the safer settings
    with PyMC's NUTS. A nutpie exception jumps straight to PyMC. Stops at the first
    attempt that passes the gate; otherwise returns the last attempt flagged
    ``gate_passed=False``.
    """
    baseline = baseline or BaselinePrior()
    settings = settings or SamplerSettings()
    gate = gate or Gate()
    cuts = families.check_cuts(cuts)
    retry = settings.retry if retry is None else retry
    plan = [(settings.backend, settings)]
    if retry:
        # nutpie retries cost well under a second (no recompilation), so try
        # two rounds of safer settings before paying for PyMC's compilation.
        safer = settings.safer()
        plan += [("nutpie", safer), ("nutpie", safer.safer())]
        if pymc_fallback:
            plan.append(("pymc", safer))
        if settings.backend == "pymc":
            plan = [("pymc", settings), ("pymc", safer)]
    attempts = []
    best = None
    i = 0
    while i < len(plan):
        backend, s = plan[i]
        fseed = derive_seed(seed, i)
        t0 = time.perf_counter()
        try:
            sampler = _sample_nutpie if backend == "nutpie" else _sample_pymc
            idata = sampler(model, data, prior, cuts, baseline, s, fseed)
        except Exception as ex:  # a sampler crash is a failed attempt, not a crash of the grid
            attempts.append({"backend": backend, **dataclasses.asdict(s), "seed": fseed,
                             "error": f"{type(ex).__name__}: {ex}"[:300]})
            if backend == "nutpie":
                nxt = [j for j in range(i + 1, len(plan)) if plan[j][0] == "pymc"]
                i = nxt[0] if nxt else len(plan)
            else:
                i += 1
            continue
        ran = idata.sample_stats.attrs.get("kmbayes_compile", s.compile)  # numba may fall back to c
        idata = _finish_idata(idata, model, data, prior, cuts, baseline)
        d = diag_mod.compute(idata, loo=loo)
        fails = diag_mod.gate_failures(d, gate)
        attempts.append({"backend": backend, **dataclasses.asdict(s), "compile": ran, "seed": fseed,
                         "seconds": round(time.perf_counter() - t0, 3), "failures": fails})
        best = (idata, d, fails, backend, s)
        if not fails:
            break
        i += 1
    if best is None:
        raise FitFailedError(f"{model}/{prior.name}: every sampler attempt raised: {attempts[-1].get('error')}")
    idata, d, fails, backend, s = best
    d = dict(d, failures=fails, warnings=diag_mod.warnings_of(d), sampler=backend,
             attempts=len(attempts), attempt_log=attempts)
    ctx = {"t_ref": baseline.time_ref, "cuts": tuple(cuts)}
    return FitResult(model, prior, idata, d, not fails, data, ctx)


# =========================================================================== storage


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else str(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def _write_fit(fit: FitResult, folder: Path, manifest: dict, name: str = "posterior.nc") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # ArviZ stamps each group with ``created_at``; the manifest records when
    # instead, so a refit with the same numbers writes the same bytes.
    for g in fit.idata.groups():
        getattr(fit.idata, g).attrs.pop("created_at", None)
    with atomic_path(folder / name) as tmp:
        fit.idata.to_netcdf(str(tmp))
    man_name = "manifest.json" if name == "posterior.nc" else name.replace(".nc", "_manifest.json")
    write_text_atomic(folder / man_name, json.dumps(_jsonable(manifest), indent=2, sort_keys=True) + "\n")
    fit.manifest = manifest
    fit.path = folder / name


def _data_from_idata(idata, attrs) -> SurvivalData:
    cd = idata.constant_data
    rep = int(attrs.get("replicate", -1))
    return SurvivalData(
        np.asarray(cd["time"].values), np.asarray(cd["event"].values), np.asarray(cd["arm"].values),
        (str(attrs["reference_arm"]), str(attrs["treatment_arm"])),
        str(attrs.get("time_unit", "months")), None if rep < 0 else rep,
    )


def read_fit(path: Path, manifest: dict | None = None, data: SurvivalData | None = None) -> FitResult:
    """Load a fit written by :func:`fit_grid` (``posterior.nc`` + manifest)."""
    import arviz as az

    path = Path(path)
    if manifest is None:
        mp = path.parent / ("manifest.json" if path.name == "posterior.nc" else path.name.replace(".nc", "_manifest.json"))
        manifest = json.loads(mp.read_text()) if mp.exists() else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(str(path))
    attrs = dict(idata.posterior.attrs)
    prior = PriorSpec(str(attrs["prior"]), float(attrs["prior_mu"]), float(attrs["prior_sigma"]),
                      manifest.get("prior_description", ""))
    cuts = tuple(float(c) for c in np.asarray(idata.constant_data["cuts"].values))
    ctx = {"t_ref": float(idata.constant_data["t_ref"].values), "cuts": cuts}
    if data is None:
        data = _data_from_idata(idata, attrs)
    d = dict(manifest.get("diagnostics", {}))
    return FitResult(str(attrs["model"]), prior, idata, d, bool(manifest.get("gate_passed", False)),
                     data, ctx, manifest, True, path)


def _load_cached(folder: Path, key: str, data: SurvivalData, name: str = "posterior.nc") -> FitResult | None:
    man_name = "manifest.json" if name == "posterior.nc" else name.replace(".nc", "_manifest.json")
    mp, pp = folder / man_name, folder / name
    if not (mp.exists() and pp.exists()):
        return None
    try:
        manifest = json.loads(mp.read_text())
        if manifest.get("cache_key") != key:
            return None
        return read_fit(pp, manifest, data)
    except Exception:  # a corrupt cache entry is refitted, never trusted
        return None


# =========================================================================== grid


def _manifest(fit: FitResult, *, key, seed, settings, gate, spec, data_hash, profile, extra=None) -> dict:
    m = {
        "model": fit.model,
        "prior": fit.prior.name,
        "prior_mu": fit.prior.mu,
        "prior_sigma": fit.prior.sigma,
        "prior_description": fit.prior.description,
        "seed": seed,
        "cache_key": key,
        "config_hash": spec.config_hash() if spec else None,
        "config": _display_path(spec.path) if spec and spec.path else None,
        "data_hash": data_hash,
        "data_digest": fit.data.digest(),
        "replicate": fit.data.replicate,
        "code_hash": code_hash(),
        "packages": environment_info(),
        "git_commit": environment_info()["git_commit"],
        "sampler": dataclasses.asdict(settings),
        "sampler_used": fit.diagnostics.get("sampler"),
        "attempts": fit.diagnostics.get("attempt_log", []),
        "cuts": [str(c) for c in fit.ctx["cuts"]],
        "t_ref": fit.ctx["t_ref"],
        "gate": gate.as_dict(),
        "gate_passed": fit.gate_passed,
        "profile": profile,
        "diagnostics": {k: v for k, v in fit.diagnostics.items() if k != "attempt_log"},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if extra:
        m.update(extra)
    return m


def _flag(fit: FitResult) -> str:
    if fit.gate_passed:
        return ""
    fails = fit.diagnostics.get("failures") or ["diagnostic gate failed"]
    return "GATE FAILED: " + "; ".join(fails)


def _result_rows(fit: FitResult, spec: RunSpec) -> list[dict]:
    rows = estimands.summarise(fit, spec.milestones, spec.rmst_horizons)
    flag = _flag(fit)
    return [{"model": fit.model, "prior": fit.prior.name, **r, "flag": flag} for r in rows]


def _diag_row(fit: FitResult) -> dict:
    d = fit.diagnostics
    return {
        "model": fit.model,
        "prior": fit.prior.name,
        "rhat_max": d.get("rhat_max"),
        "ess_bulk_min": d.get("ess_bulk_min"),
        "ess_tail_min": d.get("ess_tail_min"),
        "divergences": d.get("divergences"),
        "bfmi_min": d.get("bfmi_min"),
        "pareto_k_max": d.get("pareto_k_max"),
        "elpd_loo": d.get("elpd_loo"),
        "p_loo": d.get("p_loo"),
        "sampler": d.get("sampler"),
        "attempts": d.get("attempts"),
        "gate_passed": bool(fit.gate_passed),
        "failures": "; ".join(d.get("failures") or []),
        "warnings": "; ".join(d.get("warnings") or []),
    }


def _loo_table(fits: dict, spec: RunSpec):
    import pandas as pd

    rows = []
    for p in spec.priors:
        ids = {m: fits[(m, p)].idata for m in spec.models if (m, p) in fits}
        if not ids:
            continue
        if len(ids) == 1:
            m = next(iter(ids))
            d = fits[(m, p)].diagnostics
            rows.append({"prior": p, "model": m, "rank": 0, "elpd_loo": d.get("elpd_loo"),
                         "p_loo": d.get("p_loo"), "elpd_diff": 0.0, "weight": 1.0,
                         "se": d.get("se_elpd_loo"), "dse": 0.0, "warning": False})
            continue
        cmp = diag_mod.compare(ids)
        for m, r in cmp.iterrows():
            rows.append({"prior": p, "model": m, "rank": int(r["rank"]), "elpd_loo": r["elpd_loo"],
                         "p_loo": r["p_loo"], "elpd_diff": r["elpd_diff"], "weight": r["weight"],
                         "se": r["se"], "dse": r["dse"], "warning": bool(r["warning"])})
    return pd.DataFrame(rows, columns=["prior", "model", "rank", "elpd_loo", "p_loo", "elpd_diff",
                                       "weight", "se", "dse", "warning"])


# --------------------------------------------------------------------------- tipping point


def likelihood_from_fit(fit: FitResult) -> tuple[float, float]:
    """Normal approximation to the likelihood of the log HR implied by a fit.

    The posterior mean m and SD s of the (mean) log HR with the fit's normal
    prior N(mu0, s0) removed by precision subtraction:
    1/se^2 = 1/s^2 - 1/s0^2, y = se^2 (m/s^2 - mu0/s0^2). Exact if the
    posterior is normal; with the vague reference prior it is just (m, s).
    """
    b = estimands.log_hr_draws(fit)
    m, s = float(np.mean(b)), float(np.std(b))
    prec = 1 / s**2 - 1 / fit.prior.sigma**2
    if prec <= 0:  # prior dominates completely: no information in the data
        return m, math.inf
    se2 = 1 / prec
    return se2 * (m / s**2 - fit.prior.mu / fit.prior.sigma**2), math.sqrt(se2)


def tipping_point_is(fit: FitResult, threshold_prob: float = 0.95) -> dict:
    """Tipping point from a fitted model by importance reweighting.

    The posterior under prior N(0, s) is proportional to the fitted posterior
    times N(log HR; 0, s) / p_fit(log HR), so each draw gets that weight and
    P(HR < 1) under N(0, s) is a weighted mean; a root find on log s gives the
    smallest s with P(HR < 1) >= ``threshold_prob``. The search is bracketed
    around the normal-approximation answer (:func:`likelihood_from_fit`,
    :func:`kmbayes.priors.tipping_point_conjugate`) because far below it the
    weights degenerate onto a handful of draws. The Pareto k of the
    PSIS-smoothed weights at the solution says whether to trust it
    (k < 0.7; Vehtari et al. 2024); :func:`fit_grid` also confirms the answer
    by refitting the model at that prior (cheap: same compiled model).

    Returns ``{"sigma", "p_hr_lt_1", "pareto_k", "sigma_normal"}``; sigma is
    inf if even the fitted prior does not reach the threshold.

    References
    ----------
    Vehtari A, Simpson D, Gelman A, Yao Y, Gabry J. Pareto smoothed importance
    sampling. J Mach Learn Res. 2024;25(72):1-58.
    """
    import arviz as az
    from scipy import optimize, stats

    b = estimands.log_hr_draws(fit)
    base = fit.prior.logpdf(b)
    y, se = likelihood_from_fit(fit)
    s_norm = priors.tipping_point_conjugate(y, se, threshold_prob) if math.isfinite(se) else math.inf

    def weights(s):
        lw = stats.norm.logpdf(b, 0.0, s) - base
        lw -= lw.max()
        w = np.exp(lw)
        return w / w.sum()

    def f(log_s):
        return float(np.sum(weights(math.exp(log_s)) * (b < 0))) - threshold_prob

    out = {"sigma": math.inf, "p_hr_lt_1": float(np.mean(b < 0)), "pareto_k": math.nan,
           "sigma_normal": s_norm}
    hi = math.log(max(fit.prior.sigma, 1e-3))
    if not math.isfinite(s_norm) or f(hi) < 0:
        return out
    lo = math.log(s_norm / 3)
    if f(lo) >= 0:  # reweighting disagrees badly with the normal approximation
        out.update(sigma=s_norm, p_hr_lt_1=math.nan)
        return out
    s = math.exp(optimize.brentq(f, lo, hi, xtol=1e-6))
    lw = stats.norm.logpdf(b, 0.0, s) - base
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k = az.psislw(lw - lw.max())
    out.update(sigma=s, p_hr_lt_1=f(math.log(s)) + threshold_prob, pareto_k=float(k))
    return out


def _prob_mcid(sigma: float, mcid: float) -> float:
    from scipy import stats

    return float(stats.norm.cdf(math.log(mcid) / sigma)) if math.isfinite(sigma) else math.nan


# --------------------------------------------------------------------------- pooling


def pool_fits(fits: list[FitResult], primary: FitResult) -> FitResult:
    """Mix replicate fits into one: posterior chains concatenated (equal weight per replicate).

    Mixing the posterior draws of every plausible reconstruction integrates
    over reconstruction uncertainty (like multiple imputation, with each
    replicate's posterior as a draw of the complete-data posterior).
    """
    import arviz as az
    import xarray as xr

    # A retried member may have more draws; thin every member evenly to the
    # shortest so each replicate carries the same weight in the mixture.
    n = min(f.idata.posterior.sizes["draw"] for f in fits)
    posts, stats_ = [], []
    for r, f in enumerate(fits):
        p = f.idata.posterior
        idx = np.round(np.linspace(0, p.sizes["draw"] - 1, n)).astype(int)
        chain = np.arange(p.sizes["chain"]) + r * p.sizes["chain"]
        posts.append(p.isel(draw=idx).assign_coords(chain=chain, draw=np.arange(n)))
        ss_r = f.idata.sample_stats[["diverging"]]
        stats_.append(ss_r.isel(draw=np.minimum(idx, ss_r.sizes["draw"] - 1))
                      .assign_coords(chain=chain, draw=np.arange(n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = xr.concat(posts, dim="chain", combine_attrs="override")
        ss = xr.concat(stats_, dim="chain")
    idata = az.InferenceData(posterior=post, sample_stats=ss, constant_data=primary.idata.constant_data)
    rhats = [f.diagnostics.get("rhat_max", math.nan) for f in fits]
    d = {
        "sampler": "nutpie",
        "attempts": int(np.sum([f.diagnostics.get("attempts", 1) for f in fits])),
        "replicates": len(fits),
        "rhat_max": float(np.nanmax(rhats)),
        "ess_bulk_min": float(np.sum([f.diagnostics.get("ess_bulk_min", 0) for f in fits])),
        "ess_tail_min": float(np.sum([f.diagnostics.get("ess_tail_min", 0) for f in fits])),
        "divergences": int(np.sum([f.diagnostics.get("divergences", 0) for f in fits])),
        "replicates_failed": [f.data.replicate for f in fits if not f.gate_passed],
    }
    d["failures"] = [f"replicate {r} failed the gate" for r in d["replicates_failed"]]
    d["bfmi_min"] = float(np.nanmin([f.diagnostics.get("bfmi_min", math.nan) for f in fits]))
    return FitResult(primary.model, primary.prior, idata, d, not d["failures"], primary.data, primary.ctx)


def reweight_posterior(post, model: str, base: PriorSpec, target: PriorSpec, seed: int):
    """Importance-resample posterior draws fitted under ``base`` to prior ``target``.

    Only the (mean) log HR has a prior that differs, so the weight of a draw
    is N(b; target) / N(b; base). Weights are Pareto-smoothed (PSIS) and the
    draws resampled (systematic resampling) to an equally weighted set of the
    same shape. Returns ``(posterior, pareto_k)``; callers refit instead when
    k > 0.7 (Vehtari et al. 2024).
    """
    import arviz as az

    var = families.get(model).log_hr_var
    b = np.asarray(post[var].values).ravel()
    lw = target.logpdf(b) - base.logpdf(b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw_s, k = az.psislw(lw - lw.max())
    w = np.exp(lw_s - lw_s.max())
    w /= w.sum()
    rng = np.random.default_rng(seed)
    u = (rng.uniform() + np.arange(b.size)) / b.size
    idx = np.minimum(np.searchsorted(np.cumsum(w), u), b.size - 1)
    rng.shuffle(idx)  # systematic resampling is sorted; shuffle so chains stay exchangeable
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    out = post.copy()
    for name, da in post.data_vars.items():
        v = np.asarray(da.values)
        flat = v.reshape(nc * nd, *v.shape[2:])[idx]
        out[name] = (da.dims, flat.reshape(v.shape))
    return out, float(k)


_POOL_REPORT = ("hr", "p_hr_lt_1")


def _pool_rows(single: FitResult, pooled: FitResult, spec: RunSpec) -> tuple[list[dict], list[dict], dict]:
    """Pooled estimand rows, their width ratios, and the few rows for results.csv."""
    all_rows = _result_rows(pooled, spec)
    single_rows = {r["quantity"]: r for r in _result_rows(single, spec)}
    ratios = {}
    for r in all_rows:
        s = single_rows.get(r["quantity"])
        if s is None or not math.isfinite(r["lower"]) or not math.isfinite(s["lower"]):
            continue
        if r["quantity"] == "hr" or r["quantity"].startswith("hr_"):
            # HR intervals compared on the log scale, where they are symmetric
            w_p = math.log(r["upper"]) - math.log(r["lower"])
            w_s = math.log(s["upper"]) - math.log(s["lower"])
        else:
            w_p, w_s = r["upper"] - r["lower"], s["upper"] - s["lower"]
        ratios[r["quantity"]] = w_p / w_s if w_s > 0 else math.nan
    flag = _flag(pooled)
    h = f"{spec.rmst_horizons[-1]:g}"
    mt = f"{spec.milestones[-1]:g}"
    pick = {"hr", "p_hr_lt_1", f"rmst_diff_{h}", f"surv_diff_{mt}"}
    short = []
    for r in all_rows:
        if r["quantity"] in pick:
            short.append({**r, "quantity": f"pooled_{r['quantity']}", "flag": flag})
    for q in ("hr", f"rmst_diff_{h}"):
        if q in ratios:
            short.append({"model": pooled.model, "prior": pooled.prior.name,
                          "quantity": f"pooled_{q}_width_ratio", "estimate": ratios[q],
                          "lower": math.nan, "upper": math.nan, "flag": flag})
    return all_rows, short, ratios


# --------------------------------------------------------------------------- grid


def _resolve_pool_source(pool_replicates, ipd_reps, trial, spec: RunSpec, fast: bool, ipd_path: Path):
    """Replicate data sets to pool over (``[]`` if pooling is off) and their file hash."""
    if pool_replicates is None:
        pool_replicates = spec.pool_replicates and len(ipd_reps) > 1
    if pool_replicates is False or pool_replicates == 0:
        return [], None
    src = ipd_path
    if isinstance(pool_replicates, (str, Path)):
        src = Path(pool_replicates)
        if not src.exists():
            raise InputError("--pool-replicates", f"replicates file not found: {src}")
        reps = _load(src, trial)
    else:
        reps = ipd_reps
    k = spec.fast_replicates if fast else spec.replicates
    if isinstance(pool_replicates, int) and not isinstance(pool_replicates, bool):
        k = pool_replicates
    reps = reps[:k]
    return (reps, file_digest(src)) if len(reps) > 1 else ([], None)


def _load(path: Path, trial) -> list[SurvivalData]:
    if trial is not None:
        from .data import load_for_trial

        return load_for_trial(path, trial)
    return load_ipd(path)


def _trial_of(spec: RunSpec):
    if spec.trial is None or not Path(spec.trial).exists():
        return None
    from .trial import load_trial

    return load_trial(spec.trial)


def _write_table(path: Path, df) -> str:
    return df.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def fit_grid(
    spec: RunSpec,
    ipd_path: str | Path,
    out_root: str | Path,
    *,
    fast: bool = False,
    force: bool = False,
    pool_replicates: bool | int | str | Path | None = None,
    progress: Callable | None = None,
    strict: bool = False,
) -> GridResult:
    """Fit every model x prior of ``spec`` to the IPD and write all outputs.

    Parameters
    ----------
    spec : RunSpec
        From :func:`load_spec`.
    ipd_path : path-like
        IPD CSV (``time,event,arm``); with a ``replicate`` column, replicate 1
        is the primary data set and the others are available for pooling.
    out_root : path-like
        Writes ``models/<model>__<prior>/{posterior.nc,manifest.json}`` and
        ``reports/{results,diagnostics,loo_compare,tipping_point}.csv`` and
        ``reports/fit_manifest.json``; when pooling also
        ``models/<model>__<prior>/{pooled.nc,pooled_manifest.json}``,
        ``reports/results_pooled.csv`` (all estimands, pooled) and
        ``reports/pooling.csv`` (interval-width ratios pooled / single), and
        ``pooled_hr``, ``pooled_p_hr_lt_1``, ``pooled_rmst_diff_<h>``,
        ``pooled_surv_diff_<t>``, ``pooled_hr_width_ratio`` and
        ``pooled_rmst_diff_<h>_width_ratio`` rows in ``results.csv``.
        Pooling fits every replicate under the reference prior (same
        compiled model, new data) and obtains the other priors by
        importance resampling of those draws, refitting any replicate whose
        Pareto k exceeds 0.7.
    fast : bool
        Use the ``[fast]`` profile (few draws, lower ESS bar, fewer replicates).
    force : bool
        Refit even when a cached fit matches.
    pool_replicates : None, bool, int or path
        None: pool if the spec says so and the IPD has replicates. A path:
        pool over the replicates in that CSV. An int: pool over that many.
    progress : callable, optional
        ``progress(done, total, label, seconds, ok, cached=False)`` after each fit.
    strict : bool
        Raise :class:`FitFailedError` (after writing everything) if any fit
        fails the gate.

    Returns
    -------
    GridResult
    """
    import pandas as pd

    out_root = Path(out_root)
    ipd_path = Path(ipd_path)
    trial = _trial_of(spec)
    reps = _load(ipd_path, trial)
    data = reps[0]
    data_hash = file_digest(ipd_path)
    gate = spec.gate_for(fast)
    profile = "fast" if fast else "full"
    pool_data, pool_hash = _resolve_pool_source(pool_replicates, reps, trial, spec, fast, ipd_path)
    pool_settings = spec.fast_sampler if fast else spec.pool_sampler
    n_fits = len(spec.models) * len(spec.priors)
    total = n_fits * (2 if pool_data else 1)
    done = 0

    def tick(label, secs, ok, cached=False):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label, secs, ok, cached)

    def fit_cached(model, pname, prior, d, folder, name="posterior.nc", s=None, g=gate, extra=None,
                   loo=True):
        s = s or spec.settings(fast, model)
        seed = derive_seed(spec.seed, model, pname, d.replicate or 0)
        key = _fit_key(model, d, spec.cuts, spec.baseline, prior, s, g, seed)
        if not force:
            hit = _load_cached(folder, key, d, name)
            if hit is not None:
                hit.prior = prior
                return hit
        fit = fit_one(model, d, prior, cuts=spec.cuts, baseline=spec.baseline, settings=s, gate=g,
                      seed=seed, loo=loo)
        man = _manifest(fit, key=key, seed=seed, settings=s, gate=g, spec=spec, data_hash=data_hash,
                        profile=profile, extra=extra)
        _write_fit(fit, folder, man, name)
        return fit

    pool_gate = spec.pool_gate if not fast else gate

    def pool_cached(model, pname, prior, primary, folder):
        """Fit every replicate (same compiled model), mix the draws; cached as pooled.nc."""
        seeds = [derive_seed(spec.seed, model, pname, "replicate", d.replicate or i + 1)
                 for i, d in enumerate(pool_data)]
        keys = [_fit_key(model, d, spec.cuts, spec.baseline, prior, pool_settings, pool_gate, sd)
                for d, sd in zip(pool_data, seeds)]
        key = _sha(json.dumps(keys))
        if not force:
            hit = _load_cached(folder, key, primary.data, "pooled.nc")
            if hit is not None:
                hit.prior = prior
                return hit
        members = [
            fit_one(model, d, prior, cuts=spec.cuts, baseline=spec.baseline, settings=pool_settings,
                    gate=pool_gate, seed=sd, loo=False, pymc_fallback=False)
            for d, sd in zip(pool_data, seeds)
        ]
        pf = pool_fits(members, primary)
        man = _manifest(pf, key=key, seed=seeds, settings=pool_settings, gate=pool_gate, spec=spec,
                        data_hash=pool_hash, profile=profile,
                        extra={"replicates": [d.replicate for d in pool_data],
                               "members": [{"replicate": m.data.replicate, "gate_passed": m.gate_passed,
                                            **{k: m.diagnostics.get(k) for k in
                                               ("rhat_max", "ess_bulk_min", "ess_tail_min",
                                                "divergences", "attempts")}}
                                           for m in members]})
        _write_fit(pf, folder, man, "pooled.nc")
        return pf

    def pool_reweighted(model, pname, prior, base_pf, primary, folder):
        """Pooled posterior under ``prior`` from the base prior's replicate fits.

        Each replicate's draws are importance-resampled to the new prior
        (:func:`reweight_posterior`); a replicate whose Pareto k exceeds 0.7 is
        refitted under the new prior instead (same compiled model). This makes
        pooling cost one set of replicate fits per model, not one per prior.
        """
        key = _sha(json.dumps([base_pf.manifest.get("cache_key"), prior.mu, prior.sigma, "is"]))
        if not force:
            hit = _load_cached(folder, key, primary.data, "pooled.nc")
            if hit is not None:
                hit.prior = prior
                return hit
        import arviz as az
        import xarray as xr

        post = base_pf.idata.posterior
        per = post.sizes["chain"] // len(pool_data)
        parts, ks, refits = [], [], []
        for r, d in enumerate(pool_data):
            chunk = post.isel(chain=slice(r * per, (r + 1) * per))
            sd = derive_seed(spec.seed, model, pname, "replicate", d.replicate or r + 1)
            new, k = reweight_posterior(chunk, model, base_pf.prior, prior, sd)
            if k > 0.7:
                m = fit_one(model, d, prior, cuts=spec.cuts, baseline=spec.baseline,
                            settings=pool_settings, gate=pool_gate, seed=sd, loo=False,
                            pymc_fallback=False)
                mp = m.idata.posterior
                idx = np.round(np.linspace(0, mp.sizes["draw"] - 1, post.sizes["draw"])).astype(int)
                new = mp.isel(draw=idx).assign_coords(chain=chunk.chain, draw=chunk.draw)
                refits.append(m)
            parts.append(new)
            ks.append(k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pooled_post = xr.concat(parts, dim="chain", combine_attrs="override")
        pooled_post.attrs.update(prior=prior.name, prior_mu=float(prior.mu), prior_sigma=float(prior.sigma))
        idata = az.InferenceData(posterior=pooled_post, sample_stats=base_pf.idata.sample_stats,
                                 constant_data=base_pf.idata.constant_data)
        d = dict(base_pf.diagnostics)
        d.update(is_pareto_k=ks, refitted_replicates=[m.data.replicate for m in refits])
        fails = list(d.get("failures") or [])
        fails += [f"replicate {m.data.replicate} (refit) failed the gate" for m in refits if not m.gate_passed]
        d["failures"] = fails
        pf = FitResult(model, prior, idata, d, not fails, primary.data, primary.ctx)
        man = _manifest(pf, key=key, seed=None, settings=pool_settings, gate=pool_gate, spec=spec,
                        data_hash=pool_hash, profile=profile,
                        extra={"pooling": "importance resampling from the base prior's replicate fits",
                               "base_prior": base_pf.prior.name})
        _write_fit(pf, folder, man, "pooled.nc")
        return pf

    fits: dict[tuple[str, str], FitResult] = {}
    for model in spec.models:
        for pname, prior in spec.priors.items():
            t0 = time.perf_counter()
            fit = fit_cached(model, pname, prior, data, out_root / "models" / f"{model}__{pname}")
            fits[(model, pname)] = fit
            tick(f"{model}/{pname}", time.perf_counter() - t0, fit.gate_passed, fit.cached)

    # ------------------------------------------------------------ pooling
    pooled: dict[tuple[str, str], FitResult] = {}
    pool_rows, pool_short, pool_ratio_rows = [], [], []
    base_name = "reference" if "reference" in spec.priors else next(iter(spec.priors), None)
    for model in spec.models if pool_data else ():
        order = [base_name] + [p for p in spec.priors if p != base_name]
        base_pf = None
        for pname in order:
            prior = spec.priors[pname]
            t0 = time.perf_counter()
            folder = out_root / "models" / f"{model}__{pname}"
            if base_pf is None:
                pf = base_pf = pool_cached(model, pname, prior, fits[(model, pname)], folder)
            else:
                pf = pool_reweighted(model, pname, prior, base_pf, fits[(model, pname)], folder)
            pooled[(model, pname)] = pf
            all_rows, short, ratios = _pool_rows(fits[(model, pname)], pf, spec)
            pool_rows += all_rows
            pool_short += short
            for q, r in ratios.items():
                pool_ratio_rows.append({"model": model, "prior": pname, "quantity": q, "width_ratio": r,
                                        "replicates": len(pool_data), "gate_passed": pf.gate_passed})
            tick(f"{model}/{pname} pooled x{len(pool_data)}", time.perf_counter() - t0, pf.gate_passed,
                 pf.cached)

    # ------------------------------------------------------------ tables
    rows = []
    for fit in fits.values():
        rows += _result_rows(fit, spec)
    rows += pool_short
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    diag_df = pd.DataFrame([_diag_row(f) for f in fits.values()])
    loo_df = _loo_table(fits, spec)
    tip_df = _tipping_table(fits, spec, data, trial, fit_cached, out_root)

    reports = out_root / "reports"
    files = {
        reports / "results.csv": _write_table(reports / "results.csv", results),
        reports / "diagnostics.csv": _write_table(reports / "diagnostics.csv", diag_df),
        reports / "loo_compare.csv": _write_table(reports / "loo_compare.csv", loo_df),
        reports / "tipping_point.csv": _write_table(reports / "tipping_point.csv", tip_df),
    }
    pooling_df = None
    if pool_data:
        pooling_df = pd.DataFrame(pool_ratio_rows)
        files[reports / "results_pooled.csv"] = _write_table(
            reports / "results_pooled.csv", pd.DataFrame(pool_rows, columns=RESULT_COLUMNS))
        files[reports / "pooling.csv"] = _write_table(reports / "pooling.csv", pooling_df)
    grid_manifest = {
        "config": _display_path(spec.path) if spec.path else None,
        "config_hash": spec.config_hash(),
        "ipd": _display_path(ipd_path),
        "data_hash": data_hash,
        "profile": profile,
        "seed": spec.seed,
        "packages": environment_info(),
        "code_hash": code_hash(),
        "fits": {f"{m}__{p}": {"gate_passed": f.gate_passed, "cached": f.cached} for (m, p), f in fits.items()},
        "pooled": {f"{m}__{p}": {"gate_passed": f.gate_passed, "replicates": f.diagnostics.get("replicates")}
                   for (m, p), f in pooled.items()},
        "gate_passed": all(f.gate_passed for f in fits.values()) and all(f.gate_passed for f in pooled.values()),
    }
    files[reports / "fit_manifest.json"] = json.dumps(_jsonable(grid_manifest), indent=2, sort_keys=True) + "\n"
    write_many_atomic(files)

    grid = GridResult(fits, results, diag_df, loo_df, tip_df, pooling_df, pooled, out_root, spec)
    if strict and grid.failed:
        raise FitFailedError(
            f"{len(grid.failed)} fit(s) failed the diagnostic gate: "
            + ", ".join(f"{m}/{p}" for m, p in grid.failed)
        )
    return grid


def _tipping_table(fits, spec: RunSpec, data, trial, fit_cached, out_root: Path):
    """How sceptical before P(HR < 1) < threshold: the smallest sigma of a N(0, sigma) prior.

    Rows (``method``): ``conjugate`` -- closed form from the published HR's CI
    and from the Cox fit to the IPD; per model, ``normal`` -- closed form from
    a normal approximation of the fitted likelihood, ``importance`` --
    importance reweighting of the reference fit's draws (PSIS k reported;
    P(HR < 1) near 0.95 rests on the few draws near HR = 1, so this is only a
    starting value), and ``refit`` -- the model refitted at those sigmas and
    at a corrected sigma (``... (corrected sigma)``: the normal-approximation
    curve shifted to pass through the refits): the refit closest to the
    threshold is the model-based tipping point. ``mcse`` is the Monte Carlo
    SE of a refit's P(HR < 1) (about 0.005-0.01): P changes slowly with sigma,
    so the model-based tipping sigma is only determined to about +-0.02.
    """
    import pandas as pd

    thr = spec.tipping_threshold
    rows = []

    def add(method, model, source, sigma, p, k=math.nan, note="", mcse=math.nan):
        rows.append({"method": method, "model": model, "source": source, "sigma": sigma,
                     "prior_p_hr_lt_mcid": _prob_mcid(sigma, spec.mcid_hr), "p_hr_lt_1": p,
                     "mcse": mcse, "pareto_k": k, "note": note})

    if trial is not None and trial.reported_hr is not None and trial.reported_hr.lower and trial.reported_hr.upper:
        r = trial.reported_hr
        y, se = priors.normal_likelihood_from_ci(r.estimate, r.lower, r.upper)
        s = priors.tipping_point_conjugate(y, se, thr)
        add("conjugate", "normal", "published HR", s, thr if math.isfinite(s) else math.nan)
    try:
        y, se = estimands.cox_likelihood(data)
        s = priors.tipping_point_conjugate(y, se, thr)
        add("conjugate", "normal", "Cox on IPD", s, thr if math.isfinite(s) else math.nan)
    except Exception as ex:  # lifelines convergence issues should not sink the grid
        add("conjugate", "normal", "Cox on IPD", math.nan, math.nan, note=f"failed: {type(ex).__name__}")
    for model in spec.models:
        src = ("reference" if (model, "reference") in fits
               else next((p for (m, p) in fits if m == model), None))
        if src is None:
            continue
        fit = fits[(model, src)]
        res = tipping_point_is(fit, thr)
        add("normal", model, f"{src} fit", res["sigma_normal"],
            thr if math.isfinite(res["sigma_normal"]) else math.nan,
            note="normal approximation of the fitted likelihood")
        k = res["pareto_k"]
        add("importance", model, f"{src} fit", res["sigma"], res["p_hr_lt_1"], k,
            note="" if not k > 0.7 else "Pareto k > 0.7: reweighting unreliable, see refit")
        # Confirm by refitting at each candidate tipping prior (same compiled
        # model, new prior data), then correct once and refit there: the
        # refits, not the approximations, are the model's answer. Refit
        # P(HR < 1) is a Monte Carlo estimate (SE ~0.005 near 0.95), too noisy
        # for a secant between two nearby sigmas, so the correction keeps the
        # shape of the normal-approximation curve z(sigma) = Phi^-1 P(HR < 1)
        # and only shifts its level by the mean refit offset.
        from scipy import stats

        y, se = likelihood_from_fit(fit)
        offsets = []

        def refit_at(sig, which, model=model, offsets=offsets, y=y, se=se):
            tp = PriorSpec(f"tipping_{which}", 0.0, float(f"{sig:.6g}"), "tipping-point sceptical prior")
            refit = fit_cached(model, tp.name, tp, data, out_root / "models" / f"{model}__{tp.name}")
            p = float(np.mean(estimands.hr_draws(refit) < 1.0))
            ess = refit.diagnostics.get("ess_bulk_min") or math.nan
            add("refit", model, f"N(0, {tp.sigma:.4g}) fit ({which} sigma)", tp.sigma, p,
                note="" if refit.gate_passed else "refit failed the gate",
                mcse=math.sqrt(p * (1 - p) / ess) if ess > 0 else math.nan)
            if 0 < p < 1 and math.isfinite(se):
                p_norm = priors.conjugate_posterior(tp, y, se).prob_hr_lt(1.0)
                offsets.append(float(stats.norm.ppf(p) - stats.norm.ppf(p_norm)))

        done_sigmas = set()
        for which, sig in (("normal", res["sigma_normal"]), ("importance", res["sigma"])):
            if math.isfinite(sig) and f"{sig:.6g}" not in done_sigmas:
                done_sigmas.add(f"{sig:.6g}")
                refit_at(sig, which)
        if offsets:
            target = float(stats.norm.cdf(stats.norm.ppf(thr) - np.mean(offsets)))
            sig = priors.tipping_point_conjugate(y, se, target) if 0.5 < target < 1 else math.inf
            if math.isfinite(sig):
                refit_at(sig, "corrected")
    return pd.DataFrame(rows, columns=["method", "model", "source", "sigma", "prior_p_hr_lt_mcid",
                                       "p_hr_lt_1", "mcse", "pareto_k", "note"])


def load_grid(out_root: str | Path, spec: RunSpec) -> GridResult:
    """Reload the fits and tables written by :func:`fit_grid` (for reporting)."""
    import pandas as pd

    out_root = Path(out_root)
    fits, pooled = {}, {}
    for model in spec.models:
        for pname, prior in spec.priors.items():
            folder = out_root / "models" / f"{model}__{pname}"
            pp = folder / "posterior.nc"
            if not pp.exists():
                raise InputError("--output", f"no fit for {model}/{pname} under {out_root} (run `kmbayes fit`)")
            fit = read_fit(pp)
            fit.prior = prior
            fits[(model, pname)] = fit
            if (folder / "pooled.nc").exists():
                pf = read_fit(folder / "pooled.nc", data=fit.data)
                pf.prior = prior
                pooled[(model, pname)] = pf
    reports = out_root / "reports"

    def _csv(name):
        p = reports / name
        return pd.read_csv(p) if p.exists() else None

    results = _csv("results.csv")
    return GridResult(fits, results, _csv("diagnostics.csv"), _csv("loo_compare.csv"),
                      _csv("tipping_point.csv"), _csv("pooling.csv"), pooled, out_root, spec)
