"""Figure 3: the forest plot of the HR across models and prior sets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .. import style
from ..trial import Trial
from ._common import (
    fmt_hr,
    fmt_p,
    hr_limits,
    is_single,
    is_time_varying,
    log_hr_axis,
    new_figure,
    styled,
)
from ._draws import hr_draws, hr_summary

Z95 = 1.959963984540054


@styled
def plot_forest(
    fits: Mapping[tuple[str, str], Any],
    trial: Trial,
    *,
    likelihood: tuple[float, float] | None = None,
    pooled: Mapping[tuple[str, str], Any] | None = None,
    width: float = style.DOUBLE_COLUMN,
) -> Figure:
    """Forest plot of the HR across models and prior sets.

    Rows are grouped by model; each row shows the posterior median and 95%
    credible interval of the HR on a log axis, with the numbers and
    P(HR < 1) in text columns. The published HR, and the Cox estimate from the
    reconstructed IPD if ``likelihood`` is given, head the plot as frequentist
    references. Intervals running past the axis (an HR interval reaching 0 or
    infinity, as a one-patient arm gives) are clipped with an arrow.

    Parameters
    ----------
    fits : mapping
        ``(model, prior)`` to a fit, InferenceData or HR draws.
    trial : Trial
        For arm names and the published HR.
    likelihood : (float, float), optional
        ``(log HR, SE)`` of the Cox model fitted to the reconstructed IPD.
    pooled : mapping, optional
        ``(model, prior)`` to fits pooled over reconstruction replicates; their
        95% intervals are drawn as thin lines just under the primary ones, so
        the cost of reconstruction uncertainty is visible. The text columns
        stay those of the primary fits.
    width : float
        Figure width in inches; the height follows from the number of rows.

    Returns
    -------
    matplotlib.figure.Figure
        Three axes: row labels, the intervals, and the text columns.
    """
    models = style.order_models(m for m, _ in fits)
    priors = style.order_priors(p for _, p in fits)
    pcol = style.prior_colours(priors)
    single = is_single(width)
    fs = 6 if single else 7

    # Rows top to bottom: (label, kind, payload)
    rows: list[tuple[str, str, Any]] = []
    refs = []
    if trial.reported_hr is not None and trial.reported_hr.lower is not None:
        r = trial.reported_hr
        refs.append(("Published (Cox)", (r.estimate, r.lower, r.upper)))
    if likelihood is not None:
        m, se = likelihood
        refs.append(("Reconstructed IPD (Cox)",
                     (math.exp(m), math.exp(m - Z95 * se), math.exp(m + Z95 * se))))
    if refs:
        rows.append(("Frequentist (95% CI)", "header", None))
        rows.extend((label, "ref", est) for label, est in refs)
    all_hr = []
    any_failed = False
    tv_note = False
    for model in models:
        header = style.model_label(model)
        if single:
            header = header.replace("Piecewise-exponential", "Piecewise exp.")
        if any(is_time_varying(model, f) for (m, _), f in fits.items() if m == model):
            header += " *"
            tv_note = True
        rows.append((header, "header", None))
        for prior in priors:
            if (model, prior) not in fits:
                continue
            fit = fits[(model, prior)]
            d = hr_draws(fit)
            est = tuple(float(v) for v in hr_summary(d))
            all_hr.append(np.asarray(est))
            label = style.prior_label(prior)
            if getattr(fit, "gate_passed", True) is False:
                label += " \u2020"
                any_failed = True
            pool = None
            if pooled and (model, prior) in pooled:
                dp = hr_draws(pooled[(model, prior)])
                pool = tuple(float(v) for v in hr_summary(dp))
                all_hr.append(np.asarray(pool))
            rows.append((label, prior, (est, float(np.mean(d < 1)), pool)))

    n = len(rows)
    xlo, xhi = hr_limits(*all_hr, *[np.asarray(p) for _, k, p in rows if k == "ref"], pad=1.12)
    # Whether any interval runs past the axis (then a footnote explains the arrows).
    ends = np.concatenate([np.ravel(a) for a in all_hr] + [np.asarray(p) for _, k, p in rows if k == "ref"]
                          or [np.array([1.0])])
    clipped_any = bool(np.any(~(ends >= xlo)) or np.any(~(ends <= xhi)))
    notes = notes_of(pooled, tv_note, any_failed)
    if clipped_any:
        notes.append("\u25c2 \u25b8 Interval runs past the axis")
    if single:
        fig, (ax_l, ax, ax_t) = _single_forest_axes(width, n, sum(t.count("\n") + 1 for t in notes))
    else:
        fig = new_figure(width, 0.85 + 0.165 * n)
        gs = fig.add_gridspec(1, 3, width_ratios=[1.45, 2.25, 1.4], wspace=0.0)
        ax_l = fig.add_subplot(gs[0])
        ax = fig.add_subplot(gs[1], sharey=ax_l)
        ax_t = fig.add_subplot(gs[2], sharey=ax_l)
    y = np.arange(n)[::-1].astype(float)
    for a in (ax, ax_t):
        # Transparent, so a long model header in the label column may run on.
        a.patch.set_visible(False)

    def interval(lo: float, est: float, hi: float, yi: float, colour: str, lw: float, marker: str,
                 ms: float, mfc: str) -> bool:
        """One interval, clipped to the axis; arrows mark a clipped end."""
        # "not >=" also catches NaN (and 0 or inf map to the axis ends).
        a = xlo if not lo >= xlo else min(lo, xhi)
        b = xhi if not hi <= xhi else max(hi, xlo)
        ax.plot([a, b], [yi, yi], color=colour, lw=lw, solid_capstyle="butt")
        cut = False
        if not lo >= xlo:  # also catches NaN and 0
            ax.plot([xlo], [yi], marker="<", ms=ms, color=colour, clip_on=False, gid="clip-arrow")
            cut = True
        if not hi <= xhi:
            ax.plot([xhi], [yi], marker=">", ms=ms, color=colour, clip_on=False, gid="clip-arrow")
            cut = True
        if np.isfinite(est) and xlo <= est <= xhi:
            ax.plot([est], [yi], marker=marker, ms=ms, color=colour, mfc=mfc, mew=1.0)
        return cut

    for yi, (label, kind, payload) in zip(y, rows):
        if kind == "header":
            ax_l.text(0.0, yi, label, ha="left", va="center", fontweight="bold", fontsize=fs)
            continue
        colour = "black" if kind == "ref" else pcol[kind]
        if single and label.startswith("Reconstructed IPD"):
            label = "Reconstr. IPD (Cox)"
        ax_l.text(0.07 if not single else 0.05, yi, label, ha="left", va="center", fontsize=fs,
                  color=colour)
        if kind == "ref":
            est, lo, hi = payload
            interval(lo, est, hi, yi, style.NEUTRAL, 1.0, "D", 4, "white")
            # A frequentist CI carries no probability statement about the HR.
            ptxt = "\u2013"
        else:
            (est, lo, hi), p1, pool = payload
            y0 = yi + (0.12 if pool else 0.0)
            interval(lo, est, hi, y0, pcol[kind], 1.3, "s", 4, pcol[kind])
            if pool:
                interval(pool[1], pool[0], pool[2], yi - 0.2, pcol[kind], 0.7, "s", 2.6,
                                    "white")
            ptxt = fmt_p(p1)
        ax_t.text(0.04, yi, f"{fmt_hr(est)} ({fmt_hr(lo)}\u2013{fmt_hr(hi)})", ha="left",
                  va="center", fontsize=fs)
        ax_t.text(0.98, yi, ptxt, ha="right", va="center", fontsize=fs)
    ax.set_ylim(-0.6, n - 0.4)
    ax.axvline(1.0, color=style.NEUTRAL, lw=0.6, zorder=0)
    # Faint bands separate the model groups, which reads better than rules.
    band = False
    for yi, (_, kind, _) in zip(y, rows):
        if kind == "header":
            band = not band
        if band:
            for a in (ax_l, ax, ax_t):
                a.axhspan(yi - 0.5, yi + 0.5, color="#F0F0F0", zorder=-1, lw=0)
    log_hr_axis(ax, xlo, xhi, max_ticks=5 if single else 7)
    ax.tick_params(axis="y", left=False, labelleft=False)
    ax.spines["left"].set_visible(False)
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    ax.set_xlabel("Hazard ratio (log scale)", labelpad=13 if not single else 2)
    _favours(fig, ax, ax_l, trt, ref, fs, single)
    for a in (ax_l, ax_t):
        a.set_xlim(0, 1)
        a.axis("off")
    if notes and single:
        fig.text(0.015, 0.01, "\n".join(notes), ha="left", va="bottom", fontsize=fs,
                 color=style.NEUTRAL)
    elif notes:
        ax_l.text(0.0, -0.02, "\n".join(notes), transform=ax_l.transAxes, ha="left", va="top",
                  fontsize=fs, color=style.NEUTRAL)
    hr_head = "HR (95%)" if single else "HR (95% interval)"
    for a, x, txt, ha in ((ax_l, 0.0, "Model / prior", "left"), (ax_t, 0.04, hr_head, "left"),
                          (ax_t, 0.98, "P(HR < 1)", "right")):
        a.text(x, 1.0, txt, transform=a.transAxes, ha=ha, va="bottom", fontsize=fs, fontweight="bold")
    return fig


def notes_of(pooled: Any, tv_note: bool, any_failed: bool) -> list[str]:
    """Footnotes of the forest plot (one entry may span two lines)."""
    notes = []
    if pooled:
        notes.append("Thin lines: pooled over reconstruction\nreplicates (95% interval)")
    if tv_note:
        notes.append("* HR = event-weighted average HR\n   (log HRs weighted by deaths)")
    if any_failed:
        notes.append("\u2020 Failed the convergence gate\n   (R-hat, ESS or divergences)")
    return notes


def _single_forest_axes(width: float, n_rows: int, note_lines: int) -> tuple[Figure, tuple]:
    """The three forest columns at column width, placed in inches.

    Constrained layout cannot place them: the row texts deliberately fill
    their columns edge to edge, which it reads as overflow and collapses the
    axes. Fixed margins (in inches, for 6 pt text) are also cheaper.
    """
    row_h = 0.155
    # Below the axes: ticks and axis title (0.35 in), two "favours" lines
    # (0.25 in), then the footnotes at ~0.1 in a line.
    top, bottom = 0.2, 0.66 + 0.1 * note_lines + (0.04 if note_lines else 0.0)
    height = top + bottom + row_h * n_rows
    fig = new_figure(width, height)
    fig.set_layout_engine("none")
    cols = (0.05, 1.12), (1.17, 1.12), (2.32, width - 2.32 - 0.04)
    y0, h = bottom / height, row_h * n_rows / height
    ax_l = fig.add_axes((cols[0][0] / width, y0, cols[0][1] / width, h))
    ax = fig.add_axes((cols[1][0] / width, y0, cols[1][1] / width, h), sharey=ax_l)
    ax_t = fig.add_axes((cols[2][0] / width, y0, cols[2][1] / width, h), sharey=ax_l)
    return fig, (ax_l, ax, ax_t)


def _favours(fig: Figure, ax: Any, ax_l: Any, trt: str, ref: str, fs: float, single: bool) -> None:
    """"Favours" labels either side of HR = 1.

    At full width they hang under the tick labels and may run past the axes
    into the empty space below the text columns, so they stay out of the
    layout calculation. At column width there is no such room: they become
    one line above the axis title.
    """
    if single:
        # Under the axis title, centred on the figure: the arm names are longer
        # than the axis is wide.
        lines = (f"\u2190 Favours {trt}", f"Favours {ref} \u2192")
        txt = "\n".join(style.wrap_label(t, 60) for t in lines)
        ax.annotate(txt, xy=(0.5, 0.0), xycoords=("figure fraction", "axes fraction"),
                    xytext=(0, -25), textcoords="offset points", ha="center", va="top", fontsize=fs,
                    color=style.NEUTRAL, annotation_clip=False, linespacing=1.25)
        return
    for txt, ha, dx in ((f"\u2190 Favours {trt}", "right", -4), (f"Favours {ref} \u2192", "left", 4)):
        t = ax.annotate(txt, xy=(1.0, 0.0), xycoords=("data", "axes fraction"), xytext=(dx, -17),
                        textcoords="offset points", ha=ha, va="top", fontsize=fs,
                        color=style.NEUTRAL, annotation_clip=False)
        t.set_in_layout(False)
