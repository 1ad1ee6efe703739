"""Per-model survival figures: posterior survival curves over the
reconstructed KM (figure 4) and the RMST difference by horizon (figure 7)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from .. import style
from ..trial import Trial
from ._common import (
    axis_max,
    endpoint_label,
    is_single,
    new_figure,
    panel_title,
    prior_of,
    prior_phrase,
    styled,
    suptitle,
    time_label,
    time_step,
)
from ._draws import arm_ipd, km_curve, km_rmst, primary, quantiles, rmst_diff, survival


def _grid_shape(n: int, single: bool) -> tuple[int, int]:
    """Panels: stacked at column width; else one row up to three, then 2 wide."""
    if single:
        return n, 1
    ncol = n if n <= 3 else 2
    return math.ceil(n / ncol), ncol


@styled
def plot_posterior_survival(
    fits: Mapping[str, Any],
    ipd: Any,
    trial: Trial,
    *,
    times: np.ndarray | None = None,
    prior: str | None = None,
    width: float = style.DOUBLE_COLUMN,
    panel_height: float | None = None,
) -> Figure:
    """Posterior survival curves (median, 95% band) over the reconstructed KM.

    A posterior predictive check: each model's fitted survival in each arm,
    against the Kaplan-Meier curve of the data it was fitted to. One panel
    per model, all under one prior set, which the title names.

    Parameters
    ----------
    fits : mapping
        Model id to a fit, or to precomputed ``{arm: (draws, times)}``.
    ipd : pandas.DataFrame
        Reconstructed IPD (``time``, ``event``, ``arm``).
    trial : Trial
        Arm names and time unit.
    times : array, optional
        Evaluation grid; default 150 points from 0 to the last IPD time.
    prior : str, optional
        Name of the prior set of ``fits``; default the fits' own, else
        ``"reference"``.
    width : float
        Figure width in inches; below 5 in the panels are stacked.
    panel_height : float, optional
        Height per row of panels, inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    models = style.order_models(fits)
    prior = prior_of(fits, prior)
    colours = style.arm_colours(trial.arm_ids)
    ipd = primary(ipd)
    t_last = float(ipd["time"].max())
    step = time_step(trial, t_last)
    xmax = axis_max(t_last, step)
    if times is None:
        # Survival curves are smooth (piecewise: kinked at the cuts, which a
        # 1-month spacing resolves); 150 points are plenty at print size.
        times = np.linspace(0.0, t_last, 150)
    kms = {a: km_curve(*arm_ipd(ipd, a)) for a in trial.arm_ids}
    last = {a: float(arm_ipd(ipd, a)[0].max()) for a in trial.arm_ids}
    single = is_single(width)
    nrow, ncol = _grid_shape(len(models), single)
    if width / ncol < 3.0 or single:
        step = max(step, 2 * step if step < 24 else step)
    panel_height = panel_height or (1.55 if single else 2.2)
    fig_w = width if (ncol > 1 or single) else style.SINGLE_COLUMN * 1.3
    fig = new_figure(fig_w, (1.1 if single else 0.75) + panel_height * nrow)
    axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, model in zip(axes, models):
        surv = survival(fits[model], np.asarray(times, float))
        for arm_id in trial.arm_ids:
            c = colours[arm_id]
            km = kms[arm_id]
            ax.step(np.append(km["time"], last[arm_id]), np.append(km["surv"], km["surv"][-1]),
                    where="post", color=c, lw=0.9, alpha=0.9, zorder=3)
            draws, tt = surv[arm_id]
            q = quantiles(draws, [0.025, 0.5, 0.975])
            ax.fill_between(tt, q[0], q[2], color=c, alpha=0.18, lw=0, zorder=1)
            ax.plot(tt, q[1], color=c, lw=1.2, ls=(0, (4, 1.5)), zorder=2)
        ax.set_title(panel_title(model, fig, 1 if single else len(axes)))
        ax.set_xlim(0, xmax)
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.yaxis.set_major_locator(MultipleLocator(0.2 if not single else 0.5))
    for ax in axes[len(models):]:
        ax.set_visible(False)
    for ax in axes.reshape(nrow, ncol)[:, 0]:
        ax.set_ylabel("Survival" if single else f"{endpoint_label(trial)} probability")
    for i, ax in enumerate(axes[: len(models)]):
        # Label the bottom panel of each column, including a short last column.
        if i + ncol >= len(models):
            ax.set_xlabel(time_label(trial))
            ax.tick_params(labelbottom=True)
    handles = [Patch(color=colours[a], alpha=0.8) for a in trial.arm_ids] + [
        Line2D([], [], color=style.NEUTRAL, lw=0.9),
        Line2D([], [], color=style.NEUTRAL, lw=1.2, ls=(0, (4, 1.5))),
        Patch(color=style.NEUTRAL, alpha=0.18, lw=0),
    ]
    labels = [trial.arms[a].name for a in trial.arm_ids] + [
        "Kaplan-Meier (reconstructed IPD)", "Posterior median", "95% credible band"
    ]
    # Three columns fill column-wise: arms | KM and median | band.
    fig.legend(handles, labels, loc="outside lower center", ncol=3 if fig_w > 6 else 2,
               fontsize=6.5 if single else 7)
    suptitle(fig, f"Posterior survival by model ({prior_phrase(prior)})", fig_w)
    return fig


