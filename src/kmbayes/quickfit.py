"""Sample one model family directly with nutpie: no grid, disk cache or retries.

For recovery tests, exploratory fits and the report's one-off fits of the
cure and smooth_tv families. A family is compiled once per process (family,
cut points) with nutpie's numba backend (``nutpie.compile_pymc_model``);
every later data set or prior is swapped in with ``with_data`` on the
model's ``pm.Data`` containers, so nothing recompiles. The returned
:class:`QuickFit` carries the posterior (an ArviZ ``DataTree``) with the
per-patient ``log_likelihood`` group LOO needs, the flattened draws, the
``ctx`` the families' NumPy methods take, and the convergence diagnostics of
:func:`kmbayes.diagnostics.compute`.

It is the same model and the same data containers as the grid
(:func:`kmbayes.fitting.fit_one`), reduced to one nutpie call.

References
----------
Vehtari A, Gelman A, Gabry J. Practical Bayesian model evaluation using
leave-one-out cross-validation and WAIC. Stat Comput. 2017;27:1413-32.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import families
from .families import DEFAULT_CUTS, BaselinePrior, check_cuts

_COMPILED: dict[tuple, object] = {}


def values(name, data, prior, cuts, baseline) -> dict[str, np.ndarray]:
    """Every ``pm.Data`` value of a fit: data, baseline constants, prior constants."""
    fam = families.get(name)
    out = dict(fam.data_values(data, cuts))
    out.update(baseline.values())
    out.update(fam.prior_values(prior))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def compiled(name, data, prior, *, cuts=DEFAULT_CUTS, baseline=None):
    """The nutpie model of family ``name`` with this data and prior swapped in.

    Compiled on first use per (family, cut points); later calls only swap
    values (``with_data``).
    """
    import nutpie

    fam = families.get(name)
    cuts = check_cuts(cuts)
    baseline = baseline or BaselinePrior()
    key = (name, cuts if fam.uses_cuts else None)
    if key not in _COMPILED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _COMPILED[key] = nutpie.compile_pymc_model(fam.build(data, prior, cuts=cuts, baseline=baseline))
    c = _COMPILED[key]
    # Containers no term reads (e.g. tau_scale in the cure model) are pruned
    # from the compiled graph and cannot be set.
    used = {v.name for v in c.shared_var_keys}
    return c.with_data(**{k: v for k, v in values(name, data, prior, cuts, baseline).items() if k in used})


@dataclass
class QuickFit:
    """One sampled family: posterior ``idata``, flattened draws ``post``, ``ctx`` and diagnostics."""

    model: str
    idata: object
    post: dict[str, np.ndarray]
    ctx: dict
    data: object
    diagnostics: dict = field(default_factory=dict)
    seconds: float = float("nan")

    def estimands(self) -> dict[str, np.ndarray]:
        """The family's named draws (``family_estimands``), if it has any."""
        fam = families.get(self.model)
        fn = getattr(fam, "family_estimands", None)
        return fn(self.post, self.data, self.ctx) if fn else {}


def flatten(posterior) -> dict[str, np.ndarray]:
    """Posterior variables flattened over chain and draw (transformed copies dropped)."""
    out = {}
    for k, da in posterior.data_vars.items():
        if k.endswith("__"):
            continue
        v = np.asarray(da.values)
        out[k] = v.reshape(v.shape[0] * v.shape[1], *v.shape[2:])
    return out


def sample(name, data, prior, *, cuts=DEFAULT_CUTS, baseline=None, draws=1000, tune=1000, chains=2,
           target_accept=0.9, seed=0, ctx_extra=None, loglik=True) -> QuickFit:
    """Sample family ``name`` on ``data`` under ``prior`` with nutpie (chains as threads).

    Parameters
    ----------
    name : str
        Family id (:data:`kmbayes.families.FAMILIES`).
    data : SurvivalData
    prior : PriorSpec
        For ``cure`` also a :class:`kmbayes.cure_priors.PriorWithCure`.
    cuts : sequence of float
        Cut points (piecewise families; smooth_tv's grid spans them).
    baseline : BaselinePrior, optional
    draws, tune, chains : int
    target_accept : float
    seed : int
    ctx_extra : dict, optional
        Extra ``ctx`` keys, e.g. ``{"split": 24.0}`` for smooth_tv.
    loglik : bool
        Add the per-patient ``log_likelihood`` group (for LOO).

    Returns
    -------
    QuickFit
        ``diagnostics`` holds ``divergences``, ``rhat_max``,
        ``ess_bulk_min``, ``ess_tail_min``, ``worst_rhat_var``
        (deterministics included); ``seconds`` is the sampling time,
        compilation excluded.
    """
    import nutpie
    import xarray as xr

    from . import diagnostics

    cuts = check_cuts(cuts)
    baseline = baseline or BaselinePrior()
    c = compiled(name, data, prior, cuts=cuts, baseline=baseline)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = nutpie.sample(c, draws=draws, tune=tune, chains=chains, cores=chains, seed=seed,
                              progress_bar=False, save_warmup=False, target_accept=target_accept)
    secs = time.perf_counter() - t0
    post = flatten(idata.posterior)
    ctx = {"t_ref": baseline.time_ref, "cuts": cuts, **(ctx_extra or {})}
    if loglik:
        nc, nd = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
        ll = families.get(name).pointwise_loglik(post, data, ctx).reshape(nc, nd, data.n)
        idata["log_likelihood"] = xr.Dataset(
            {"obs": (("chain", "draw", "patient"), ll)},
            coords={"chain": idata.posterior.chain.values, "draw": idata.posterior.draw.values,
                    "patient": np.arange(data.n)})
    d = diagnostics.compute(idata, loo=False)
    return QuickFit(name, idata, post, ctx, data, d, secs)


def loo(fit: QuickFit):
    """PSIS-LOO of a fit (ArviZ ``ELPDData``: ``elpd``, ``se``, ``pareto_k``)."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(fit.idata, pointwise=True)


def loo_difference(better: QuickFit, worse: QuickFit) -> tuple[float, float]:
    """elpd(better) - elpd(worse) and the SE of that difference (paired over patients)."""
    a, b = loo(better), loo(worse)
    diff = np.asarray(a.elpd_i).ravel() - np.asarray(b.elpd_i).ravel()
    return float(diff.sum()), float(np.sqrt(diff.size * np.var(diff, ddof=1)))
