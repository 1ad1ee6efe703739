"""The fit store: cache keys, manifests, and verified reads and writes of fits.

A fit lives in ``models/<model>__<prior>/`` as ``posterior.nc`` (ArviZ 1.x
DataTree in netCDF: draws as compressed float32, a few sampler statistics,
the data and cut points; the per-patient log-likelihood is recomputed from
draws and data when read) plus ``manifest.json`` (seed, versions, commit,
config hash, data hash, sampler attempts, diagnostics).

A cached fit is served only when all of these hold:

* the manifest's ``cache_key`` equals the key of what would be fitted now
  (data, model, cut points, baseline and prior constants, sampler
  settings, gate, seed, package versions and fitting source);
* the SHA-256 of ``posterior.nc`` equals the manifest's ``posterior_sha256``
  (a crash between the two writes, or a file copied from another fit, fails
  this);
* the file's own ``cache_key`` attribute equals it too.

The gate verdict is recomputed from the diagnostics stored inside the
verified file and the gate in force, never read from the manifest's flag.
Anything else is refitted.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np

from . import diagnostics as diag_mod
from . import families
from .data import SurvivalData
from .errors import InputError
from .fitting import FitResult, log_likelihood_dataset, make_tree
from .io import write_many_atomic
from .priors import PriorSpec
from .provenance import code_hash, display_path, environment_info, file_sha, jsonable, sha


def manifest_name(name: str) -> str:
    return "manifest.json" if name == "posterior.nc" else name.replace(".nc", "_manifest.json")


def fit_key(model, data, cuts, baseline, prior, settings, gate, seed) -> str:
    """Cache key of a fit: everything that changes its draws."""
    env = environment_info()
    doc = {
        "model": model,
        "data": data.digest(),
        "cuts": [str(c) for c in cuts] if families.get(model).uses_cuts else None,
        "baseline": dataclasses.asdict(baseline),
        # every prior constant the family reads (the cure model also has a cure-effect prior)
        "prior": {k: float(v) for k, v in families.get(model).prior_values(prior).items()},
        "sampler": dataclasses.asdict(settings),
        "gate": gate.as_dict(),
        "seed": seed,
        "code": code_hash(),
        "versions": {k: v for k, v in env.items() if k != "git_commit"},
    }
    return sha(json.dumps(doc, sort_keys=True))


def manifest(fit: FitResult, *, key, seed, settings, gate, spec, data_hash, profile, extra=None) -> dict:
    """The manifest of a fit (written next to its posterior)."""
    m = {
        "model": fit.model,
        "prior": fit.prior.name,
        "prior_mu": fit.prior.mu,
        "prior_sigma": fit.prior.sigma,
        "prior_description": fit.prior.description,
        "seed": seed,
        "cache_key": key,
        "config_hash": spec.config_hash() if spec else None,
        "config": display_path(spec.path) if spec and spec.path else None,
        "trial": display_path(spec.trial) if spec and spec.trial else None,
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
    }
    if extra:
        m.update(extra)
    return m


def _encoding(tree) -> dict:
    enc = {}
    for node in tree.subtree:
        if node.path == "/" or node.name == "log_likelihood":
            continue
        enc[node.path] = {v: {"zlib": True, "complevel": 4} for v in node.data_vars
                          if node[v].dtype.kind in "fiub"}
    return enc


def write_fit(fit: FitResult, folder: Path, man: dict, name: str = "posterior.nc") -> None:
    """Write ``posterior.nc`` and its manifest, both or neither (see :func:`read_fit`)."""
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    diag = {k: v for k, v in fit.diagnostics.items() if k != "attempt_log"}
    groups = {g: fit.idata[g].to_dataset() for g in fit.idata.children if g != "log_likelihood"}
    groups["posterior"].attrs.update(cache_key=man["cache_key"],
                                     kmbayes_diagnostics=json.dumps(jsonable(diag), sort_keys=True))
    tree = make_tree(**groups)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as td:
        tmp = Path(td) / name
        tree.to_netcdf(str(tmp), engine="netcdf4", encoding=_encoding(tree))
        blob = tmp.read_bytes()
    man = dict(man, posterior_sha256=sha(blob))
    write_many_atomic({folder / name: blob,
                       folder / manifest_name(name): json.dumps(jsonable(man), indent=2, sort_keys=True) + "\n"})
    fit.manifest = man
    fit.path = folder / name


def _data_from_tree(cd, attrs) -> SurvivalData:
    rep = int(attrs.get("replicate", -1))
    return SurvivalData(
        np.asarray(cd["time"].values, float), np.asarray(cd["event"].values),
        np.asarray(cd["arm"].values), (str(attrs["reference_arm"]), str(attrs["treatment_arm"])),
        str(attrs.get("time_unit", "months")), None if rep < 0 else rep,
    )


def read_fit(path: Path, manifest: dict | None = None, data: SurvivalData | None = None,
             gate=None) -> FitResult:
    """Load a fit written by :func:`write_fit`; the per-patient log-likelihood is recomputed.

    The gate verdict comes from the diagnostics stored in the file checked
    against ``gate`` (default: the gate recorded in the file's manifest).
    """
    import xarray as xr

    path = Path(path)
    if manifest is None:
        mp = path.parent / manifest_name(path.name)
        manifest = json.loads(mp.read_text()) if mp.exists() else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with xr.open_datatree(str(path), engine="netcdf4") as dt:
            tree = dt.load()
    post = tree["posterior"].to_dataset()
    attrs = dict(post.attrs)
    prior = PriorSpec(str(attrs["prior"]), float(attrs["prior_mu"]), float(attrs["prior_sigma"]),
                      str(manifest.get("prior_description", "")))
    cd = tree["constant_data"].to_dataset()
    cuts = tuple(float(c) for c in np.asarray(cd["cuts"].values))
    ctx = {"t_ref": float(cd["t_ref"].values), "cuts": cuts}
    if data is None:
        data = _data_from_tree(cd, attrs)
    diag = json.loads(attrs.get("kmbayes_diagnostics", "{}"))
    groups = {g: tree[g].to_dataset() for g in tree.children}
    if data.n == cd.sizes.get("patient", -1) and "elpd_loo" in diag:
        groups["log_likelihood"] = log_likelihood_dataset(str(attrs["model"]), post, data, ctx)
    if gate is None:
        gate = diag_mod.Gate(**manifest["gate"]) if isinstance(manifest.get("gate"), dict) else diag_mod.Gate()
    fails = diag_mod.gate_failures(diag, gate) + [f for f in diag.get("failures", [])
                                                  if f.startswith("replicate")]
    diag["failures"] = fails
    return FitResult(str(attrs["model"]), prior, make_tree(**groups), diag, not fails,
                     data, ctx, manifest, True, path)


def _verified_manifest(folder: Path, key: str, name: str = "posterior.nc") -> dict | None:
    """The manifest in ``folder`` if it has cache key ``key`` and its file's SHA-256 matches."""
    try:
        man = json.loads((folder / manifest_name(name)).read_text())
        ok = (isinstance(man, dict) and man.get("cache_key") == key
              and man.get("posterior_sha256") == file_sha(folder / name))
        return man if ok else None
    except (OSError, ValueError):
        return None


def load_verified(folder: Path, key: str, data: SurvivalData, name: str = "posterior.nc",
                  gate=None) -> FitResult | None:
    """The cached fit in ``folder`` if it is verifiably the fit with cache key ``key``, else None."""
    man = _verified_manifest(folder, key, name)
    if man is None:
        return None
    try:
        fit = read_fit(folder / name, man, data, gate)
        if fit.idata["posterior"].attrs.get("cache_key") != key:
            return None
        return fit
    except Exception:  # a corrupt cache entry is refitted, never trusted
        return None


def read_stored(folder: Path, name: str = "posterior.nc", data=None) -> FitResult:
    """A stored fit whose file matches its manifest (for reports); InputError otherwise."""
    mp, pp = folder / manifest_name(name), folder / name
    if not pp.is_file() or not mp.is_file():
        raise InputError("--output", f"no fit in {display_path(folder)} (run `kmbayes fit`)")
    try:
        man = json.loads(mp.read_text())
        ok = isinstance(man, dict) and man.get("posterior_sha256") == file_sha(pp)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise InputError("--output", f"{display_path(pp)} does not match its manifest (refit with `kmbayes fit`)")
    try:
        fit = read_fit(pp, man, data)
    except Exception as ex:
        raise InputError("--output", f"{display_path(pp)} is unreadable ({type(ex).__name__}); refit") from None
    # The file carries its own cache key: a manifest edited by hand (or from
    # another fit with a recomputed hash) disagrees with it.
    if fit.idata["posterior"].attrs.get("cache_key") != man.get("cache_key"):
        raise InputError("--output", f"{display_path(pp)} does not match its manifest's cache key; refit")
    return fit



def verified_on_disk(folder: Path, key: str, name: str = "posterior.nc") -> bool:
    """True if ``folder`` holds the fit with cache key ``key``, checked without loading it."""
    return _verified_manifest(folder, key, name) is not None


class LazyFits(dict):
    """``(model, prior) -> FitResult``, each read from the fit store on first access.

    For a grid served from the cache: nothing is loaded unless a figure or a
    table that needs the draws is actually drawn.
    """

    def __init__(self, folders: dict, priors: dict, name: str = "posterior.nc", data_of=None):
        super().__init__({k: None for k in folders})
        self._folders, self._priors, self._name, self._data_of = folders, priors, name, data_of

    def __getitem__(self, k):
        v = super().__getitem__(k)
        if v is None:
            data = self._data_of(k) if self._data_of else None
            v = read_stored(self._folders[k], self._name, data)
            v.prior = self._priors[k[1]]
            super().__setitem__(k, v)
        return v

    def get(self, k, default=None):
        return self[k] if k in self else default

    def values(self):
        return [self[k] for k in self]

    def items(self):
        return [(k, self[k]) for k in self]
