"""Figures of the hazard ratio across prior sets: the triplot (figure 2) and
the probability of benefit (figure 6)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from .. import style
from ..trial import Trial
from ._common import (
    fmt_hr,
    is_single,
    is_time_varying,
    log_hr_axis,
    new_figure,
    p_relation,
    panel_title,
    short,
    styled,
    suptitle,
)
from ._draws import hr_draws, hr_summary, prior_mu_sigma

Z95 = 1.959963984540054


def _kde(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian KDE (Scott's bandwidth) on an even grid, by binning and convolution.

    Binning to the grid spacing changes the density by far less than the
    bandwidth smooths it, and costs O(n + grid) instead of O(n x grid).
    """
    x = x[np.isfinite(x)]
    dx = grid[1] - grid[0]
    if x.size < 2 or not np.std(x) > 0:
        return np.zeros_like(grid)
    bw = max(np.std(x, ddof=1) * x.size ** (-1 / 5), dx)
    edges = np.concatenate([grid - dx / 2, [grid[-1] + dx / 2]])
    counts, _ = np.histogram(x, edges)
    half = int(min(math.ceil(4 * bw / dx), grid.size))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) * dx / bw) ** 2)
    dens = np.convolve(counts, k / k.sum(), mode="same")
    return dens / (x.size * dx)


