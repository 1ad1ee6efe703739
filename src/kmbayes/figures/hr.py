"""Figures of the hazard ratio across prior sets: the triplot (figure 2), the
forest plot (figure 3) and the probability of benefit (figure 6)."""

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
    fmt_p,
    hr_draws,
    hr_limits,
    hr_summary,
    is_single,
    is_time_varying,
    log_hr_axis,
    new_figure,
    p_relation,
    panel_title,
    prior_mu_sigma,
    short,
    styled,
    suptitle,
)

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


# --------------------------------------------------------------------------- figure 3


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
        notes.append("* HR = exp(mean of the interval log HRs)")
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
            ax.set_xlabel("Threshold h for exp(mean log HR)" if tv else "HR threshold h")
        elif i == len(models) - 1:
            # One shared axis title for the stack; say how it reads for a TV model.
            any_tv = any(is_time_varying(m, f) for (m, _), f in fits.items() if m in models)
            ax.set_xlabel("HR threshold h" + ("\n(time-varying model: h for exp(mean log HR))"
                                             if any_tv else ""))
        if single or i == 0:
            ax.set_ylabel("P(HR < h)")
    handles = [Line2D([], [], color=pcol[p], lw=1.3) for p in priors]
    fig.legend(handles, [style.prior_label(p) + " prior" for p in priors],
               loc="outside lower center", ncol=len(priors) if width > 5 else 2)
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    suptitle(fig, f"Probability of benefit, {trt} vs {ref}", width)
    return fig
