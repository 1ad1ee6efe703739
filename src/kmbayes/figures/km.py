"""Figure 1: the reconstructed Kaplan-Meier curves against the published numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MultipleLocator

from .. import style
from ..trial import Trial
from ._common import axis_max, endpoint_label, new_figure, styled, time_label, time_step
from ._draws import arm_ipd, km_curve, primary

RISK_TITLE = "Number at risk (reconstructed)"
"""Title of the at-risk table: its counts come from the reconstructed IPD."""


@styled
def plot_km(
    ipd: Any,
    trial: Trial,
    *,
    risk_every: float | None = None,
    tmax: float | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float | None = None,
) -> Figure:
    """Reconstructed Kaplan-Meier curves against the published numbers.

    One step curve per arm with censoring ticks; the published landmark
    survival estimates with their 95% CIs and the published medians (at
    S = 0.5) with their 95% CIs are overlaid, so any disagreement between
    reconstruction and publication is visible. A numbers-at-risk table sits
    under the time axis: counts from the reconstructed IPD, and under them,
    in italics, the published counts when the trial file has them.

    Parameters
    ----------
    ipd : pandas.DataFrame
        Reconstructed IPD with columns ``time``, ``event``, ``arm``.
    trial : Trial
        The trial (arm names, published landmarks, medians and at-risk
        numbers, time unit).
    risk_every : float, optional
        Spacing of the at-risk table; defaults to the time-axis tick step
        (12 for months), doubled on narrow figures.
    tmax : float, optional
        Right end of the time axis; defaults to the last IPD time, rounded up
        to a tick.
    width : float
        Figure width in inches.
    height : float, optional
        Figure height in inches; default 4.3 (3.4 below 5 in wide).

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the curves, and the at-risk table.
    """
    colours = style.arm_colours(trial.arm_ids)
    ipd = primary(ipd)
    t_last = float(ipd["time"].max())
    narrow = width < 5
    height = height or (3.6 if narrow else 4.3)
    step = risk_every or time_step(trial, tmax or t_last)
    if risk_every is None and (tmax or t_last) / step > width / 0.5:
        # At-risk counts need ~0.5 in each at 7 pt; halve them on narrow figures.
        step *= 2
    xmax = tmax or axis_max(t_last, step)
    published = {a: trial.arms[a].at_risk for a in trial.arm_ids if trial.arms[a].at_risk}

    fig = new_figure(width, height)
    n_arms = len(trial.arm_ids)
    rows_per_arm = 3 if published else 2
    gs = fig.add_gridspec(2, 1, height_ratios=[5.2, 0.3 + 0.25 * rows_per_arm * n_arms])
    ax = fig.add_subplot(gs[0])
    ax_tab = fig.add_subplot(gs[1], sharex=ax)

    ax.axhline(0.5, color=style.LIGHT, lw=0.6, ls=(0, (2, 2)), zorder=0)
    # Published landmark markers sit either side of the landmark so CIs never
    # overlap; medians stay exactly on S = 0.5, where a median is defined.
    offsets = np.linspace(-1, 1, n_arms) * 0.006 * xmax if n_arms > 1 else [0.0]
    y_off = np.linspace(-1, 1, n_arms) * 0.012 if n_arms > 1 else [0.0]
    for i, arm_id in enumerate(trial.arm_ids):
        arm = trial.arms[arm_id]
        c = colours[arm_id]
        t, e = arm_ipd(ipd, arm_id)
        km = km_curve(t, e)
        # Extend the last step to the last follow-up time, as KM software does.
        ts = np.append(km["time"], t.max())
        ss = np.append(km["surv"], km["surv"][-1])
        ax.step(ts, ss, where="post", color=c, lw=1.3, label=f"{arm.name} (n = {arm.n})", zorder=3)
        ax.plot(km["cens_time"], km["cens_surv"], ls="none", marker="|", ms=4, mew=0.8, color=c,
                zorder=3)
        lms = [lm for lm in arm.survival if lm.lower is not None and lm.upper is not None]
        if lms:
            x = np.array([lm.time for lm in lms]) + offsets[i]
            y = np.array([lm.estimate for lm in lms])
            err = np.array([[lm.estimate - lm.lower for lm in lms], [lm.upper - lm.estimate for lm in lms]])
            ax.errorbar(x, y, yerr=err, fmt="o", ms=3.6, mfc="white", mec=c, mew=1.0, ecolor=c,
                        elinewidth=0.9, capsize=2, capthick=0.9, zorder=4)
        bare = [lm for lm in arm.survival if lm.lower is None or lm.upper is None]
        if bare:
            ax.plot([lm.time + offsets[i] for lm in bare], [lm.estimate for lm in bare], "o",
                    ms=3.6, mfc="white", mec=c, mew=1.0, zorder=4)
        if arm.median is not None:
            # The diamond sits exactly on S = 0.5, where a median is read off;
            # only its CI bar is nudged off the line, so two arms' CIs stay apart.
            m = arm.median
            if m.lower is not None and m.upper is not None:
                ax.errorbar([m.estimate], [0.5 + y_off[i]], xerr=[[m.estimate - m.lower], [m.upper - m.estimate]],
                            fmt="none", ecolor=c, elinewidth=0.9, capsize=2, capthick=0.9, zorder=4)
            ax.plot([m.estimate], [0.5], ls="none", marker="D", ms=3.6, mfc=c, mec="white", mew=0.5,
                    zorder=5, gid="published-median")

    ax.set_xlim(0, xmax)
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.yaxis.set_major_locator(MultipleLocator(0.2))
    ax.yaxis.set_minor_locator(MultipleLocator(0.1))
    ax.set_ylabel(f"{endpoint_label(trial)} probability")
    ax.set_xlabel(time_label(trial))
    ax.tick_params(labelbottom=True)

    arm_handles, arm_labels = ax.get_legend_handles_labels()
    pub = [
        Line2D([], [], ls="none", marker="|", ms=5, mew=0.8, color=style.NEUTRAL),
        Line2D([], [], ls="none", marker="o", ms=3.6, mfc="white", mec=style.NEUTRAL),
        Line2D([], [], ls="none", marker="D", ms=3.4, color=style.NEUTRAL),
    ]
    pub_labels = ["Censored (reconstructed)", "Published survival, 95% CI",
                  "Published median, 95% CI"]
    if not narrow:
        ax.legend([Line2D([], [], color=style.NEUTRAL, lw=1.3)] + arm_handles + pub,
                  ["Kaplan-Meier (reconstructed IPD)"] + arm_labels + pub_labels, loc="upper right")
    else:
        # At column width the arm entries would cover the curves; the at-risk
        # table's coloured row headers name the arms instead.
        ax.legend([Line2D([], [], color=style.NEUTRAL, lw=1.3)] + pub,
                  ["Kaplan-Meier (reconstructed)"] + pub_labels, loc="upper right", fontsize=6.5,
                  handlelength=1.2)

    _at_risk_table(ax_tab, ipd, trial, colours, np.arange(0, xmax + 1e-9, step), published, narrow)
    return fig


def _at_risk_table(ax_tab: Any, ipd: Any, trial: Trial, colours: dict, grid: np.ndarray,
                   published: dict, narrow: bool) -> None:
    """Counts of time >= t (the usual convention of KM software) per arm.

    Each arm's name heads its rows rather than sitting to the left, so long
    arm names never squeeze the plot (and the table works at column width).
    Published counts, when the trial file has them, sit in italics under the
    reconstructed ones, at their own times.
    """
    n_arms = len(trial.arm_ids)
    per = 3 if published else 2
    fs = 6.5 if narrow else 7
    ax_tab.set_ylim(-0.6, per * n_arms - 0.4)
    for row, arm_id in enumerate(trial.arm_ids):
        t, _ = arm_ipd(ipd, arm_id)
        top = per * (n_arms - 1 - row) + per - 1
        c = colours[arm_id]
        ax_tab.text(0.0, top, trial.arms[arm_id].name, ha="left", va="center", color=c, fontsize=fs)
        for g in grid:
            ax_tab.text(g, top - 1, f"{int((t >= g).sum())}", ha="center", va="center", color=c,
                        fontsize=fs)
        step = grid[1] - grid[0] if len(grid) > 1 else 1.0
        last = -np.inf
        for a in published.get(arm_id, ()):
            # Published tables are often denser than this one: skip counts that
            # would collide with the previous one.
            if a.time <= grid[-1] + 1e-9 and a.time - last >= 0.45 * step:
                last = a.time
                ax_tab.text(a.time, top - 2, f"{a.n}", ha="center", va="center", color=c,
                            fontsize=fs, style="italic", gid="published-at-risk")
    ax_tab.set_yticks([])
    ax_tab.tick_params(axis="x", length=0, labelbottom=False)
    for sp in ax_tab.spines.values():
        sp.set_visible(False)
    title = RISK_TITLE if not published else "Number at risk (reconstructed; published in italics)"
    ax_tab.set_title(title, fontsize=fs + 0.5, fontweight="bold", loc="left", pad=2)
