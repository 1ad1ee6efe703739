"""The grid loop: fit every model x prior (and every replicate when pooling) and write the tables.

Each fit goes through the fit store (:mod:`kmbayes.fitstore`): a verified
cached fit is reused, anything else is sampled (:func:`kmbayes.fitting.fit_one`)
and written with its manifest. The tables (``results.csv``,
``diagnostics.csv``, ``loo_compare.csv``, ``tipping_point.csv``, and when
pooling ``results_pooled.csv`` and ``pooling.csv``) and the grid manifest
are written together, all or none.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import estimands, fitstore, headline, modelcheck, ppc
from .data import SurvivalData, file_digest, load_ipd
from .diagnostics import compare
from .errors import FitFailedError, InputError
from .fitting import FitResult, fit_one
from .io import write_many_atomic
from .pooling import pool_fits, width_ratios
from .provenance import (
    code_hash,
    derive_seed,
    display_path,
    environment_info,
    jsonable,
    outputs_verified,
    package_hash,
    sha,
)
from .runspec import RunSpec
from .tipping import tipping_table

RESULT_COLUMNS = ["model", "prior", "quantity", "estimate", "lower", "upper", "mcse", "flag"]
LOO_COLUMNS = ["prior", "model", "rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse"]


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
    ppc: Any = None
    anchors: Any = None
    ph_check: Any = None
    headline: Any = None

    #: set when the grid was served from the cache (its fits are not loaded to ask them)
    cached_failed: list | None = None
    grid_key: str | None = None

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(model, prior) of fits that failed the gate (primary and pooled)."""
        if self.cached_failed is not None:
            return list(self.cached_failed)
        out = [k for k, f in self.fits.items() if not f.gate_passed]
        out += [k for k, f in self.pooled.items() if not f.gate_passed and k not in out]
        return out

    @property
    def gate_passed(self) -> bool:
        return not self.failed


def flag(fit: FitResult) -> str:
    """The ``flag`` column of a fit's rows: empty, or why it failed the gate."""
    if fit.gate_passed:
        return ""
    fails = fit.diagnostics.get("failures") or ["diagnostic gate failed"]
    return "GATE FAILED: " + "; ".join(fails)


def result_rows(fit: FitResult, spec: RunSpec) -> list[dict]:
    rows = estimands.summarise(fit, spec.milestones, spec.rmst_horizons,
                               estimands.hr_thresholds(spec.mcid_hr))
    f = flag(fit)
    return [{"model": fit.model, "prior": fit.prior.name, **r, "flag": f} for r in rows]


def diag_row(fit: FitResult) -> dict:
    d = fit.diagnostics
    keys = ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "bfmi_min", "pareto_k_max",
            "elpd_loo", "p_loo", "sampler", "attempts")
    return {"model": fit.model, "prior": fit.prior.name, **{k: d.get(k) for k in keys},
            "gate_passed": bool(fit.gate_passed), "failures": "; ".join(d.get("failures") or []),
            "warnings": "; ".join(d.get("warnings") or [])}


def loo_table(fits: dict, spec: RunSpec):
    """PSIS-LOO comparison of the models under each prior (stacking weights)."""
    import pandas as pd

    rows = []
    for p in spec.priors:
        ids = {m: fits[(m, p)].idata for m in spec.models
               if (m, p) in fits and "log_likelihood" in fits[(m, p)].idata.children}
        if len(ids) == 1:
            m = next(iter(ids))
            d = fits[(m, p)].diagnostics
            rows.append({"prior": p, "model": m, "rank": 0, "elpd_loo": d.get("elpd_loo"),
                         "p_loo": d.get("p_loo"), "elpd_diff": 0.0, "weight": 1.0,
                         "se": d.get("se_elpd_loo"), "dse": 0.0})
        elif ids:
            for m, r in compare(ids).iterrows():
                rows.append({"prior": p, "model": m, "rank": int(r["rank"]), "elpd_loo": r["elpd"],
                             "p_loo": r["p"], "elpd_diff": r["elpd_diff"], "weight": r["weight"],
                             "se": r["se"], "dse": r["dse"]})
    return pd.DataFrame(rows, columns=LOO_COLUMNS)


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


