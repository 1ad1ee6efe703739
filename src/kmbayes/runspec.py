"""The run spec: which models, priors, cut points, sampler settings and gates a run uses.

A run spec is a TOML file (``configs/clocc.toml``). ``extends = "other.toml"``
layers a spec over another, so a sensitivity analysis is a literal config diff.
:func:`load_spec` validates everything and returns a frozen :class:`RunSpec`;
every problem raises :class:`~kmbayes.errors.InputError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import families, priors
from .diagnostics import Gate
from .errors import InputError, short
from .families import BaselinePrior
from .limits import LIMITS
from .priors import PriorSpec
from .provenance import REPO_ROOT, sha


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings of one profile (``[sampler]``, ``[fast]``, ``[pooling]``)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    target_accept: float = 0.9
    backend: str = "nutpie"
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
    #: the prior of the headline (``[priors] headline``; see :mod:`kmbayes.headline`)
    headline_prior: str | None = None
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
            "headline": self.headline_prior,
        }
        return sha(json.dumps(doc, sort_keys=True))

def _get(tbl: dict, key: str, fld: str, kind, default=None, *, lo=None, hi=None):
    if key not in tbl:
        if default is None:
            raise InputError(f"{fld}.{key}", "missing (required)")
        return default
    v = tbl[key]
    name = f"{fld}.{key}"
    if kind is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputError(name, f"expected an integer, got {short(v)}")
    elif kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(name, f"expected a number, got {short(v)}")
        v = float(v)
    elif kind is str:
        if not isinstance(v, str):
            raise InputError(name, f"expected a string, got {short(v)}")
        if len(v) > LIMITS["label_chars_max"]:
            raise InputError(name, f"longer than {LIMITS['label_chars_max']} characters")
    elif kind is bool:
        if not isinstance(v, bool):
            raise InputError(name, f"expected true or false, got {short(v)}")
    elif kind is list:
        if not isinstance(v, list):
            raise InputError(name, f"expected an array, got {short(v)}")
    if lo is not None and v < lo:
        raise InputError(name, f"must be >= {lo}, got {short(v)}")
    if hi is not None and v > hi:
        raise InputError(name, f"must be <= {hi:g} (documented limit), got {short(v)}")
    return v


# Every key a run spec may hold, per table: a typo (``draw = 100``) is an
# error naming it, never a silently ignored key that runs with the default.
_SAMPLER_KEYS = {"draws", "tune", "chains", "target_accept", "backend", "retry"}
_KEYS = {
    "": {"run", "models", "priors", "sampler", "fast", "pooling", "estimands", "gate", "tipping"},
    "run": {"name", "trial", "data", "seed", "replicates", "pool_replicates"},
    "models": {"ids", "cuts", "baseline"},
    "priors": {"ids", "mcid_hr", "tail", "custom", "headline"},
    "sampler": _SAMPLER_KEYS,
    "fast": _SAMPLER_KEYS | {"ess_min", "rhat_max", "replicates"},
    "pooling": _SAMPLER_KEYS | {"ess_min", "rhat_max"},
    "estimands": {"milestones", "rmst_horizons"},
    "gate": {"rhat_max", "ess_min", "divergences_max"},
    "tipping": {"threshold_prob"},
}
_CUSTOM_PRIOR_KEYS = {"mu", "sigma", "center_hr", "threshold_hr", "tail_prob", "description"}
#: prior ids become directory names (models/<model>__<prior>/): no separators, no dots
PRIOR_ID = re.compile(r"[A-Za-z0-9_]{1,40}")


def _unknown(keys, allowed, fld: str) -> None:
    bad = sorted(str(k) for k in keys if k not in allowed)
    if bad:
        where = f"{fld}.{bad[0]}" if fld else bad[0]
        raise InputError(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _check_keys(doc: dict) -> None:
    """Refuse unknown keys anywhere in a run spec (see ``_KEYS``)."""
    _unknown(doc, _KEYS[""], "")
    for tbl, allowed in _KEYS.items():
        if not tbl or not isinstance(doc.get(tbl), dict):
            continue
        sub = doc[tbl]
        if tbl == "sampler":
            # [sampler.<model>] subtables are checked in parse_spec (model ids)
            _unknown([k for k, v in sub.items() if not isinstance(v, dict)], allowed, tbl)
            for k, v in sub.items():
                if isinstance(v, dict):
                    _unknown(v, _SAMPLER_KEYS, f"sampler.{k}")
        else:
            _unknown(sub, allowed, tbl)
    customs = doc.get("priors", {}).get("custom", {}) if isinstance(doc.get("priors"), dict) else {}
    if isinstance(customs, dict):
        for pid, tbl in customs.items():
            if isinstance(tbl, dict):
                _unknown(tbl, _CUSTOM_PRIOR_KEYS, f"priors.custom.{pid}")


def _table(doc: dict, key: str) -> dict:
    v = doc.get(key, {})
    if not isinstance(v, dict):
        raise InputError(key, "expected a table")
    return v


def _resolve(p: str, base: Path, fld: str = "run.trial") -> Path:
    """A path from a config: relative to the config's directory if it exists there, else the repo root."""
    from .io import check_path_length

    check_path_length(p, fld)
    if not p.strip():
        raise InputError(fld, "empty path")
    q = Path(p)
    if q.is_absolute():
        return q
    for root in (base, REPO_ROOT):
        if (root / q).exists():
            return (root / q).resolve()
    return (REPO_ROOT / q).resolve()


