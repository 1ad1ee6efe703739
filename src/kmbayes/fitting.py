"""Fit one model x prior x data set: sample, add the per-patient log-likelihood, gate, retry.

:func:`fit_one` samples through the backend ladder of
:mod:`kmbayes.sampling`, adds what the estimands and LOO need (per-patient
log-likelihood, the data and cut points) and puts the fit through the
diagnostic gate of :mod:`kmbayes.diagnostics`. A failing fit is retried
with safer settings (higher target_accept, twice the tuning and draws), then
with PyMC's NUTS; if it still fails it is kept but flagged
(``gate_passed`` false).

References
----------
Vehtari A, Gelman A, Simpson D, Carpenter B, Buerkner P-C. Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of
MCMC. Bayesian Anal. 2021;16(2):667-718.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import diagnostics as diag_mod
from . import families, sampling
from .data import SurvivalData
from .diagnostics import Gate
from .errors import FitFailedError
from .families import BaselinePrior
from .priors import PriorSpec
from .provenance import derive_seed
from .runspec import SamplerSettings

#: sample_stats kept with a fit (diagnostics read these; the rest is sampler internals)
KEPT_STATS = ("diverging", "energy", "step_size", "n_steps", "tree_depth", "depth")


@dataclass(eq=False)
class FitResult:
    """One fitted model x prior.

    Attributes
    ----------
    model : str
        Family id.
    prior : PriorSpec
        The prior on the family's log HR parameter.
    idata : xarray.DataTree
        ``posterior``, ``sample_stats``, ``log_likelihood`` (``obs``, per
        patient; recomputed from the draws when a fit is read back) and
        ``constant_data`` (the data and the cut points).
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


def posterior_dataset(idata):
    """The ``posterior`` group as an ``xarray.Dataset``."""
    return idata["posterior"].to_dataset()


def flat_draws(post) -> dict[str, np.ndarray]:
    """Posterior variables flattened over (chain, draw): name -> array (S, ...)."""
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    return {k: np.asarray(v.values, dtype=float).reshape(nc * nd, *v.shape[2:])
            for k, v in post.data_vars.items()}


def log_likelihood_dataset(model, post, data, ctx):
    """Per-patient log-likelihood ``obs`` (chain, draw, patient), recomputed from draws."""
    import xarray as xr

    ll = families.get(model).pointwise_loglik(flat_draws(post), data, ctx)
    ll = ll.reshape(post.sizes["chain"], post.sizes["draw"], data.n)
    coords = {"chain": post.chain.values, "draw": post.draw.values, "patient": np.arange(data.n)}
    return xr.Dataset({"obs": (("chain", "draw", "patient"), ll)}, coords=coords)


def constant_dataset(data, cuts, baseline):
    import xarray as xr

    return xr.Dataset(
        {
            "time": ("patient", np.asarray(data.time, float)),
            "event": ("patient", np.asarray(data.event, np.int64)),
            "arm": ("patient", np.asarray(data.arm, dtype=np.int64)),
            "cuts": ("cut", np.asarray(cuts, float)),
            "t_ref": ((), float(baseline.time_ref)),
        },
        coords={"patient": np.arange(data.n), "cut": np.arange(len(cuts))},
    )


def make_tree(**groups):
    """A DataTree of the given ``xarray.Dataset`` groups (None groups are left out)."""
    import xarray as xr

    return xr.DataTree.from_dict({k: v for k, v in groups.items() if v is not None})


def finish_idata(idata, model, data, prior, cuts, baseline, loglik: bool = True):
    """The sampler's DataTree -> kmbayes' own: draws, kept stats, log-lik (if ``loglik``),
    data and attrs."""
    raw = posterior_dataset(idata)
    # Transformed copies (e.g. tau_log__) duplicate their constrained variable.
    post = raw[[v for v in raw.data_vars if not v.endswith("__")]]
    # Draws are stored as float32 (7 significant digits, far below Monte
    # Carlo error); rounding here, before anything is computed from them,
    # makes a fresh fit and its cached copy give identical numbers.
    post = post.astype(np.float32)
    post.attrs = {}
    ss = idata["sample_stats"].to_dataset()
    ss = ss[[v for v in KEPT_STATS if v in ss.data_vars]]
    ss.attrs = {}
    ctx = {"t_ref": baseline.time_ref, "cuts": tuple(cuts)}
    post.attrs.update(
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
    return make_tree(posterior=post, sample_stats=ss,
                     log_likelihood=log_likelihood_dataset(model, post, data, ctx) if loglik else None,
                     constant_data=constant_dataset(data, cuts, baseline))


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

    Attempts: the given settings; then :meth:`SamplerSettings.safer` twice;
    then the safer settings with PyMC's NUTS (unless ``pymc_fallback`` is
    false). Each attempt runs on the best sampler rung available
    (:func:`kmbayes.sampling.sample`) and records it. Stops at the first
    attempt that passes the gate; otherwise returns the last attempt flagged
    ``gate_passed=False``.
    """
    baseline = baseline or BaselinePrior()
    settings = settings or SamplerSettings()
    gate = gate or Gate()
    cuts = families.check_cuts(cuts)
    retry = settings.retry if retry is None else retry
    plan = [settings]
    if retry:
        # Retries on a compiled family cost well under a second (no
        # recompilation), so two rounds of safer settings come before PyMC.
        safer = settings.safer()
        plan += [safer, safer.safer()]
        if pymc_fallback and settings.backend != "pymc":
            plan.append(dataclasses.replace(safer, backend="pymc"))
    attempts = []
    best = None
    for i, s in enumerate(plan):
        fseed = derive_seed(seed, i)
        t0 = time.perf_counter()
        try:
            raw, rung = sampling.sample(model, data, prior, cuts, baseline, s, fseed)
        except Exception as ex:  # a sampler crash is a failed attempt, not a crash of the grid
            attempts.append({**dataclasses.asdict(s), "seed": fseed,
                             "error": " ".join(f"{type(ex).__name__}: {ex}".split())[:300]})
            continue
        idata = finish_idata(raw, model, data, prior, cuts, baseline, loglik=loo)
        d = diag_mod.compute(idata, loo=loo)
        fails = diag_mod.gate_failures(d, gate)
        attempts.append({**dataclasses.asdict(s), "rung": rung, "seed": fseed,
                         "seconds": round(time.perf_counter() - t0, 3), "failures": fails})
        best = (idata, d, fails, rung)
        if not fails:
            break
    if best is None:
        raise FitFailedError(f"{model}/{prior.name}: every sampler attempt raised: {attempts[-1].get('error')}")
    idata, d, fails, rung = best
    d = dict(d, failures=fails, warnings=diag_mod.warnings_of(d), sampler=rung,
             attempts=len(attempts), attempt_log=attempts)
    ctx = {"t_ref": baseline.time_ref, "cuts": tuple(cuts)}
    return FitResult(model, prior, idata, d, not fails, data, ctx)