def _pool_source(pool_replicates, reps, trial, spec: RunSpec, fast: bool, ipd_path: Path):
    """Replicate data sets to pool over (``[]`` if pooling is off) and their file hash."""
    if pool_replicates is None:
        pool_replicates = spec.pool_replicates and len(reps) > 1
    if pool_replicates is False or pool_replicates == 0:
        return [], None
    src = ipd_path
    if isinstance(pool_replicates, (str, Path)):
        src = Path(pool_replicates)
        if not src.exists():
            raise InputError("--pool-replicates", f"replicates file not found: {src}")
        reps = _load(src, trial)
    k = spec.fast_replicates if fast else spec.replicates
    if isinstance(pool_replicates, int) and not isinstance(pool_replicates, bool):
        k = pool_replicates
    reps = reps[:k]
    return (reps, file_digest(src)) if len(reps) > 1 else ([], None)


def csv_text(df) -> str:
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
    say: Callable[[str], None] | None = None,
    strict: bool = False,
) -> GridResult:
    """Fit every model x prior of ``spec`` to the IPD and write all outputs.

    Parameters
    ----------
    spec : RunSpec
        From :func:`kmbayes.runspec.load_spec`.
    ipd_path : path-like
        IPD CSV (``time,event,arm``); with a ``replicate`` column, replicate 1
        is the primary data set and the others are available for pooling.
    out_root : path-like
        Writes ``models/<model>__<prior>/{posterior.nc,manifest.json}``,
        ``reports/{results,diagnostics,loo_compare,tipping_point}.csv`` and
        ``reports/fit_manifest.json``; when pooling also ``pooled.nc`` (+
        manifest) per model x prior, ``reports/results_pooled.csv`` and
        ``reports/pooling.csv`` (interval-width ratios pooled / single), and
        ``pooled_*`` rows in ``results.csv``. Pooling refits every replicate
        under every prior (exact; no reweighting).
    fast : bool
        Use the ``[fast]`` profile (few draws, lower ESS bar, fewer replicates).
    force : bool
        Refit even when a verified cached fit matches.
    pool_replicates : None, bool, int or path
        None: pool if the spec says so and the IPD has replicates. A path:
        pool over the replicates in that CSV. An int: pool over that many.
    progress : callable, optional
        ``progress(done, total, label, seconds, ok, cached=False)`` after each fit.
    say : callable, optional
        ``say(message)`` at the start of each later phase (tipping point, LOO).
    strict : bool
        Raise :class:`FitFailedError` (after writing everything) if any fit
        fails the gate.
    """
    import pandas as pd

    out_root, ipd_path = Path(out_root), Path(ipd_path)
    say = say or (lambda msg: None)
    trial = _trial_of(spec)
    reps = _load(ipd_path, trial)
    data = reps[0]
    data_hash = file_digest(ipd_path)
    gate = spec.gate_for(fast)
    profile = "fast" if fast else "full"
    pool_data, pool_hash = _pool_source(pool_replicates, reps, trial, spec, fast, ipd_path)
    pool_settings = spec.fast_sampler if fast else spec.pool_sampler
    pool_gate = spec.pool_gate if not fast else gate
    total = len(spec.models) * len(spec.priors) * (2 if pool_data else 1)
    done = 0
    grid_key = sha(json.dumps({"config": spec.config_hash(), "data": data_hash, "pool": pool_hash,
                               "profile": profile, "source": package_hash(),
                               # the P(HR < MCID) rows follow the MCID, which custom priors ignore
                               "mcid": spec.mcid_hr,
                               "trial": file_digest(spec.trial) if trial is not None else None,
                               "versions": {k: v for k, v in environment_info().items()
                                            if k != "git_commit"}}, sort_keys=True))
    if not force:
        hit = _cached_grid(out_root, grid_key, spec, data)
        if hit is not None:
            say(f"all {total} fits and every table verified in the cache; nothing to refit")
            return hit

    def tick(label, secs, ok, cached=False):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label, secs, ok, cached)

    def fit_cached(model, pname, prior, d, folder, name="posterior.nc", s=None, g=gate, loo=True):
        s = s or spec.settings(fast, model)
        seed = derive_seed(spec.seed, model, pname, d.replicate or 0)
        key = fitstore.fit_key(model, d, spec.cuts, spec.baseline, prior, s, g, seed)
        if not force:
            hit = fitstore.load_verified(folder, key, d, name, g)
            if hit is not None:
                hit.prior = prior
                return hit
        fit = fit_one(model, d, prior, cuts=spec.cuts, baseline=spec.baseline, settings=s, gate=g,
                      seed=seed, loo=loo)
        man = fitstore.manifest(fit, key=key, seed=seed, settings=s, gate=g, spec=spec,
                                data_hash=data_hash, profile=profile)
        fitstore.write_fit(fit, folder, man, name)
        return fit

    def pooled_fit(model, pname, prior, primary, folder):
        """Every replicate fitted under ``prior`` (same compiled model), draws mixed."""
        seeds = [derive_seed(spec.seed, model, pname, "replicate", d.replicate or i + 1)
                 for i, d in enumerate(pool_data)]
        keys = [fitstore.fit_key(model, d, spec.cuts, spec.baseline, prior, pool_settings, pool_gate, sd)
                for d, sd in zip(pool_data, seeds)]
        key = sha(json.dumps(keys))
        if not force:
            hit = fitstore.load_verified(folder, key, primary.data, "pooled.nc", pool_gate)
            if hit is not None:
                hit.prior = prior
                return hit
        members = [fit_one(model, d, prior, cuts=spec.cuts, baseline=spec.baseline,
                           settings=pool_settings, gate=pool_gate, seed=sd, loo=False,
                           pymc_fallback=False)
                   for d, sd in zip(pool_data, seeds)]
        pf = pool_fits(members, primary)
        man = fitstore.manifest(
            pf, key=key, seed=seeds, settings=pool_settings, gate=pool_gate, spec=spec,
            data_hash=pool_hash, profile=profile,
            extra={"replicates": [d.replicate for d in pool_data],
                   "members": [{"replicate": m.data.replicate, "gate_passed": m.gate_passed,
                                **{k: m.diagnostics.get(k) for k in
                                   ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences",
                                    "attempts", "sampler")}} for m in members]})
        fitstore.write_fit(pf, folder, man, "pooled.nc")
        return pf

    fits: dict[tuple[str, str], FitResult] = {}
    for model in spec.models:
        for pname, prior in spec.priors.items():
            t0 = time.perf_counter()
            fit = fit_cached(model, pname, prior, data, out_root / "models" / f"{model}__{pname}")
            fits[(model, pname)] = fit
            tick(f"{model}/{pname}", time.perf_counter() - t0, fit.gate_passed, fit.cached)

    pooled: dict[tuple[str, str], FitResult] = {}
    pool_rows, pool_short, ratio_rows = [], [], []
    for model in spec.models if pool_data else ():
        for pname, prior in spec.priors.items():
            t0 = time.perf_counter()
            folder = out_root / "models" / f"{model}__{pname}"
            pf = pooled[(model, pname)] = pooled_fit(model, pname, prior, fits[(model, pname)], folder)
            rows = result_rows(pf, spec)
            pool_rows += rows
            ratios = width_ratios(result_rows(fits[(model, pname)], spec), rows)
            pool_short += _pooled_headline_rows(pf, rows, ratios, spec)
            ratio_rows += [{"model": model, "prior": pname, "quantity": q, "width_ratio": r,
                            "replicates": len(pool_data), "gate_passed": pf.gate_passed}
                           for q, r in ratios.items()]
            tick(f"{model}/{pname} pooled x{len(pool_data)}", time.perf_counter() - t0,
                 pf.gate_passed, pf.cached)

    say("tables: estimands, diagnostics and LOO comparison")
    rows = [r for fit in fits.values() for r in result_rows(fit, spec)] + pool_short
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    diag_df = pd.DataFrame([diag_row(f) for f in fits.values()])
    loo_df = loo_table(fits, spec)

    say("checks: posterior predictive check against the publication, Kaplan-Meier anchors, PH test")
    ppc_rows = modelcheck.ppc_rows(fits, trial, spec.seed) if trial is not None else []
    misfit = ppc.misfitting(ppc_rows)
    # A model that misses a published number is marked everywhere its rows appear.
    bad = [(m, p) in misfit for m, p in zip(results.model, results.prior)]
    results.loc[bad, "flag"] = ["; ".join(x for x in (f, "PPC MISFIT: misses a published number") if x)
                                for f in results.loc[bad, "flag"]]
    anchors_df = pd.DataFrame(modelcheck.anchor_rows(data, spec.milestones, spec.rmst_horizons, spec.seed))
    ph_df = pd.DataFrame(modelcheck.ph_rows(data, spec.cuts, trial), columns=modelcheck.PH_COLUMNS)
    cure_df = pd.DataFrame(modelcheck.cure_rows(spec, data, spec.seed), columns=modelcheck.CURE_COLUMNS)
    pooled_df = pd.DataFrame(pool_rows, columns=RESULT_COLUMNS) if pool_data else None
    head_df = pd.DataFrame(headline.apply(spec, fits, pooled, ppc_rows, results, pooled_df, trial, data),
                           columns=headline.COLUMNS)
    say("tipping point: refits of the headline model at the candidate sceptical priors")
    chosen = set(head_df.loc[head_df.role == "headline", "model"]) - {"", "cure"}
    if not chosen:  # a cure-model headline: the tipping point of the best eligible HR model instead
        cand = head_df[(head_df.role == "candidate") & (head_df.model != "cure")
                       & ~head_df.note.str.contains("excluded")]
        lp = loo_df[(loo_df.prior == headline.headline_prior(spec)) & loo_df.model.isin(cand.model)]
        chosen = set(lp.sort_values("elpd_loo", ascending=False).model[:1])
    tip_df = tipping_table(fits, spec, data, trial, fit_cached, out_root, refit_models=chosen)

    reports = out_root / "reports"
    files = {reports / "results.csv": csv_text(results),
             reports / "diagnostics.csv": csv_text(diag_df),
             reports / "loo_compare.csv": csv_text(loo_df),
             reports / "tipping_point.csv": csv_text(tip_df),
             reports / "anchors.csv": csv_text(anchors_df),
             reports / "ph_check.csv": csv_text(ph_df),
             reports / "headline.csv": csv_text(head_df)}
    if len(cure_df):
        files[reports / "cure_check.csv"] = csv_text(cure_df)
    if ppc_rows:
        files[reports / "ppc.csv"] = ppc.format_ppc_csv(ppc_rows)
    pooling_df = None
    if pool_data:
        pooling_df = pd.DataFrame(ratio_rows)
        files[reports / "results_pooled.csv"] = csv_text(pooled_df)
        files[reports / "pooling.csv"] = csv_text(pooling_df)
    grid_manifest = {
        "grid_key": grid_key,
        "config": display_path(spec.path) if spec.path else None,
        "config_hash": spec.config_hash(),
        "trial": display_path(spec.trial) if spec.trial else None,
        "trial_hash": file_digest(spec.trial) if spec.trial and Path(spec.trial).exists() else None,
        "ipd": display_path(ipd_path),
        "data_hash": data_hash,
        "profile": profile,
        "seed": spec.seed,
        "packages": environment_info(),
        "code_hash": code_hash(),
        "fits": {f"{m}__{p}": {"gate_passed": f.gate_passed, "cache_key": f.manifest.get("cache_key")}
                 for (m, p), f in fits.items()},
        "pooled": {f"{m}__{p}": {"gate_passed": f.gate_passed, "replicates": f.diagnostics.get("replicates"),
                                 "cache_key": f.manifest.get("cache_key")} for (m, p), f in pooled.items()},
        "gate_passed": all(f.gate_passed for f in fits.values()) and all(f.gate_passed for f in pooled.values()),
    }
    grid_manifest["tables"] = {str(p.relative_to(out_root)): sha(t.encode() if isinstance(t, str) else t)
                               for p, t in files.items()}
    files[reports / "fit_manifest.json"] = json.dumps(jsonable(grid_manifest), indent=2, sort_keys=True) + "\n"
    write_many_atomic(files)

    grid = GridResult(fits, results, diag_df, loo_df, tip_df, pooling_df, pooled, out_root, spec,
                      pd.DataFrame(ppc_rows), anchors_df, ph_df, head_df)
    grid.grid_key = grid_key
    if strict and grid.failed:
        raise FitFailedError(f"{len(grid.failed)} fit(s) failed the diagnostic gate: "
                             + ", ".join(f"{m}/{p}" for m, p in grid.failed))
    return grid