def _sampler(tbl: dict, fld: str, default: SamplerSettings) -> SamplerSettings:
    s = SamplerSettings(
        draws=_get(tbl, "draws", fld, int, default.draws, lo=10, hi=LIMITS["draws_max"]),
        tune=_get(tbl, "tune", fld, int, default.tune, lo=10, hi=LIMITS["tune_max"]),
        chains=_get(tbl, "chains", fld, int, default.chains, lo=1, hi=LIMITS["chains_max"]),
        target_accept=_get(tbl, "target_accept", fld, float, default.target_accept, lo=0.5, hi=0.999),
        backend=_get(tbl, "backend", fld, str, default.backend),
        retry=_get(tbl, "retry", fld, bool, default.retry),
    )
    if s.chains * s.draws > LIMITS["draws_total_max"]:
        raise InputError(f"{fld}.draws", f"chains x draws = {s.chains * s.draws} is above the documented limit "
                         f"of {LIMITS['draws_total_max']}")
    if s.backend not in ("nutpie", "pymc"):
        raise InputError(f"{fld}.backend", f"must be 'nutpie' or 'pymc', got {s.backend!r}")
    return s


def _numbers(v, fld: str) -> tuple[float, ...]:
    if not isinstance(v, list) or not v:
        raise InputError(fld, f"expected a non-empty array of numbers, got {short(v)}")
    if len(v) > LIMITS["cuts_max"]:
        raise InputError(fld, f"{len(v)} entries, above the limit of {LIMITS['cuts_max']}")
    out = []
    for i, x in enumerate(v):
        if (isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0 or not math.isfinite(x)
                or x > LIMITS["time_max"]):
            raise InputError(f"{fld}[{i}]", f"expected a positive number up to {LIMITS['time_max']:g}, got {short(x)}")
        out.append(float(x))
    return tuple(out)


def _cuts(v) -> list:
    """Cut points: numbers (not strings or booleans), at most ``cuts_max``; ``inf`` only last."""
    if not isinstance(v, list):
        raise InputError("models.cuts", f"expected an array of numbers, got {short(v)}")
    if len(v) > LIMITS["cuts_max"]:
        raise InputError("models.cuts", f"{len(v)} cut points, above the limit of {LIMITS['cuts_max']}")
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
            raise InputError(f"models.cuts[{i}]", f"expected a number, got {short(x)}")
        if math.isinf(x) and not (i == len(v) - 1 and x > 0):
            raise InputError(f"models.cuts[{i}]", "only the last cut point may be inf")
        if not math.isinf(x) and abs(x) > LIMITS["time_max"]:
            raise InputError(f"models.cuts[{i}]", f"{short(x)} is beyond the limit of {LIMITS['time_max']:g}")
    return v


def _baseline(bt) -> BaselinePrior:
    """``[models.baseline]`` within the documented limits (extremes crashed the sampler)."""
    if not isinstance(bt, dict):
        raise InputError("models.baseline", "expected a table")
    unknown = set(bt) - {f.name for f in dataclasses.fields(BaselinePrior)}
    if unknown:
        raise InputError(f"models.baseline.{sorted(unknown)[0]}", "unknown key")
    vals = {}
    for k, v in bt.items():
        fld = f"models.baseline.{k}"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise InputError(fld, f"must be a positive number, got {short(v)}")
        lo, hi = ((LIMITS["baseline_sd_min"], LIMITS["time_max"]) if k == "time_ref"
                  else (LIMITS["baseline_sd_min"], LIMITS["baseline_sd_max"]))
        if not lo <= v <= hi:
            raise InputError(fld, f"must be in [{lo:g}, {hi:g}] (documented limit), got {short(v)}")
        vals[k] = float(v)
    return BaselinePrior(**vals)


def _check_prior_range(pid: str, ps: PriorSpec) -> None:
    """A prior within the documented limits (``sigma = 1e300`` overflowed)."""
    fld = f"priors.custom.{pid}" if pid not in priors.STANDARD_IDS else "priors"
    if not LIMITS["sigma_min"] <= ps.sigma <= LIMITS["sigma_max"]:
        raise InputError(f"{fld}.sigma" if fld != "priors" else f"priors.{pid}",
                         f"prior SD {ps.sigma:.3g} on the log HR is outside the documented "
                         f"limits [{LIMITS['sigma_min']:g}, {LIMITS['sigma_max']:g}]")
    if abs(ps.mu) > LIMITS["mu_abs_max"]:
        raise InputError(f"{fld}.mu" if fld != "priors" else f"priors.{pid}",
                         f"prior mean {ps.mu:.3g} on the log HR is beyond +-{LIMITS['mu_abs_max']:g}")


