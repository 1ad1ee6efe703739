"""Convergence diagnostics and the gate every fit must pass.

Per fit: rank-normalised split R-hat, bulk and tail effective sample sizes
(Vehtari et al. 2021), the number of divergent transitions, the energy
Bayesian fraction of missing information (E-BFMI; Betancourt 2016) and PSIS-LOO
with its Pareto k diagnostics (Vehtari, Gelman & Gabry 2017). Across models,
``az.compare`` ranks them by expected log predictive density. Fits are
ArviZ 1.x ``xarray.DataTree`` objects.

The gate: R-hat <= 1.01, bulk and tail ESS >= 400, no divergences (Vehtari
et al. 2021 recommend R-hat < 1.01 and ESS > 400 for 4 chains; with 2 chains
the same totals are required). E-BFMI < 0.3 and Pareto k > 0.7 are reported as
warnings, not gate failures: they concern efficiency and LOO reliability, not
whether the posterior summaries can be trusted.

References
----------
Vehtari A, Gelman A, Simpson D, Carpenter B, Buerkner P-C. Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of
MCMC. Bayesian Anal. 2021;16(2):667-718.
Vehtari A, Gelman A, Gabry J. Practical Bayesian model evaluation using
leave-one-out cross-validation and WAIC. Stat Comput. 2017;27:1413-1432.
Betancourt M. Diagnosing suboptimal cotangent disintegrations in Hamiltonian
Monte Carlo. arXiv:1604.00695; 2016.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

COLUMNS = [
    "model",
    "prior",
    "rhat_max",
    "ess_bulk_min",
    "ess_tail_min",
    "divergences",
    "bfmi_min",
    "pareto_k_max",
    "elpd_loo",
    "p_loo",
    "sampler",
    "attempts",
    "gate_passed",
]


@dataclass(frozen=True)
class Gate:
    """Thresholds of the diagnostic gate (config ``[gate]``)."""

    rhat_max: float = 1.01
    ess_min: float = 400.0
    divergences_max: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _sampled_vars(idata) -> list[str]:
    # Deterministics are functions of the sampled variables; checking them too
    # catches e.g. a badly mixing tail of a derived quantity. Rank-normalised
    # R-hat and ESS do not change under a monotone transform, so ``hr_x`` is
    # skipped when ``log_hr_x`` is there: same numbers, half the work.
    names = list(idata["posterior"].data_vars)
    return [v for v in names if not (v.startswith("hr") and f"log_{v}" in names)]


def compute(idata, *, loo: bool = True) -> dict:
    """Diagnostics of one fit as a flat dict (JSON-friendly floats/ints).

    Keys: ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``, ``divergences``,
    ``bfmi_min``, ``pareto_k_max``, ``n_pareto_k_gt_0.7``, ``elpd_loo``,
    ``se_elpd_loo``, ``p_loo``, ``draws``, ``chains``, ``worst_rhat_var``.
    """
    import arviz as az
    import xarray as xr

    # Every scalar of every variable as one (chain, draw, k) array: ArviZ then
    # makes one vectorised call per diagnostic instead of one per variable.
    post = idata["posterior"]
    owner, cols = [], []
    for name in _sampled_vars(idata):
        v = np.asarray(post[name].values, dtype=float)
        v = v.reshape(v.shape[0], v.shape[1], -1)
        owner += [name] * v.shape[2]
        cols.append(v)
    theta = xr.Dataset({"theta": (("chain", "draw", "k"), np.concatenate(cols, axis=2))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_k = {
            "rhat": az.rhat(theta, method="rank")["theta"].values,
            "ess_bulk": az.ess(theta, method="bulk")["theta"].values,
            "ess_tail": az.ess(theta, method="tail")["theta"].values,
        }

    def _ext(values, fn):
        vals: dict[str, float] = {}
        for name, x in zip(owner, values):
            if math.isfinite(x):  # constant columns (e.g. a fixed deterministic) have NaN
                vals[name] = float(fn(vals.get(name, x), x))
        return vals

    r = _ext(per_k["rhat"], max)
    eb = _ext(per_k["ess_bulk"], min)
    et = _ext(per_k["ess_tail"], min)
    ss = idata["sample_stats"]
    div = int(np.asarray(ss["diverging"].values).sum()) if "diverging" in ss.data_vars else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bfmi = float(np.min(az.bfmi(idata)["energy"].values))
    except Exception:  # no energy in sample_stats (e.g. a pooled fit)
        bfmi = math.nan
    out = {
        "rhat_max": max(r.values()) if r else math.nan,
        "worst_rhat_var": max(r, key=r.get) if r else "",
        "ess_bulk_min": min(eb.values()) if eb else math.nan,
        "ess_tail_min": min(et.values()) if et else math.nan,
        "divergences": div,
        "bfmi_min": bfmi,
        "chains": int(post.sizes["chain"]),
        "draws": int(post.sizes["draw"]),
    }
    out.update(loo_summary(idata) if loo else {})
    return out


def loo_summary(idata) -> dict:
    """PSIS-LOO: elpd, its SE, p_loo, max Pareto k and how many k > 0.7."""
    import arviz as az

    if "log_likelihood" not in idata.children:
        return {"elpd_loo": math.nan, "se_elpd_loo": math.nan, "p_loo": math.nan,
                "pareto_k_max": math.nan, "n_pareto_k_gt_0.7": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = az.loo(idata, pointwise=True)
    k = np.asarray(getattr(res.pareto_k, "values", res.pareto_k), float)
    return {
        "elpd_loo": float(res.elpd),
        "se_elpd_loo": float(res.se),
        "p_loo": float(res.p),
        "pareto_k_max": float(np.max(k)),
        "n_pareto_k_gt_0.7": int(np.sum(k > 0.7)),
    }


def gate_failures(diag: dict, gate: Gate = Gate()) -> list[str]:
    """Reasons a fit fails the gate (empty list: passed). NaN counts as failing."""
    out = []
    r = diag.get("rhat_max", math.nan)
    if not r <= gate.rhat_max:
        out.append(f"R-hat {r:.3f} > {gate.rhat_max} ({diag.get('worst_rhat_var', '')})")
    for k, lab in (("ess_bulk_min", "bulk ESS"), ("ess_tail_min", "tail ESS")):
        v = diag.get(k, math.nan)
        if not v >= gate.ess_min:
            out.append(f"{lab} {v:.0f} < {gate.ess_min:g}")
    d = diag.get("divergences", 0)
    if d > gate.divergences_max:
        out.append(f"{d} divergent transitions")
    return out


def warnings_of(diag: dict) -> list[str]:
    """Non-gating concerns: low E-BFMI, high Pareto k."""
    out = []
    b = diag.get("bfmi_min", math.nan)
    if math.isfinite(b) and b < 0.3:
        out.append(f"E-BFMI {b:.2f} < 0.3")
    n = diag.get("n_pareto_k_gt_0.7", 0)
    if n:
        out.append(f"{n} Pareto k > 0.7 (LOO unreliable for those patients)")
    return out


def passes(diag: dict, gate: Gate = Gate()) -> bool:
    return not gate_failures(diag, gate)


def compare(idatas: dict[str, object]):
    """``az.compare`` (PSIS-LOO, stacking weights) of fits of the same data.

    ``idatas`` maps model id -> DataTree with a ``log_likelihood`` group.
    Returns the ArviZ comparison DataFrame (index = model), unrounded, with
    ``elpd_diff`` = elpd(model) - elpd(best) (<= 0, ArviZ 1.x's sign) and
    ``dse`` its standard error.
    """
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.compare(idatas, method="stacking", round_to="none")