def _cached_grid(out_root: Path, grid_key: str, spec: RunSpec, data) -> GridResult | None:
    """The grid as written by the last run, if nothing it depends on changed and every
    fit and table on disk is verifiably the one that run wrote (fits are loaded lazily)."""
    import pandas as pd

    reports = out_root / "reports"
    try:
        gm = json.loads((reports / "fit_manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if gm.get("grid_key") != grid_key or not outputs_verified(gm.get("tables", {}), out_root):
        return None
    folders, pooled_folders = {}, {}
    for model in spec.models:
        for pname in spec.priors:
            name = f"{model}__{pname}"
            folder = out_root / "models" / name
            entry = gm.get("fits", {}).get(name)
            if not entry or not fitstore.verified_on_disk(folder, entry.get("cache_key")):
                return None
            folders[(model, pname)] = folder
            if name in gm.get("pooled", {}):
                if not fitstore.verified_on_disk(folder, gm["pooled"][name].get("cache_key"), "pooled.nc"):
                    return None
                pooled_folders[(model, pname)] = folder
    fits = fitstore.LazyFits(folders, spec.priors, data_of=lambda k: data)
    pooled = fitstore.LazyFits(pooled_folders, spec.priors, "pooled.nc", data_of=lambda k: data)
    gate_ok = {f"{m}__{p}" for m, p in folders if gm["fits"][f"{m}__{p}"].get("gate_passed")}

    def _csv(name):
        p = reports / name
        return pd.read_csv(p) if p.exists() else None

    results = _csv("results.csv")
    results["flag"] = results["flag"].fillna("")  # written empty, read back as NaN
    grid = GridResult(fits, results, _csv("diagnostics.csv"), _csv("loo_compare.csv"),
                      _csv("tipping_point.csv"), _csv("pooling.csv"), pooled, out_root, spec,
                      _csv("ppc.csv"), _csv("anchors.csv"), _csv("ph_check.csv"), _csv("headline.csv"))
    grid.cached_failed = [k for k in folders if f"{k[0]}__{k[1]}" not in gate_ok]
    grid.cached_failed += [k for k in pooled_folders
                           if not gm["pooled"][f"{k[0]}__{k[1]}"].get("gate_passed")
                           and k not in grid.cached_failed]
    grid.grid_key = grid_key
    return grid


def _pooled_headline_rows(pf: FitResult, rows: list[dict], ratios: dict, spec: RunSpec) -> list[dict]:
    """The few pooled rows repeated in results.csv (``pooled_<quantity>``)."""
    h, mt = f"{spec.rmst_horizons[-1]:g}", f"{spec.milestones[-1]:g}"
    pick = {"hr", "p_hr_lt_1", f"rmst_diff_{h}", f"surv_diff_{mt}"}
    f = flag(pf)
    out = [{**r, "quantity": f"pooled_{r['quantity']}", "flag": f} for r in rows if r["quantity"] in pick]
    for q in ("hr", f"rmst_diff_{h}"):
        if q in ratios:
            out.append({"model": pf.model, "prior": pf.prior.name, "quantity": f"pooled_{q}_width_ratio",
                        "estimate": ratios[q], "lower": math.nan, "upper": math.nan, "flag": f})
    return out


def load_grid(out_root: str | Path, spec: RunSpec, data_hash: str | None = None) -> GridResult:
    """Reload the fits and tables written by :func:`fit_grid` (for reporting).

    The grid manifest (``reports/fit_manifest.json``) must have been made
    with the run spec's current configuration (and, if ``data_hash`` is
    given, from that IPD file), every fit must match its manifest (SHA-256 of
    the file), and every manifest's cache key must be the one the grid
    manifest lists; anything else raises :class:`~kmbayes.errors.InputError`
    asking for a refit, so a report never draws today's prior over
    yesterday's posterior.
    """
    import pandas as pd

    out_root = Path(out_root)
    reports = out_root / "reports"
    try:
        gm = json.loads((reports / "fit_manifest.json").read_text())
    except (OSError, ValueError):
        raise InputError("--output", f"no fitted grid under {display_path(out_root)} "
                         "(run `kmbayes fit` first)") from None
    if gm.get("config_hash") != spec.config_hash():
        raise InputError("--config", "the fits were made with another configuration; run `kmbayes fit` first")
    if data_hash is not None and gm.get("data_hash") != data_hash:
        raise InputError("--data", "the fits were made from other data; run `kmbayes fit` first")
    fits, pooled = {}, {}
    for model in spec.models:
        for pname, prior in spec.priors.items():
            name = f"{model}__{pname}"
            folder = out_root / "models" / name
            fit = fitstore.read_stored(folder)
            if fit.manifest.get("cache_key") != gm.get("fits", {}).get(name, {}).get("cache_key"):
                raise InputError("--output", f"the fit of {model}/{pname} is not the one the tables were "
                                 "made from; run `kmbayes fit` first")
            fit.prior = prior
            fits[(model, pname)] = fit
            if name in gm.get("pooled", {}):
                pf = fitstore.read_stored(folder, "pooled.nc", data=fit.data)
                if pf.manifest.get("cache_key") != gm["pooled"][name].get("cache_key"):
                    raise InputError("--output", f"the pooled fit of {model}/{pname} is not the one the "
                                     "tables were made from; run `kmbayes fit` first")
                pf.prior = prior
                pooled[(model, pname)] = pf

    def _csv(name):
        p = reports / name
        return pd.read_csv(p) if p.exists() else None

    return GridResult(fits, _csv("results.csv"), _csv("diagnostics.csv"), _csv("loo_compare.csv"),
                      _csv("tipping_point.csv"), _csv("pooling.csv"), pooled, out_root, spec,
                      _csv("ppc.csv"), _csv("anchors.csv"), _csv("ph_check.csv"), _csv("headline.csv"))


def stored_or_fast_grid(spec: RunSpec, root: str | Path, ipd: str | Path, *, fast: bool) -> GridResult:
    """The fits stored under ``root`` (from ``make run``), or, in the fast profile
    when there are none (a fresh clone: posteriors are not committed), a grid
    fitted now with few draws under ``root/runs/fast-notebooks`` -- for smoke
    tests of the notebooks, never for reported results."""
    try:
        return load_grid(root, spec)
    except InputError:
        if not fast:
            raise
    import sys

    print("kmbayes: no stored fits (run `make run`); fitting the fast profile for this session",
          file=sys.stderr)
    return fit_grid(spec, ipd, Path(root) / "runs" / "fast-notebooks", fast=True, pool_replicates=False)
