"""Figure 8: MCMC rank plots of each model's key parameters, and the LOO
model comparison."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from .. import style
from ..trial import Trial
from ._common import is_single, new_figure, prior_of, prior_phrase, styled, suptitle
from ._draws import idata_of

# Nuisance/derived variables that say nothing a rank plot of their parents
# does not: non-centred offsets and exp() transforms of the log HR.
_SKIP_RANK = ("z", "hr", "median", "rmst", "surv")


def _key_params(idata: Any, max_params: int = 3) -> list[tuple[str, dict | None]]:
    """Variables worth a rank plot: the (mean) log HR, scalars, then the last
    element of vector variables (the sparsest interval mixes worst).

    Returns ``(name, coords)`` pairs; ``coords`` selects one element or is None.
    """
    post = idata["posterior"]
    out: list[tuple[str, dict | None]] = []
    # Names ending "__" are samplers' unconstrained copies (tau_log__ of tau).
    names = [v for v in post.data_vars
             if not str(v).startswith(_SKIP_RANK) and not str(v).endswith("__")]
    scalar = [v for v in names if post[v].ndim == 2]
    first = [v for v in ("log_hr", "log_hr_mean", "tau") if v in scalar]
    for v in first + [v for v in scalar if v not in first]:
        out.append((str(v), None))
    for v in names:
        da = post[v]
        if da.ndim == 3:
            dim = da.dims[2]
            out.append((str(v), {dim: [da[dim].values[-1]]}))
    return out[:max_params]


def _param_title(var: str, coords: dict | None) -> str:
    if not coords:
        return var
    (val,) = next(iter(coords.values()))
    return f"{var}[{val}]"


@styled
def plot_diagnostics(
    fits: Mapping[str, Any],
    trial: Trial | None = None,
    *,
    loo: Any = None,
    max_params: int = 3,
    prior: str | None = None,
    width: float = style.DOUBLE_COLUMN,
    row_height: float | None = None,
) -> Figure:
    """MCMC rank plots of each model's key parameters, and the LOO comparison.

    Rank plots (Vehtari et al. 2021) show, per chain, the histogram of a
    parameter's ranks across all chains: near-uniform bars mean the chains
    mix. The LOO panel shows each model's expected log predictive density
    relative to the best (with the standard error of the difference). All of
    one prior set, which the title names.

    Parameters
    ----------
    fits : mapping
        Model id to a fit or InferenceData (one prior set).
    trial : Trial, optional
        Accepted for symmetry with the other figures; not drawn.
    loo : pandas.DataFrame, optional
        An :func:`arviz.compare` table (index: model; columns ``elpd_diff``,
        ``dse``, ``weight``...) or ``reports/loo_compare.csv`` /
        ``GridResult.loo`` (``model`` and ``prior`` columns; the rows of the
        shown prior set are used). If omitted it is computed from ``fits``
        when they carry log-likelihoods.
    max_params : int
        Parameters per model.
    prior : str, optional
        Name of the prior set of ``fits``; default the fits' own, else
        ``"reference"``.
    width : float
        Figure width in inches.
    row_height : float, optional
        Height per model row, inches.

    Returns
    -------
    matplotlib.figure.Figure
        Rank-plot axes (model x parameter) plus one LOO axes.
    """
    models = style.order_models(fits)
    prior = prior_of(fits, prior)
    idatas = {m: idata_of(fits[m]) for m in models}
    params = {m: _key_params(idatas[m], max_params) for m in models}
    ncol = max(len(v) for v in params.values())
    single = is_single(width)
    row_height = row_height or (1.05 if single else 1.15)
    if loo is not None and "prior" in getattr(loo, "columns", ()):
        pick = prior if (loo["prior"] == prior).any() else loo["prior"].iloc[0]
        loo = loo[loo["prior"] == pick]
    if loo is not None and len(loo) == 0:
        loo = None
    if loo is None:
        loo = _compute_loo(idatas)
    loo = _loo_table(loo) if loo is not None else None

    loo_h = (0.75 + 0.3 * len(loo) if not single else 0.9 + 0.42 * len(loo)) if loo is not None else 0.0
    fig = new_figure(width, 0.45 + row_height * len(models) + loo_h)
    if loo is not None:
        sf_rank, sf_loo = fig.subfigures(2, 1, height_ratios=[row_height * len(models), loo_h])
    else:
        sf_rank, sf_loo = fig, None
    rows = sf_rank.subfigures(len(models), 1) if len(models) > 1 else [sf_rank]
    n_chains = max(int(idatas[m]["posterior"].sizes["chain"]) for m in models)
    fs = 6.5 if single else 7
    for r, (sf, m) in enumerate(zip(rows, models)):
        sf.suptitle(style.model_label(m), x=0.0, ha="left", fontsize=7.5, fontweight="bold")
        axes = sf.subplots(1, ncol, squeeze=False)[0]
        for j, ax in enumerate(axes):
            if j >= len(params[m]):
                ax.set_visible(False)
                continue
            var, coords = params[m][j]
            _rank_bars(ax, idatas[m], var, coords, n_chains)
            ax.set_title(_param_title(var, coords), fontsize=6 if single else fs, fontweight="normal",
                         loc="left",
                         family="monospace")
            ax.set_xlabel(("Rank" if single else "Rank (all chains)") if r == len(models) - 1 else "")
            ax.set_ylabel("Chain" if j == 0 else "")
            ax.tick_params(labelsize=fs - (0.5 if single else 0))
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(2 if single else 3))
    if sf_loo is not None:
        _draw_loo(sf_loo.subplots(), loo, single)
    suptitle(fig, f"Sampling diagnostics and model comparison ({prior_phrase(prior)})", width)
    return fig


def _rank_bars(ax: Any, idata: Any, var: str, coords: dict | None, n_chains: int) -> None:
    """Rank plot (Vehtari et al. 2021): one histogram of ranks per chain.

    The ranks are of all chains' draws pooled; if the chains mix, every
    chain's histogram is flat at the dashed line. Each histogram is one
    filled step artist, not 20 bar patches: far cheaper to draw and save.
    """
    from scipy.stats import rankdata

    da = idata["posterior"][var]
    if coords:
        da = da.sel(coords)
    x = np.asarray(da.values, float)
    nc, nd = x.shape[:2]
    ranks = rankdata(x.reshape(-1)).reshape(nc, nd)
    bins = np.linspace(0.5, nc * nd + 0.5, 21)
    expected = nd / (len(bins) - 1)
    for c in range(nc):
        h, _ = np.histogram(ranks[c], bins)
        # Chains are exchangeable: one neutral colour keeps arm/prior colours meaningful.
        ax.stairs(c + h / expected * 0.4, bins, baseline=c, fill=True, color=style.NEUTRAL, lw=0)
        ax.axhline(c + 0.4, color="black", lw=0.6, ls=(0, (3, 2)))
    # Thin white rules between bins (one artist for all chains), so each bin reads as a bar.
    ax.vlines(bins[1:-1], -0.1, nc, color="white", lw=0.3)
    ax.set_yticks(np.arange(nc) + 0.2, [str(c) for c in range(nc)])
    ax.set_ylim(-0.1, nc)
    ax.set_xlim(bins[0], bins[-1])


def _compute_loo(idatas: Mapping[str, Any]) -> Any:
    from ..diagnostics import compare

    have = {m: d for m, d in idatas.items() if "log_likelihood" in getattr(d, "children", {})}
    if len(have) < 2:
        return None
    return compare(have)


def _loo_table(loo: Any) -> Any:
    """Normalise a compare table: index = model, sorted best first."""
    import pandas as pd

    df = pd.DataFrame(loo).copy()
    if "model" in df.columns:
        df = df.set_index("model")
    elpd = "elpd" if "elpd" in df.columns else "elpd_loo"
    if "elpd_diff" not in df.columns:
        df["elpd_diff"] = df[elpd] - df[elpd].max()
    if "dse" not in df.columns:
        df["dse"] = np.nan
    return df.sort_values("elpd_diff", ascending=False)


def _draw_loo(ax: Any, loo: Any, single: bool = False) -> None:
    y = np.arange(len(loo))[::-1]
    diff = loo["elpd_diff"].to_numpy(float)  # ArviZ 1.x: model - best (<= 0)
    dse = loo["dse"].to_numpy(float)
    for yi, dv, se in zip(y, diff, dse):
        if np.isfinite(se) and se > 0:
            ax.plot([dv - se, dv + se], [yi, yi], color=style.NEUTRAL, lw=1.1)
            ax.plot([dv - 2 * se, dv + 2 * se], [yi, yi], color=style.NEUTRAL, lw=0.5)
        ax.plot([dv], [yi], "o", ms=4, color="black" if dv == 0 else style.NEUTRAL,
                mfc="black" if dv == 0 else "white")
    ax.axvline(0.0, color=style.LIGHT, lw=0.6, zorder=0)
    labels = [style.model_label(str(m)) for m in loo.index]
    if single:
        labels = [style.wrap_label(lab, 24) for lab in labels]
    if "weight" in loo.columns:
        sep = "\n" if single else " "
        labels = [f"{lab}{sep}(weight {w:.2f})" for lab, w in zip(labels, loo["weight"].to_numpy(float))]
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=6.5 if single else 7)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(-0.6, len(loo) - 0.4)
    ax.set_xlabel("ELPD difference from the best\n(LOO); bars \u00b11 and \u00b12 SE" if single
                  else "ELPD difference from the best model (LOO); bars \u00b11 and \u00b12 SE")
    ax.set_title("Model comparison (PSIS-LOO)", loc="left")
    # Room for the +-2 SE bars on both sides, and at least half a unit
    # around 0 so a lone best model does not fill the axis.
    se2 = 2 * np.nan_to_num(dse)
    lo = float(np.min(np.concatenate([diff - se2, [0.0]])))
    hi = float(np.max(np.concatenate([diff + se2, [0.0]])))
    pad = max(0.5, 0.06 * (hi - lo))
    ax.set_xlim(lo - pad, hi + pad)