@styled
def plot_rmst_difference(
    fits: Mapping[str, Any],
    trial: Trial,
    *,
    horizons: np.ndarray | None = None,
    ipd: Any = None,
    prior: str | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float | None = None,
) -> Figure:
    """Difference in restricted mean survival time against the horizon.

    RMST(treatment) - RMST(reference) up to each horizon: posterior median
    and 95% band, one panel per model (stacked at column width); the
    reconstructed KM difference is overlaid when ``ipd`` is given.

    Parameters
    ----------
    fits : mapping
        Model id to a fit, or to precomputed ``(draws, horizons)`` with draws
        of shape ``(sample, horizon)``.
    trial : Trial
        Arm names and time unit.
    horizons : array, optional
        Horizons; default every 6 units from 12 to 120.
    ipd : pandas.DataFrame, optional
        Reconstructed IPD for the KM-based difference.
    prior : str, optional
        Name of the prior set of ``fits``; default the fits' own, else
        ``"reference"``.
    width : float
        Figure width in inches.
    height : float, optional
        Figure height in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    models = style.order_models(fits)
    prior = prior_of(fits, prior)
    if horizons is None:
        horizons = np.arange(12.0, 120.0 + 1e-9, 6.0)
    horizons = np.asarray(horizons, float)
    c = style.EFFECT_COLOUR
    km_diff = None
    if ipd is not None:
        kms = {a: km_curve(*arm_ipd(ipd, a)) for a in trial.arm_ids}
        hk = np.linspace(horizons.min(), horizons.max(), 200)
        km_diff = (hk, km_rmst(kms[trial.treatment_arm], hk) - km_rmst(kms[trial.reference_arm], hk))
    single = is_single(width)
    nrow, ncol = (len(models), 1) if single else (1, len(models))
    height = height or ((1.0 + 1.35 * nrow) if single else 2.4)

    fig = new_figure(width, height)
    axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False).ravel()
    step = time_step(trial, float(horizons.max()))
    for i, (ax, model) in enumerate(zip(axes, models)):
        d, hh = rmst_diff(fits[model], trial, horizons)
        q = quantiles(d, [0.025, 0.5, 0.975])
        ax.axhline(0.0, color="black", lw=0.7, zorder=0)
        ax.fill_between(hh, q[0], q[2], color=c, alpha=0.2, lw=0)
        ax.plot(hh, q[1], color=c, lw=1.4)
        if km_diff is not None:
            ax.plot(*km_diff, color=style.NEUTRAL, lw=0.9, ls=(0, (1.5, 1.2)))
        ax.set_title(panel_title(model, fig, 1 if single else len(axes)))
        ax.set_xlim(0, axis_max(float(hh.max()), step))
        ax.xaxis.set_major_locator(MultipleLocator(step if step >= 24 else 2 * step))
        if not single or i == len(models) - 1:
            ax.set_xlabel(f"Horizon ({trial.time_unit})")
            ax.tick_params(labelbottom=True)
        if single or i == 0:
            ax.set_ylabel(f"\u0394RMST ({trial.time_unit})" if single
                          else f"RMST difference ({trial.time_unit})")
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    handles = [Line2D([], [], color=c, lw=1.4), Patch(color=c, alpha=0.2, lw=0)]
    labels = ["Posterior median", "95% credible band"]
    if km_diff is not None:
        handles.append(Line2D([], [], color=style.NEUTRAL, lw=0.9, ls=(0, (1.5, 1.2))))
        labels.append("Kaplan-Meier (reconstructed)")
    fig.legend(handles, labels, loc="outside lower center", ncol=2 if single else len(handles),
               fontsize=6.5 if single else 7)
    suptitle(fig, f"Restricted mean survival time, {trt} minus {ref} ({prior_phrase(prior)})", width)
    return fig