def _normal_pdf(x: np.ndarray, m: float, s: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


# --------------------------------------------------------------------------- figure 2


@styled
def plot_hr_triplot(
    posteriors: Mapping[str, Any],
    priors: Mapping[str, Any],
    trial: Trial,
    *,
    likelihood: tuple[float, float] | None = None,
    likelihood_label: str = "Likelihood (normal approx.)",
    model: str | None = None,
    hr_range: tuple[float, float] | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float | None = None,
) -> Figure:
    """Prior, likelihood and posterior of the HR: one panel per prior set.

    Densities are of the log HR, drawn on a log-scaled HR axis, so a normal
    prior or likelihood appears symmetric and the panels compare directly. The
    posterior area below HR = 1 is shaded and P(HR < 1) printed. For prior x
    likelihood to give the posterior shown, ``likelihood`` must be that of the
    model drawn (see :func:`kmbayes.tipping.likelihood_from_fit`), not of
    another model such as a Cox fit.

    Parameters
    ----------
    posteriors : mapping
        Prior name to posterior (a fit, an InferenceData, or HR draws).
    priors : mapping
        Prior name to its log-HR prior: a ``PriorSpec`` (``mu``, ``sigma``) or a
        ``(mu, sigma)`` tuple.
    trial : Trial
        For arm names in the title.
    likelihood : (float, float), optional
        Normal approximation ``(log HR, SE)`` of the likelihood; drawn as a
        normalised density.
    likelihood_label : str
        Its legend entry (say where it comes from).
    model : str, optional
        Model id, for the figure title.
    hr_range : (float, float), optional
        HR axis limits; default 0.2-2.5 widened to fit the posteriors.
    width : float
        Figure width in inches; below 5 in the panels form a 2-wide grid.
    height : float, optional
        Figure height in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per prior set, sharing both axes.
    """
    names = style.order_priors(posteriors)
    pcol = style.prior_colours(names)
    draws = {p: hr_draws(posteriors[p]) for p in names}
    qs = {p: hr_summary(d, [0.005, 0.995]) for p, d in draws.items()}
    if hr_range is None:
        lo = min(0.2, *(q[0] for q in qs.values()))
        hi = max(2.5, *(q[1] for q in qs.values()))
        hr_range = (max(lo, 0.02), min(hi, 50.0))
    x = np.linspace(np.log(hr_range[0]), np.log(hr_range[1]), 400)
    single = is_single(width)
    ncol = min(len(names), 2) if single else len(names)
    nrow = math.ceil(len(names) / ncol)
    fs = 6.5 if single else 7
    height = height or ((0.9 + 1.55 * nrow) if single else 2.4)

    fig = new_figure(width, height)
    axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False).ravel()
    ymax = 0.0
    for ax, p in zip(axes, names):
        c = pcol[p]
        lhr = np.log(draws[p][draws[p] > 0])
        dens = _kde(lhr, x)
        ax.plot(np.exp(x), dens, color=c, lw=1.4, zorder=3)
        below = x <= 0
        ax.fill_between(np.exp(x[below]), dens[below], color=c, alpha=0.22, lw=0, zorder=2)
        ymax = max(ymax, dens.max())
        if p in priors:
            mu, sd = prior_mu_sigma(priors[p])
            pd = _normal_pdf(x, mu, sd)
            ax.plot(np.exp(x), pd, color=c, lw=1.0, ls=(0, (4, 2)), zorder=2)
            ymax = max(ymax, min(pd.max(), 3 * dens.max()))
            title = f"{style.prior_label(p)} prior\nlog HR ~ N({short(mu)}, {short(sd)}\u00b2)"
        else:
            title = f"{style.prior_label(p)} prior"
        if likelihood is not None and np.isfinite(likelihood[1]):
            ld = _normal_pdf(x, *likelihood)
            ax.plot(np.exp(x), ld, color=style.LIKELIHOOD_COLOUR, lw=1.0, ls=(0, (1, 1.2)), zorder=2,
                    gid="likelihood")
            ymax = max(ymax, ld.max())
        ax.axvline(1.0, color=style.NEUTRAL, lw=0.6, zorder=1)
        ax.set_title(title, fontsize=fs + 0.5, color=c, loc="left")
        d = draws[p]
        med, lo95, hi95 = hr_summary(d)
        p1 = float(np.mean(d < 1.0))
        ax.text(0.98, 0.97,
                f"HR {fmt_hr(med)} ({fmt_hr(lo95)}\u2013{fmt_hr(hi95)})\nP(HR < 1) {p_relation(p1)}",
                transform=ax.transAxes, ha="right", va="top", fontsize=fs, linespacing=1.3,
                bbox={"fc": "white", "ec": "none", "pad": 0.6}, zorder=5)
        log_hr_axis(ax, *hr_range, max_ticks=5 if single else 7)
        ax.tick_params(axis="y", labelleft=False, length=0)
        ax.spines["left"].set_visible(False)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for i, ax in enumerate(axes[: len(names)]):
        if i + ncol >= len(names):
            ax.set_xlabel("Hazard ratio")
            ax.tick_params(labelbottom=True)
    for ax in axes.reshape(nrow, ncol)[:, 0]:
        ax.set_ylabel("Density (log HR)" if single else "Density (log HR scale)")
    # Headroom keeps the summary text clear of the curves.
    axes[0].set_ylim(0, ymax * (1.6 if single else 1.45))

    handles = [
        Line2D([], [], color=style.NEUTRAL, lw=1.0, ls=(0, (4, 2))),
        Line2D([], [], color=style.LIKELIHOOD_COLOUR, lw=1.0, ls=(0, (1, 1.2))),
        Line2D([], [], color=style.NEUTRAL, lw=1.4),
        Patch(color=style.NEUTRAL, alpha=0.22, lw=0),
    ]
    labels = ["Prior", likelihood_label, "Posterior", "Posterior mass at HR < 1"]
    if likelihood is None or not np.isfinite(likelihood[1]):
        handles.pop(1)
        labels.pop(1)
    fig.legend(handles, labels, loc="outside lower center", ncol=2 if single else len(handles),
               fontsize=fs)
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    sup = f"Hazard ratio, {trt} vs {ref}"
    if model:
        sup += f" \u2014 {style.model_label(model)}"
    suptitle(fig, sup, width)
    return fig


# --------------------------------------------------------------------------- figure 6