def parse_spec(doc: dict, base: Path | None = None, path: Path | None = None) -> RunSpec:
    """Validate a run-spec document (parsed TOML) -> :class:`RunSpec`."""
    base = base or REPO_ROOT
    _check_keys(doc)
    run = _table(doc, "run")
    name = _get(run, "name", "run", str, "run")
    trial = _resolve(_get(run, "trial", "run", str), base) if "trial" in run else None
    data = _resolve(_get(run, "data", "run", str), base, "run.data") if "data" in run else None
    seed = _get(run, "seed", "run", int, 20170, lo=0, hi=LIMITS["seed_max"])
    replicates = _get(run, "replicates", "run", int, 1, lo=1, hi=LIMITS["replicates_max"])
    pool = _get(run, "pool_replicates", "run", bool, replicates > 1)

    mt = _table(doc, "models")
    ids = _get(mt, "ids", "models", list, list(families.FAMILIES))
    if not ids:
        raise InputError("models.ids", "empty")
    if len(ids) > LIMITS["models_max"]:
        raise InputError("models.ids", f"{len(ids)} models, above the limit of {LIMITS['models_max']}")
    for m in ids:
        if not isinstance(m, str) or m not in families.FAMILIES:
            raise InputError("models.ids", f"unknown model {short(m)} (known: {', '.join(families.FAMILIES)})")
    if len(set(ids)) != len(ids):
        raise InputError("models.ids", "a model is listed twice")
    cuts = families.check_cuts(_cuts(_get(mt, "cuts", "models", list, list(families.DEFAULT_CUTS[:-1]))))
    baseline = _baseline(mt.get("baseline", {}))

    pt_ = _table(doc, "priors")
    pids = _get(pt_, "ids", "priors", list, list(priors.STANDARD_IDS))
    if not pids:
        raise InputError("priors.ids", "empty")
    if len(pids) > LIMITS["priors_max"]:
        raise InputError("priors.ids", f"{len(pids)} priors, above the limit of {LIMITS['priors_max']}")
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
            raise InputError("priors.ids", f"expected strings, got {short(pid)}")
        # An id names a directory (models/<model>__<id>/): "x/../../p" wrote
        # outside --output.
        if not PRIOR_ID.fullmatch(pid):
            raise InputError("priors.ids", f"prior id {short(pid)} must be 1-40 letters, digits or underscores")
    if len(set(pids)) != len(pids):
        raise InputError("priors.ids", "a prior is listed twice")
    for pid in customs:
        if not PRIOR_ID.fullmatch(str(pid)):
            raise InputError("priors.custom", f"prior id {short(pid)} must be 1-40 letters, digits or underscores")
    prior_specs = priors.prior_set(pids, mcid, tail, customs)
    for pid, ps in prior_specs.items():
        _check_prior_range(pid, ps)
    head = _get(pt_, "headline", "priors", str, "sceptical" if "sceptical" in pids else pids[0])
    if head not in prior_specs:
        raise InputError("priors.headline", f"{head!r} is not one of priors.ids")

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
        rhat_max=_get(gt, "rhat_max", "gate", float, 1.01, lo=1.0, hi=10.0),
        ess_min=_get(gt, "ess_min", "gate", float, 400.0, lo=0.0, hi=1e9),
        divergences_max=_get(gt, "divergences_max", "gate", int, 0, lo=0, hi=2**31 - 1),
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
    fast_reps = _get(ft, "replicates", "fast", int, min(3, replicates), lo=1, hi=LIMITS["replicates_max"])
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
        data=data, tipping_threshold=thr, headline_prior=head, path=path, raw=doc,
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
    Chains are limited to ``LIMITS["extends_depth_max"]`` files (1,200
    chained files exhausted the stack) and loops, also through symlinks,
    are refused.
    """
    from .io import read_toml

    chain: list[dict] = []
    seen_paths = set(seen)
    while True:
        doc = read_toml(path, what="run spec", max_bytes=LIMITS["spec_bytes_max"],
                        field="file" if not chain else "extends")
        chain.append(doc)
        parent = doc.pop("extends", None)
        if parent is None:
            break
        if not isinstance(parent, str) or not parent.strip():
            raise InputError("extends", f"expected a file name, got {short(parent)}")
        if len(chain) > LIMITS["extends_depth_max"]:
            raise InputError("extends", f"more than {LIMITS['extends_depth_max']} chained specs (documented limit)")
        try:
            seen_paths.add(path.resolve())
            ppath = (path.parent / parent).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            raise InputError("extends", f"cannot resolve {short(parent)} (symlink loop?)") from None
        if ppath in seen_paths:
            raise InputError("extends", f"circular extends via {short(ppath.name)}")
        path = ppath
    out: dict = {}
    for doc in reversed(chain):
        out = _merge(out, doc)
    return out


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


