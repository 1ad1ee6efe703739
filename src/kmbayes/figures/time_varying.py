"""Figure 5: the HR over time from the time-varying model, against the
constant-HR models."""

from __future__ import annotations

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
    hr_limits,
    is_single,
    log_hr_axis,
    new_figure,
    pick,
    prior_of,
    prior_phrase,
    styled,
    suptitle,
    time_label,
    time_step,
)
from ._draws import hr_draws, hr_time, quantiles


def _data_end(tv_fit: Any) -> tuple[float | None, float | None, int]:
    """(last event time, start of the open last interval, deaths in it).

    The last interval of a piecewise model is open: its HR rests on the few
    deaths after the last cut and says nothing beyond the last of them.
    """
    data = getattr(tv_fit, "data", None)
    if data is None:
        return None, None, 0
    t = np.asarray(data.time, float)
    e = np.asarray(data.event, float) > 0
    if not e.any():
        return None, None, 0
    t_event = float(t[e].max())
    cuts = np.asarray((getattr(tv_fit, "ctx", None) or {}).get("cuts") or (), float)
    cuts = cuts[(cuts > 0) & np.isfinite(cuts)]
    if cuts.size == 0 or cuts.max() >= t_event:
        return t_event, None, 0
    last_cut = float(cuts.max())
    return t_event, last_cut, int((e & (t > last_cut)).sum())


_SUPPORT_COLOUR = {"pinned": style.NEUTRAL, "interpolated": style.LIGHT}


def _support_strip(ax, tv_fit: Any, trial: Trial, xmax: float) -> set[str]:
    """A strip along the bottom of the axes: which intervals published numbers pin.

    An interval is *pinned* when the trial file's numbers fix both arms' curves at
    both its ends (:func:`kmbayes.pinning.interval_support`); inside an
    *interpolated* one the shape is the reconstruction's assumption, and so is the
    HR there. Returns the kinds drawn.
    """
    from ..pinning import interval_support

    cuts = (getattr(tv_fit, "ctx", None) or {}).get("cuts")
    if cuts is None or trial is None or not getattr(trial, "arms", None):
        return set()
    try:
        kinds = interval_support(trial, cuts)
    except (ValueError, AttributeError, TypeError):  # a stand-in trial without published numbers
        return set()
    drawn = set()
    for a, b, kind in zip(cuts[:-1], cuts[1:], kinds):
        if a >= xmax or kind not in _SUPPORT_COLOUR:
            continue
        ax.axvspan(a, min(b, xmax), ymin=0.0, ymax=0.025, color=_SUPPORT_COLOUR[kind], lw=0,
                   zorder=4, gid=f"support-{kind}")
        drawn.add(kind)
    return drawn