@styled
def plot_prob_benefit(
    fits: Mapping[tuple[str, str], Any],
    trial: Trial,
    *,
    models: Sequence[str] | None = None,
    thresholds: np.ndarray | None = None,
    mcid_hr: float | None = 0.7,
    width: float = style.DOUBLE_COLUMN,
    height: float | None = None,
) -> Figure:
    """Probability of benefit: P(HR < h) against the threshold h, per prior set.

    Reads as "how sure are we that the treatment cuts the hazard by at least
    1 - h". One line per prior set; one panel per model (stacked at column
    width). The axis starts where the most favourable curve is near 0, so
    every curve is seen rising from 0, and the minimal clinically important
    difference is marked.

    Parameters
    ----------
    fits : mapping
        ``(model, prior)`` to a fit, InferenceData or HR draws.
    trial : Trial
        Arm names for the title.
    models : sequence of str, optional
        Models to show (default all in ``fits``).
    thresholds : array, optional
        HR thresholds; default from the 0.5th percentile of the most
        favourable posterior (at most 0.2, rounded down) to 1.2.
    mcid_hr : float or None, default 0.7
        The MCID on the HR scale, drawn as a labelled vertical line.
    width : float
        Figure width in inches.
    height : float, optional
        Figure height in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    models = list(models) if models is not None else style.order_models(m for m, _ in fits)
    priors = style.order_priors(p for _, p in fits)
    pcol = style.prior_colours(priors)
    draws = {k: np.sort(hr_draws(f)) for k, f in fits.items() if k[0] in models}
    if thresholds is None:
        lows = [float(hr_summary(d, [0.005])[0]) for d in draws.values() if d.size]
        start = min([0.2, *lows]) if lows else 0.2
        start = max(math.floor(start * 20) / 20, 0.05)
        h = np.linspace(start, 1.2, 241)
    else:
        h = np.asarray(thresholds, float)
    single = is_single(width)
    nrow, ncol = (len(models), 1) if single else (1, len(models))
    height = height or ((0.8 + 1.45 * nrow) if single else 2.5)

    fig = new_figure(width, height)
    axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False).ravel()
    for i, (ax, model) in enumerate(zip(axes, models)):
        ax.axvline(1.0, color=style.NEUTRAL, lw=0.6, zorder=0)
        for yv in (0.5, 0.9):
            ax.axhline(yv, color=style.LIGHT, lw=0.5, ls=(0, (2, 2)), zorder=0)
        if mcid_hr is not None:
            ax.axvline(mcid_hr, color=style.NEUTRAL, lw=0.8, ls=(0, (4, 2)), zorder=1, gid="mcid")
            # On a white patch above the curves: where the label sits (low,
            # left of the line) the curves are all near 0 and lose nothing.
            ax.annotate("MCID", xy=(mcid_hr, 0.03), xycoords=("data", "axes fraction"),
                        xytext=(-2, 0), textcoords="offset points", ha="right", va="bottom",
                        fontsize=6.5 if single else 7, color=style.NEUTRAL, zorder=6,
                        bbox={"fc": "white", "ec": "none", "pad": 0.4})
        for prior in priors:
            if (model, prior) not in draws:
                continue
            d = draws[(model, prior)]
            p = np.searchsorted(d, h, side="left") / d.size
            ax.plot(h, p, color=pcol[prior], lw=1.3, label=style.prior_label(prior))
        ax.set_title(panel_title(model, fig, 1 if single else len(axes)))
        ax.set_xlim(h.min(), h.max())
        ax.set_ylim(0, 1.0)
        ax.xaxis.set_major_locator(MultipleLocator(0.1 if h.max() - h.min() <= 1.2 else 0.2))
        ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_major_locator(MultipleLocator(0.2 if not single else 0.5))
        tv = any(is_time_varying(model, f) for (m, _), f in fits.items() if m == model)
        if not single:
            ax.set_xlabel("Threshold h for the event-weighted average HR" if tv else "HR threshold h")
        elif i == len(models) - 1:
            # One shared axis title for the stack; say how it reads for a TV model.
            any_tv = any(is_time_varying(m, f) for (m, _), f in fits.items() if m in models)
            ax.set_xlabel("HR threshold h" + ("\n(time-varying model: event-weighted average HR)"
                                             if any_tv else ""))
        if single or i == 0:
            ax.set_ylabel("P(HR < h)")
    handles = [Line2D([], [], color=pcol[p], lw=1.3) for p in priors]
    fig.legend(handles, [style.prior_label(p) + " prior" for p in priors],
               loc="outside lower center", ncol=len(priors) if width > 5 else 2)
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    suptitle(fig, f"Probability of benefit, {trt} vs {ref}", width)
    return fig