@styled
def plot_hr_over_time(
    tv_fit: Any,
    constant_fits: Mapping[str, Any],
    trial: Trial,
    *,
    times: np.ndarray | None = None,
    tmax: float | None = None,
    band_model: str | None = None,
    prior: str | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float | None = None,
) -> Figure:
    """The HR over time from the time-varying model, against constant-HR fits.

    The main panel shows the per-interval HR of the time-varying model as a
    step function (posterior median, 50% and 95% bands) with the constant HR
    of ``band_model`` as a grey horizontal band for comparison; the side panel
    (the lower panel at column width) shows every constant-HR model's HR
    (median, 95% interval). The curve stops at the last death: the open last
    interval is shaded and its number of deaths given, since its HR rests on
    those few deaths alone.

    Parameters
    ----------
    tv_fit : fit or (draws, times)
        The time-varying model, or its HR draws of shape ``(sample, time)`` on
        a time grid.
    constant_fits : mapping
        Model id to a fit, InferenceData or HR draws.
    trial : Trial
        Arm names and time unit.
    times : array, optional
        Evaluation grid for ``tv_fit``; default 300 points (plus the cut
        points) to the last death, else ``tmax``, else 120. Times past the
        last death in the fit's data are dropped.
    tmax : float, optional
        Right end of the default grid when ``tv_fit`` carries no data (with
        data, the curve always ends at the last death).
    band_model : str, optional
        Constant model drawn as the band; default piecewise PH, else Weibull
        PH, else the first.
    prior : str, optional
        Name of the prior set of the fits; default the fits' own, else
        ``"reference"``.
    width : float
        Figure width in inches.
    height : float, optional
        Figure height in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: HR over time, and the constant-HR fits.
    """
    prior = prior_of({"tv": tv_fit, **constant_fits}, prior)
    t_event, open_from, open_deaths = _data_end(tv_fit)
    end = t_event if t_event is not None else tmax
    if times is None:
        t_end = end or 120.0
        times = np.linspace(0.0, t_end, 301)
        # Evaluate exactly at the cut points so every step sits where it should.
        cuts = np.asarray((getattr(tv_fit, "ctx", None) or {}).get("cuts") or (), float)
        times = np.union1d(times, cuts[(cuts > 0) & (cuts < t_end)])
    times = np.asarray(times, float)
    if t_event is not None:
        times = np.union1d(times[times < t_event], [t_event]) if times.max() > t_event else times
    draws, tt = hr_time(tv_fit, times)
    q = quantiles(draws, [0.025, 0.25, 0.5, 0.75, 0.975])
    xmax_raw = float(tt.max())
    step = time_step(trial, xmax_raw)
    xmax = axis_max(xmax_raw, step)
    models = style.order_models(constant_fits)
    const = {m: hr_draws(constant_fits[m]) for m in models}
    band_model = band_model or pick(models, ("piecewise_ph", "weibull_ph"))
    single = is_single(width)
    fs = 6.5 if single else 7
    height = height or (3.9 if single else 3.0)

    fig = new_figure(width, height)
    if single:
        gs = fig.add_gridspec(2, 1, height_ratios=[3.0, 0.45 + 0.28 * max(len(models), 1)])
    else:
        gs = fig.add_gridspec(1, 2, width_ratios=[3.0, 0.55 + 0.3 * max(len(models), 1)])
    ax = fig.add_subplot(gs[0])
    ax_c = fig.add_subplot(gs[1]) if single else fig.add_subplot(gs[1], sharey=ax)
    c = style.EFFECT_COLOUR
    ax.fill_between(tt, q[0], q[4], step="post", color=c, alpha=0.15, lw=0, zorder=1)
    ax.fill_between(tt, q[1], q[3], step="post", color=c, alpha=0.30, lw=0, zorder=1)
    ax.step(tt, q[2], where="post", color=c, lw=1.4, zorder=3, gid="hr-median")
    if open_from is not None and t_event is not None and open_from < xmax_raw:
        ax.axvspan(open_from, t_event, facecolor="none", edgecolor=style.LIGHT, hatch="////",
                   lw=0, zorder=0)
        ax.annotate(f"Open interval:\n{open_deaths} death{'s' if open_deaths != 1 else ''}",
                    xy=((open_from + t_event) / 2, 0.98), xycoords=("data", "axes fraction"),
                    ha="center", va="top", fontsize=fs, color=style.NEUTRAL,
                    bbox={"fc": "white", "ec": "none", "pad": 0.5})
    support = _support_strip(ax, tv_fit, trial, xmax_raw)
    if band_model is not None:
        bq = np.quantile(const[band_model], [0.025, 0.5, 0.975])
        ax.axhspan(bq[0], bq[2], color=style.LIGHT, alpha=0.35, lw=0, zorder=0)
        ax.axhline(bq[1], color=style.NEUTRAL, lw=0.9, ls=(0, (4, 2)), zorder=2)
    ax.axhline(1.0, color="black", lw=0.7, zorder=2)
    ax.set_xlim(0, xmax)
    ax.xaxis.set_major_locator(MultipleLocator(step if not single or xmax / step <= 6 else 2 * step))
    ax.set_xlabel(time_label(trial))
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    ax.set_ylabel("Hazard ratio (log scale)")
    ax.set_title("Time-varying model")

    lo, hi = hr_limits(q[0], q[4], *[np.quantile(d, [0.025, 0.975]) for d in const.values()])
    for i, m in enumerate(models):
        qlo, med, qhi = np.quantile(const[m], [0.025, 0.5, 0.975])
        if single:  # horizontal rows under the main panel
            yi = len(models) - 1 - i
            ax_c.plot([qlo, qhi], [yi, yi], color=style.NEUTRAL, lw=1.2)
            ax_c.plot([med], [yi], "s", ms=4, color=style.NEUTRAL)
        else:
            ax_c.plot([i, i], [qlo, qhi], color=style.NEUTRAL, lw=1.2)
            ax_c.plot([i], [med], "s", ms=4, color=style.NEUTRAL)
    names = [style.model_label(m) for m in models]
    if single:  # row labels share the width with the main panel
        names = [n.replace("Piecewise-exponential", "Piecewise exp.") for n in names]
    if single:
        ax_c.axvline(1.0, color="black", lw=0.7)
        ax_c.set_yticks(range(len(models))[::-1], names, fontsize=fs)
        ax_c.tick_params(axis="y", length=0)
        ax_c.set_ylim(-0.6, len(models) - 0.4)
        log_hr_axis(ax_c, lo, hi, max_ticks=6)
        ax_c.set_xlabel("Constant hazard ratio (log scale)")
    else:
        ax_c.axhline(1.0, color="black", lw=0.7)
        ax_c.set_xticks(range(len(models)))
        # Two-line labels keep the narrow side panel free of rotated text.
        ax_c.set_xticklabels([style.wrap_label(n, 14) for n in names], fontsize=fs)
        ax_c.tick_params(axis="x", length=0)
        ax_c.set_xlim(-0.6, len(models) - 0.4)
        ax_c.tick_params(axis="y", labelleft=False)
        ax_c.set_title("Constant-HR models")
    log_hr_axis(ax, lo, hi, axis="y")
    handles: list[Any] = [
        Line2D([], [], color=c, lw=1.4),
        Patch(color=c, alpha=0.30, lw=0),
        Patch(color=c, alpha=0.15, lw=0),
    ]
    labels = ["Median", "50% interval", "95% interval"]
    if band_model is not None:
        handles.append((Patch(color=style.LIGHT, alpha=0.35, lw=0),
                        Line2D([], [], color=style.NEUTRAL, lw=0.9, ls=(0, (4, 2)))))
        labels.append(f"{style.model_label(band_model)}: constant HR, median and 95% interval")
    for kind, text in (("pinned", "Pinned by published numbers"),
                       ("interpolated", "Interpolated (shape assumed)")):
        if kind in support:
            handles.append(Patch(color=_SUPPORT_COLOUR[kind], lw=0))
            labels.append(text)
    if single:
        labels = [style.wrap_label(lab, 30) for lab in labels]
    fig.legend(handles, labels, loc="outside lower center",
               ncol=2 if single else 3,
               fontsize=fs)
    suptitle(fig, f"Hazard ratio over time, {trt} vs {ref} ({prior_phrase(prior)})", width)
    return fig
