"""The figures of the reanalysis, as functions that return matplotlib Figures.

Each ``plot_*`` function takes data (reconstructed IPD, posterior draws or
fits) and the :class:`~kmbayes.trial.Trial`, and returns a
:class:`matplotlib.figure.Figure` drawn at print size, so notebooks and the
report share one implementation. :func:`save_figure` writes PNG and PDF
atomically and :func:`draw_all` writes the report's eight figures.

Figures are built on :class:`~matplotlib.figure.Figure` with an Agg canvas
rather than through ``pyplot``: nothing here touches the interactive backend
or pyplot's global figure registry, so drawing many figures in a batch leaks
no memory and never needs a display.

Posterior inputs are accepted in two forms. A *fit* (anything with an
``idata`` attribute, such as :class:`~kmbayes.fitting.FitResult`) is turned
into draws with :mod:`kmbayes.estimands`; an already computed value (an
array of HR draws, or the ``(draws, times)`` tuples that :mod:`estimands`
returns) is used as given. Tests and notebooks can thus draw any figure from
synthetic draws without fitting anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, MultipleLocator, NullFormatter, NullLocator

from . import style
from .io import atomic_path
from .km import km as km_fit
from .trial import Trial

__all__ = [
    "FIGURE_STEMS",
    "draw_all",
    "plot_diagnostics",
    "plot_forest",
    "plot_hr_over_time",
    "plot_hr_triplot",
    "plot_km",
    "plot_posterior_survival",
    "plot_prob_benefit",
    "plot_rmst_difference",
    "save_figure",
]

FIGURE_STEMS = (
    "fig1_km_reconstruction",
    "fig2_hr_triplot",
    "fig3_forest",
    "fig4_posterior_survival",
    "fig5_hr_over_time",
    "fig6_prob_benefit",
    "fig7_rmst_difference",
    "fig8_diagnostics",
)
"""File stems written by :func:`draw_all`, in figure order."""

_HR_TICK_SETS = (
    (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
    (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    (0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0),
    (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0),
    (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4),
)


# --------------------------------------------------------------------------- plumbing


def _styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw under the house rc settings without changing the caller's rcParams."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(style.RC):
            return fn(*args, **kwargs)

    return wrapper


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    # Constrained layout pads tight by default; a little air reads better in print.
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.04, hspace=0.04)
    return fig


def save_figure(fig: Figure, outdir: str | Path, stem: str, *, dpi: int = style.DPI) -> list[Path]:
    """Write ``fig`` as ``outdir/stem.png`` and ``outdir/stem.pdf``, atomically.

    Each file is written to a temporary sibling and renamed into place, so a
    reader never sees a half-written figure.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save.
    outdir : str or Path
        Directory; created if missing.
    stem : str
        File name without extension.
    dpi : int, default 300
        PNG resolution (at least 200).

    Returns
    -------
    list of Path
        The PNG and PDF paths.
    """
    if dpi < 200:
        raise ValueError(f"dpi must be >= 200 for print, got {dpi}")
    outdir = Path(outdir)
    paths = []
    with mpl.rc_context(style.RC):
        for ext in ("png", "pdf"):
            path = outdir / f"{stem}.{ext}"
            with atomic_path(path) as tmp:
                # PDF metadata dates would make every rebuild differ byte-wise.
                meta = {"CreationDate": None} if ext == "pdf" else {"Software": None}
                fig.savefig(tmp, format=ext, dpi=dpi, metadata=meta)
            paths.append(path)
    return paths


def _time_label(trial: Trial) -> str:
    return f"Time ({trial.time_unit})"


def _endpoint_label(trial: Trial) -> str:
    ep = trial.endpoint or "survival"
    return ep[0].upper() + ep[1:]


def _nice_step(span: float) -> float:
    """A tick step for a time axis: 12 for months-scale spans, else 1-2-5."""
    if span <= 0:
        return 1.0
    raw = span / 8
    for base in (1, 2, 3, 6, 12, 24, 36, 48, 60, 120):
        if base >= raw:
            return float(base)
    mag = 10 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def _time_step(trial: Trial, tmax: float) -> float:
    # Months read best in years; other units get a generic 1-2-5 step.
    if trial.time_unit.lower().startswith("month") and tmax >= 36:
        return 12.0 if tmax <= 180 else 24.0
    return _nice_step(tmax)


def _axis_max(tmax: float, step: float) -> float:
    return step * math.ceil(tmax / step - 1e-9)


def _log_hr_axis(ax: Any, lo: float, hi: float, *, axis: str = "x") -> None:
    """A log-scale HR axis with plain-number ticks (0.5, 1, 2 rather than 10^x)."""
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(lo, hi)
    # The densest familiar tick set that fits without crowding (at most 7 labels).
    # Prefer sets whose end ticks come near both limits, so no long stretch
    # of axis is left unlabelled.
    ticks: list[float] = []
    best = (False, 0)
    for cand in _HR_TICK_SETS:
        inside = [t for t in cand if lo <= t <= hi]
        if not inside or len(inside) > 7:
            continue
        covers = inside[0] <= lo * 1.6 and inside[-1] >= hi / 1.6
        if (covers, len(inside)) > best:
            best, ticks = (covers, len(inside)), inside
    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(FixedLocator(ticks))
    a.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_locator(NullLocator())
    a.set_minor_formatter(NullFormatter())


def _hr_limits(*arrays: np.ndarray, pad: float = 1.15) -> tuple[float, float]:
    vals = np.concatenate([np.ravel(a) for a in arrays if a is not None and np.size(a)])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lo, hi = float(np.min(vals)), float(np.max(vals))
    lo, hi = min(lo, 1.0) / pad, max(hi, 1.0) * pad
    return lo, hi


# --------------------------------------------------------------------------- data access


def _km(time: np.ndarray, event: np.ndarray) -> dict[str, np.ndarray]:
    """Kaplan-Meier step function (from :mod:`kmbayes.km`) with censoring ticks."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    fit = km_fit(time, event)
    keep = (fit.d > 0) | (fit.time == 0)  # the curve only changes at deaths
    t_step, s_step = fit.time[keep], fit.surv[keep]
    if s_step[0] < 1.0:  # start the step function at (0, 1), even with deaths at time 0
        t_step, s_step = np.concatenate([[0.0], t_step]), np.concatenate([[1.0], s_step])
    cens = np.sort(time[~event])
    return {"time": t_step, "surv": s_step, "cens_time": cens, "cens_surv": np.asarray(fit.survival(cens), float)}


def _km_rmst(km: dict[str, np.ndarray], horizon: float) -> float:
    t = np.append(km["time"][km["time"] < horizon], horizon)
    s = km["surv"][: len(t) - 1]
    return float(np.sum(np.diff(t) * s))


def _primary(ipd: Any) -> Any:
    """The first reconstruction replicate if the IPD holds several.

    Pooling replicates would draw one KM curve from K copies of each patient,
    which overstates the at-risk numbers K-fold.
    """
    if "replicate" in getattr(ipd, "columns", ()):
        return ipd[ipd["replicate"] == ipd["replicate"].min()]
    return ipd


def _arm_ipd(ipd: Any, arm: str) -> tuple[np.ndarray, np.ndarray]:
    ipd = _primary(ipd)
    sub = ipd[ipd["arm"] == arm]
    if len(sub) == 0:
        raise ValueError(f"the IPD has no rows for arm {arm!r}")
    return sub["time"].to_numpy(float), sub["event"].to_numpy().astype(int)


def _is_fit(obj: Any) -> bool:
    return hasattr(obj, "idata")


def _idata(obj: Any) -> Any:
    return obj.idata if _is_fit(obj) else obj


def _hr_draws(obj: Any) -> np.ndarray:
    """Flattened HR draws from an array (HR scale), an InferenceData or a fit.

    A fit goes through :func:`kmbayes.estimands.hr_draws`, which knows what
    "the" HR of each model is. A bare InferenceData is read directly:
    ``log_hr`` if it is scalar per draw, else ``log_hr_mean`` (time-varying
    models).
    """
    if _is_fit(obj):
        from . import estimands

        return np.asarray(estimands.hr_draws(obj), float).ravel()
    if "posterior" in getattr(obj, "children", {}):
        post = obj["posterior"]
        for name in ("log_hr", "log_hr_mean"):
            if name in post and post[name].ndim == 2:
                return np.exp(post[name].values.ravel())
        if "hr" in post and post["hr"].ndim == 2:
            return post["hr"].values.ravel()
        raise ValueError("posterior has no scalar 'log_hr', 'log_hr_mean' or 'hr'")
    return np.asarray(obj, float).ravel()


def _draws_times(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    draws, times = obj
    draws = np.asarray(draws, float)
    if draws.ndim > 2:  # (chain, draw, time) -> (sample, time)
        draws = draws.reshape(-1, draws.shape[-1])
    return draws, np.asarray(times, float)


def _survival(obj: Any, times: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if _is_fit(obj):
        from . import estimands

        obj = estimands.survival_draws(obj, times)
    return {arm: _draws_times(v) for arm, v in obj.items()}


def _hr_time(obj: Any, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if _is_fit(obj):
        from . import estimands

        obj = estimands.hr_over_time(obj, times)
    return _draws_times(obj)


def _rmst_diff(obj: Any, trial: Trial, horizons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMST difference draws (treatment - reference), shape (sample, horizon).

    For a fit, survival is evaluated once on a fine grid (with the model's cut
    points, where piecewise curves kink) and integrated cumulatively by the
    trapezoid rule -- the rule :func:`kmbayes.estimands.rmst_draws` uses, but
    one pass for all horizons instead of one per horizon.
    """
    if not _is_fit(obj):
        return _draws_times(obj)
    from scipy.integrate import cumulative_trapezoid

    horizons = np.asarray(horizons, float)
    grid = np.linspace(0.0, float(horizons.max()), 1201)
    cuts = np.asarray((getattr(obj, "ctx", None) or {}).get("cuts") or (), float)
    grid = np.union1d(grid, np.concatenate([cuts[(cuts > 0) & (cuts < grid[-1])], horizons]))
    surv = _survival(obj, grid)
    area = {
        arm: cumulative_trapezoid(d, t, axis=1, initial=0.0) for arm, (d, t) in surv.items()
    }
    idx = np.searchsorted(grid, horizons)
    diff = area[trial.treatment_arm][:, idx] - area[trial.reference_arm][:, idx]
    return diff, horizons


def _prior_mu_sigma(spec: Any) -> tuple[float, float]:
    if hasattr(spec, "mu") and hasattr(spec, "sigma"):
        return float(spec.mu), float(spec.sigma)
    mu, sigma = spec
    return float(mu), float(sigma)


def _quantiles(draws: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    return np.quantile(draws, qs, axis=0)


def _fmt_p(p: float) -> str:
    """A probability to two decimals; never 1.00 or 0.00 from a finite sample."""
    if p >= 0.995:
        return ">0.99"
    if p < 0.005:
        return "<0.01"
    return f"{p:.2f}"


def _short(x: float) -> str:
    """2-decimal number without trailing zeros: 0, -0.36, 10, 0.22."""
    txt = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if txt in ("-0", "") else txt


def _p_relation(p: float) -> str:
    """``"= 0.93"``, or ``"> 0.99"`` / ``"< 0.01"`` at the extremes."""
    txt = _fmt_p(p)
    return f"{txt[0]} {txt[1:]}" if txt[0] in "<>" else f"= {txt}"


# --------------------------------------------------------------------------- figure 1


@_styled
def plot_km(
    ipd: Any,
    trial: Trial,
    *,
    risk_every: float | None = None,
    tmax: float | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float = 4.3,
) -> Figure:
    """Reconstructed Kaplan-Meier curves against the published numbers.

    One step curve per arm with censoring ticks; the published landmark
    survival estimates with their 95% CIs and the published medians with
    their 95% CIs are overlaid, so any disagreement between reconstruction and
    publication is visible. A numbers-at-risk table (from the IPD) sits under
    the time axis.

    Parameters
    ----------
    ipd : pandas.DataFrame
        Reconstructed IPD with columns ``time``, ``event``, ``arm``.
    trial : Trial
        The trial (arm names, published landmarks and medians, time unit).
    risk_every : float, optional
        Spacing of the at-risk table; defaults to the time-axis tick step
        (12 for months).
    tmax : float, optional
        Right end of the time axis; defaults to the last IPD time, rounded up
        to a tick.
    width, height : float
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the curves, and the at-risk table.
    """
    colours = style.arm_colours(trial.arm_ids)
    ipd = _primary(ipd)
    t_last = float(ipd["time"].max())
    step = risk_every or _time_step(trial, tmax or t_last)
    if risk_every is None and (tmax or t_last) / step > width / 0.5:
        # At-risk counts need ~0.5 in each at 7 pt; halve them on narrow figures.
        step *= 2
    xmax = tmax or _axis_max(t_last, step)

    fig = _new_figure(width, height)
    n_arms = len(trial.arm_ids)
    gs = fig.add_gridspec(2, 1, height_ratios=[5.2, 0.3 + 0.5 * n_arms])
    ax = fig.add_subplot(gs[0])
    ax_tab = fig.add_subplot(gs[1], sharex=ax)

    ax.axhline(0.5, color=style.LIGHT, lw=0.6, ls=(0, (2, 2)), zorder=0)
    # Published markers sit either side of the landmark so CIs never overlap.
    offsets = np.linspace(-1, 1, n_arms) * 0.006 * xmax if n_arms > 1 else [0.0]
    y_off = np.linspace(-1, 1, n_arms) * 0.018 if n_arms > 1 else [0.0]
    for i, arm_id in enumerate(trial.arm_ids):
        arm = trial.arms[arm_id]
        c = colours[arm_id]
        t, e = _arm_ipd(ipd, arm_id)
        km = _km(t, e)
        # Extend the last step to the last follow-up time, as KM software does.
        ts = np.append(km["time"], t.max())
        ss = np.append(km["surv"], km["surv"][-1])
        ax.step(ts, ss, where="post", color=c, lw=1.3, label=f"{arm.name} (n = {arm.n})", zorder=3)
        ax.plot(
            km["cens_time"], km["cens_surv"], ls="none", marker="|", ms=4, mew=0.8, color=c, zorder=3
        )
        lms = [lm for lm in arm.survival if lm.lower is not None and lm.upper is not None]
        if lms:
            x = np.array([lm.time for lm in lms]) + offsets[i]
            y = np.array([lm.estimate for lm in lms])
            err = np.array([[lm.estimate - lm.lower for lm in lms], [lm.upper - lm.estimate for lm in lms]])
            ax.errorbar(
                x, y, yerr=err, fmt="o", ms=3.6, mfc="white", mec=c, mew=1.0, ecolor=c,
                elinewidth=0.9, capsize=2, capthick=0.9, zorder=4,
            )
        bare = [lm for lm in arm.survival if lm.lower is None or lm.upper is None]
        if bare:
            ax.plot([lm.time + offsets[i] for lm in bare], [lm.estimate for lm in bare], "o",
                    ms=3.6, mfc="white", mec=c, mew=1.0, zorder=4)
        if arm.median is not None:
            m = arm.median
            xerr = None
            if m.lower is not None and m.upper is not None:
                xerr = [[m.estimate - m.lower], [m.upper - m.estimate]]
            ax.errorbar(
                [m.estimate], [0.5 + y_off[i]], xerr=xerr, fmt="D", ms=3.4, mfc=c, mec=c,
                ecolor=c, elinewidth=0.9, capsize=2, capthick=0.9, zorder=4,
            )

    ax.set_xlim(0, xmax)
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.yaxis.set_major_locator(MultipleLocator(0.2))
    ax.yaxis.set_minor_locator(MultipleLocator(0.1))
    ax.set_ylabel(f"{_endpoint_label(trial)} probability")
    ax.set_xlabel(_time_label(trial))
    ax.tick_params(labelbottom=True)

    arm_handles, arm_labels = ax.get_legend_handles_labels()
    pub = [
        Line2D([], [], ls="none", marker="|", ms=5, mew=0.8, color=style.NEUTRAL),
        Line2D([], [], ls="none", marker="o", ms=3.6, mfc="white", mec=style.NEUTRAL),
        Line2D([], [], ls="none", marker="D", ms=3.4, color=style.NEUTRAL),
    ]
    pub_labels = ["Censored", "Published survival, 95% CI", "Published median, 95% CI"]
    if width >= 5:
        ax.legend(arm_handles + pub, arm_labels + pub_labels, loc="upper right")
    else:
        # At column width the arm entries would cover the curves; the at-risk
        # table's coloured row headers name the arms instead.
        ax.legend(pub, pub_labels, loc="upper right")

    # At-risk table: counts of time >= t, the usual convention of KM software.
    # Each arm's name heads its row rather than sitting to the left, so long
    # arm names never squeeze the plot (and the table works at column width).
    grid = np.arange(0, xmax + 1e-9, step)
    ax_tab.set_ylim(-0.6, 2 * n_arms - 0.4)
    for row, arm_id in enumerate(trial.arm_ids):
        t, _ = _arm_ipd(ipd, arm_id)
        y = 2 * (n_arms - 1 - row)
        c = colours[arm_id]
        ax_tab.text(0.0, y + 1, trial.arms[arm_id].name, ha="left", va="center", color=c, fontsize=7)
        for g in grid:
            ax_tab.text(g, y, f"{int((t >= g).sum())}", ha="center", va="center", color=c, fontsize=7)
    ax_tab.set_yticks([])
    ax_tab.tick_params(axis="x", length=0, labelbottom=False)
    for sp in ax_tab.spines.values():
        sp.set_visible(False)
    ax_tab.set_title("Number at risk", fontsize=7.5, fontweight="bold", loc="left", pad=2)
    return fig


# --------------------------------------------------------------------------- figure 2


@_styled
def plot_hr_triplot(
    posteriors: Mapping[str, Any],
    priors: Mapping[str, Any],
    trial: Trial,
    *,
    likelihood: tuple[float, float] | None = None,
    model: str | None = None,
    hr_range: tuple[float, float] | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float = 2.4,
) -> Figure:
    """Prior, likelihood and posterior of the HR: one panel per prior set.

    Densities are of the log HR, drawn on a log-scaled HR axis, so a normal
    prior or likelihood appears symmetric and the panels compare directly. The
    posterior area below HR = 1 is shaded and P(HR < 1) printed.

    Parameters
    ----------
    posteriors : mapping
        Prior name to posterior (a fit, an InferenceData, or HR draws).
    priors : mapping
        Prior name to its log-HR prior: a ``PriorSpec`` (``mu``, ``sigma``) or a
        ``(mu, sigma)`` tuple.
    trial : Trial
        For arm names in the axis label.
    likelihood : (float, float), optional
        The data's normal approximation ``(log HR, SE)`` (e.g. the Cox fit to
        the reconstructed IPD); drawn as a normalised density.
    model : str, optional
        Model id, for the figure title.
    hr_range : (float, float), optional
        HR axis limits; default 0.2-2.5 widened to fit the posteriors.
    width, height : float
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per prior set, sharing both axes.
    """
    from scipy.stats import gaussian_kde

    names = style.order_priors(posteriors)
    pcol = style.prior_colours(names)
    draws = {p: _hr_draws(posteriors[p]) for p in names}
    qs = {p: np.quantile(d, [0.005, 0.995]) for p, d in draws.items()}
    if hr_range is None:
        lo = min(0.2, *(q[0] for q in qs.values()))
        hi = max(2.5, *(q[1] for q in qs.values()))
        hr_range = (lo, hi)
    x = np.linspace(np.log(hr_range[0]), np.log(hr_range[1]), 400)

    fig = _new_figure(width, height)
    axes = fig.subplots(1, len(names), sharex=True, sharey=True, squeeze=False)[0]
    ymax = 0.0
    texts = []
    for ax, p in zip(axes, names):
        c = pcol[p]
        lhr = np.log(draws[p])
        dens = gaussian_kde(lhr)(x)
        ax.plot(np.exp(x), dens, color=c, lw=1.4, zorder=3)
        below = x <= 0
        ax.fill_between(np.exp(x[below]), dens[below], color=c, alpha=0.22, lw=0, zorder=2)
        ymax = max(ymax, dens.max())
        if p in priors:
            mu, sd = _prior_mu_sigma(priors[p])
            pd = np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
            ax.plot(np.exp(x), pd, color=c, lw=1.0, ls=(0, (4, 2)), zorder=2)
            ymax = max(ymax, min(pd.max(), 3 * dens.max()))
            title = f"{style.prior_label(p)} prior\nlog HR ~ N({_short(mu)}, {_short(sd)}\u00b2)"
        else:
            title = style.prior_label(p)
        if likelihood is not None:
            m, se = likelihood
            ld = np.exp(-0.5 * ((x - m) / se) ** 2) / (se * math.sqrt(2 * math.pi))
            ax.plot(np.exp(x), ld, color=style.LIKELIHOOD_COLOUR, lw=1.0, ls=(0, (1, 1.2)), zorder=2)
            ymax = max(ymax, ld.max())
        ax.axvline(1.0, color=style.NEUTRAL, lw=0.6, zorder=1)
        ax.set_title(title, fontsize=7.5, color=c if c != "#000000" else "black", loc="left")
        med = float(np.median(draws[p]))
        lo95, hi95 = np.quantile(draws[p], [0.025, 0.975])
        p1 = float(np.mean(draws[p] < 1.0))
        texts.append(
            ax.text(0.98, 0.97,
                    f"HR {med:.2f} ({lo95:.2f}\u2013{hi95:.2f})\nP(HR < 1) {_p_relation(p1)}",
                    transform=ax.transAxes, ha="right", va="top", fontsize=7, linespacing=1.3,
                    bbox={"fc": "white", "ec": "none", "pad": 0.6}, zorder=5)
        )
        _log_hr_axis(ax, *hr_range)
        ax.set_xlabel("Hazard ratio")
        ax.tick_params(axis="y", labelleft=False, length=0)
        ax.spines["left"].set_visible(False)
    axes[0].set_ylabel("Density (log HR scale)")
    # Headroom keeps the summary text clear of the curves.
    axes[0].set_ylim(0, ymax * 1.45)

    handles = [
        Line2D([], [], color=style.NEUTRAL, lw=1.0, ls=(0, (4, 2))),
        Line2D([], [], color=style.LIKELIHOOD_COLOUR, lw=1.0, ls=(0, (1, 1.2))),
        Line2D([], [], color=style.NEUTRAL, lw=1.4),
        Patch(color=style.NEUTRAL, alpha=0.22, lw=0),
    ]
    labels = ["Prior", "Likelihood (Cox, normal approx.)", "Posterior", "Posterior mass at HR < 1"]
    if likelihood is None:
        handles.pop(1)
        labels.pop(1)
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles))
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    sup = f"Hazard ratio, {trt} vs {ref}"
    if model:
        sup += f" \u2014 {style.model_label(model)}"
    fig.suptitle(sup, x=0.01, ha="left", fontsize=8, fontweight="bold")
    return fig


# --------------------------------------------------------------------------- figure 3


@_styled
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
    references.

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
        Figure width in inches (at least ~6 for the three columns); the
        height follows from the number of rows.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the intervals, and the text columns.
    """
    models = style.order_models(m for m, _ in fits)
    priors = style.order_priors(p for _, p in fits)
    pcol = style.prior_colours(priors)

    # Rows top to bottom: (label, kind, payload)
    rows: list[tuple[str, str, Any]] = []
    refs = []
    if trial.reported_hr is not None and trial.reported_hr.lower is not None:
        r = trial.reported_hr
        refs.append(("Published (Cox)", (r.estimate, r.lower, r.upper), None))
    if likelihood is not None:
        m, se = likelihood
        est = (math.exp(m), math.exp(m - 1.959964 * se), math.exp(m + 1.959964 * se))
        refs.append(("Reconstructed IPD (Cox)", est, None))
    if refs:
        rows.append(("Frequentist (95% CI)", "header", None))
        for label, est, p1 in refs:
            rows.append((label, "ref", (est, p1)))
    all_hr = []
    any_failed = False
    tv_note = False
    for model in models:
        header = style.model_label(model)
        if any(_is_time_varying(model, f) for (m, _), f in fits.items() if m == model):
            header += " *"
            tv_note = True
        rows.append((header, "header", None))
        for prior in priors:
            if (model, prior) not in fits:
                continue
            fit = fits[(model, prior)]
            d = _hr_draws(fit)
            all_hr.append(np.quantile(d, [0.025, 0.975]))
            est = (float(np.median(d)), *np.quantile(d, [0.025, 0.975]))
            label = style.prior_label(prior)
            if getattr(fit, "gate_passed", True) is False:
                label += " \u2020"
                any_failed = True
            pool = None
            if pooled and (model, prior) in pooled:
                dp = _hr_draws(pooled[(model, prior)])
                pool = (float(np.median(dp)), *np.quantile(dp, [0.025, 0.975]))
                all_hr.append(np.array(pool[1:]))
            rows.append((label, prior, (est, float(np.mean(d < 1)), pool)))

    n = len(rows)
    height = 0.85 + 0.165 * n
    fig = _new_figure(width, height)
    gs = fig.add_gridspec(1, 3, width_ratios=[1.45, 2.25, 1.4], wspace=0.0)
    ax_l = fig.add_subplot(gs[0])
    ax = fig.add_subplot(gs[1], sharey=ax_l)
    ax_t = fig.add_subplot(gs[2], sharey=ax_l)
    y = np.arange(n)[::-1].astype(float)

    for yi, (label, kind, payload) in zip(y, rows):
        if kind == "header":
            ax_l.text(0.0, yi, label, ha="left", va="center", fontweight="bold", fontsize=7)
            continue
        colour = "black" if kind == "ref" else pcol[kind]
        ax_l.text(0.07, yi, label, ha="left", va="center", fontsize=7, color=colour)
        if kind == "ref":
            (est, lo, hi), _ = payload
            ax.plot([lo, hi], [yi, yi], color=style.NEUTRAL, lw=1.0)
            ax.plot([est], [yi], marker="D", ms=4, color=style.NEUTRAL, mfc="white", mew=1.0)
            # A frequentist CI carries no probability statement about the HR.
            ptxt = "\u2013"
        else:
            (est, lo, hi), p1, pool = payload
            y0 = yi + (0.12 if pool else 0.0)
            ax.plot([lo, hi], [y0, y0], color=pcol[kind], lw=1.3, solid_capstyle="butt")
            ax.plot([est], [y0], marker="s", ms=4, color=pcol[kind])
            if pool:
                ax.plot(pool[1:], [yi - 0.2] * 2, color=pcol[kind], lw=0.7, solid_capstyle="butt")
                ax.plot([pool[0]], [yi - 0.2], marker="s", ms=2.6, mfc="white", mec=pcol[kind], mew=0.7)
            ptxt = _fmt_p(p1)
        ax_t.text(0.06, yi, f"{est:.2f} ({lo:.2f}\u2013{hi:.2f})", ha="left", va="center", fontsize=7)
        ax_t.text(0.97, yi, ptxt, ha="right", va="center", fontsize=7)
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
    ref_vals = [np.array(p[0]) for _, k, p in rows if k == "ref"]
    lo, hi = _hr_limits(*all_hr, *ref_vals, pad=1.12)
    _log_hr_axis(ax, lo, hi)
    ax.tick_params(axis="y", left=False, labelleft=False)
    ax.spines["left"].set_visible(False)
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    ax.set_xlabel("Hazard ratio (log scale)", labelpad=13)
    # "Favours" labels hang under the tick labels either side of HR = 1; they
    # may run past the axes into the empty space below the text columns, so
    # they stay out of the layout calculation.
    for txt, ha, dx in ((f"\u2190 Favours {trt}", "right", -4), (f"Favours {ref} \u2192", "left", 4)):
        t = ax.annotate(txt, xy=(1.0, 0.0), xycoords=("data", "axes fraction"), xytext=(dx, -17),
                        textcoords="offset points", ha=ha, va="top", fontsize=7,
                        color=style.NEUTRAL, annotation_clip=False)
        t.set_in_layout(False)
    for a in (ax_l, ax_t):
        a.set_xlim(0, 1)
        a.axis("off")
    notes = []
    if pooled:
        notes.append("Thin lines: pooled over reconstruction\nreplicates (95% interval)")
    if tv_note:
        notes.append("* HR = exp(mean of the interval log HRs)")
    if any_failed:
        notes.append("\u2020 Failed the convergence gate\n   (R-hat, ESS or divergences)")
    if notes:
        ax_l.text(0.0, -0.02, "\n".join(notes), transform=ax_l.transAxes, ha="left", va="top",
                  fontsize=7, color=style.NEUTRAL)
    for a, x, txt, ha in ((ax_l, 0.0, "Model / prior", "left"), (ax_t, 0.06, "HR (95% interval)", "left"),
                          (ax_t, 0.97, "P(HR < 1)", "right")):
        a.text(x, 1.0, txt, transform=a.transAxes, ha=ha, va="bottom", fontsize=7, fontweight="bold")
    return fig


def _panel_title(model: str, fig: Figure, n_panels: int) -> str:
    """Model label, wrapped to fit a panel of a row of ``n_panels``."""
    cols = n_panels if n_panels <= 3 else 2
    width_in = fig.get_figwidth() / max(cols, 1)
    # ~0.075 in per character of 8 pt bold DejaVu Sans.
    return style.wrap_label(style.model_label(model), int(width_in / 0.075))


# --------------------------------------------------------------------------- figure 4


@_styled
def plot_posterior_survival(
    fits: Mapping[str, Any],
    ipd: Any,
    trial: Trial,
    *,
    times: np.ndarray | None = None,
    width: float = style.DOUBLE_COLUMN,
    panel_height: float = 2.2,
) -> Figure:
    """Posterior survival curves (median, 95% band) over the reconstructed KM.

    A posterior predictive check: each model's fitted survival in each arm,
    against the Kaplan-Meier curve of the data it was fitted to. One panel
    per model.

    Parameters
    ----------
    fits : mapping
        Model id to a fit, or to precomputed ``{arm: (draws, times)}``.
    ipd : pandas.DataFrame
        Reconstructed IPD (``time``, ``event``, ``arm``).
    trial : Trial
        Arm names and time unit.
    times : array, optional
        Evaluation grid; default 200 points from 0 to the last IPD time.
    width, panel_height : float
        Figure width and height per row of panels, inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    models = style.order_models(fits)
    colours = style.arm_colours(trial.arm_ids)
    ipd = _primary(ipd)
    t_last = float(ipd["time"].max())
    step = _time_step(trial, t_last)
    xmax = _axis_max(t_last, step)
    if times is None:
        times = np.linspace(0.0, t_last, 200)
    kms = {a: _km(*_arm_ipd(ipd, a)) for a in trial.arm_ids}

    # One row up to three models (no empty panel), then a 2-wide grid.
    ncol = len(models) if len(models) <= 3 else 2
    nrow = math.ceil(len(models) / ncol)
    if width / ncol < 3.0:
        step = max(step, 2 * step if step < 24 else step)
    fig = _new_figure(width if ncol > 1 else style.SINGLE_COLUMN * 1.3, 0.55 + panel_height * nrow)
    axes = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, model in zip(axes, models):
        surv = _survival(fits[model], np.asarray(times, float))
        for arm_id in trial.arm_ids:
            c = colours[arm_id]
            km = kms[arm_id]
            t, _ = _arm_ipd(ipd, arm_id)
            ax.step(np.append(km["time"], t.max()), np.append(km["surv"], km["surv"][-1]),
                    where="post", color=c, lw=0.9, alpha=0.9, zorder=3)
            draws, tt = surv[arm_id]
            q = _quantiles(draws, [0.025, 0.5, 0.975])
            ax.fill_between(tt, q[0], q[2], color=c, alpha=0.18, lw=0, zorder=1)
            ax.plot(tt, q[1], color=c, lw=1.2, ls=(0, (4, 1.5)), zorder=2)
        ax.set_title(_panel_title(model, fig, len(axes)))
        ax.set_xlim(0, xmax)
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.yaxis.set_major_locator(MultipleLocator(0.2))
    for ax in axes[len(models):]:
        ax.set_visible(False)
    for ax in axes.reshape(nrow, ncol)[:, 0]:
        ax.set_ylabel(f"{_endpoint_label(trial)} probability")
    for i, ax in enumerate(axes[: len(models)]):
        # Label the bottom panel of each column, including a short last column.
        if i + ncol >= len(models):
            ax.set_xlabel(_time_label(trial))
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
    fig.legend(handles, labels, loc="outside lower center", ncol=3 if width > 6 else 2)
    return fig


# --------------------------------------------------------------------------- figure 5


@_styled
def plot_hr_over_time(
    tv_fit: Any,
    constant_fits: Mapping[str, Any],
    trial: Trial,
    *,
    times: np.ndarray | None = None,
    tmax: float | None = None,
    band_model: str | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float = 3.0,
) -> Figure:
    """The HR over time from the time-varying model, against constant-HR fits.

    The main panel shows the per-interval HR of the time-varying model as a
    step function (posterior median, 50% and 95% bands) with the constant HR
    of ``band_model`` as a grey horizontal band for comparison; the side panel
    shows every constant-HR model's HR (median, 95% interval) on the same axis.

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
        Evaluation grid for ``tv_fit``; default 600 points (plus the cut
        points) to ``tmax``, else to the fit's last follow-up time.
    tmax : float, optional
        Right end of the time axis (default: the grid's last time).
    band_model : str, optional
        Constant model drawn as the band; default piecewise PH, else Weibull
        PH, else the first.
    width, height : float
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: HR over time, and the constant-HR fits.
    """
    if times is None:
        data = getattr(tv_fit, "data", None)
        t_end = tmax or (float(np.max(data.time)) if data is not None else 120.0)
        times = np.linspace(0.0, t_end, 601)
        # Evaluate exactly at the cut points so every step sits where it should.
        cuts = np.asarray((getattr(tv_fit, "ctx", None) or {}).get("cuts") or (), float)
        times = np.union1d(times, cuts[(cuts > 0) & (cuts < t_end)])
    draws, tt = _hr_time(tv_fit, np.asarray(times, float))
    q = _quantiles(draws, [0.025, 0.25, 0.5, 0.75, 0.975])
    xmax_raw = tmax if tmax is not None else float(tt.max())
    step = _time_step(trial, xmax_raw)
    xmax = _axis_max(xmax_raw, step)
    models = style.order_models(constant_fits)
    const = {m: _hr_draws(constant_fits[m]) for m in models}
    band_model = band_model or _pick(models, ("piecewise_ph", "weibull_ph"))

    fig = _new_figure(width, height)
    gs = fig.add_gridspec(1, 2, width_ratios=[3.0, 0.55 + 0.3 * max(len(constant_fits), 1)])
    ax = fig.add_subplot(gs[0])
    ax_c = fig.add_subplot(gs[1], sharey=ax)
    c = style.TIME_VARYING_COLOUR
    ax.fill_between(tt, q[0], q[4], step="post", color=c, alpha=0.15, lw=0, zorder=1)
    ax.fill_between(tt, q[1], q[3], step="post", color=c, alpha=0.30, lw=0, zorder=1)
    ax.step(tt, q[2], where="post", color=c, lw=1.4, zorder=3)
    if band_model is not None:
        bq = np.quantile(const[band_model], [0.025, 0.5, 0.975])
        ax.axhspan(bq[0], bq[2], color=style.LIGHT, alpha=0.35, lw=0, zorder=0)
        ax.axhline(bq[1], color=style.NEUTRAL, lw=0.9, ls=(0, (4, 2)), zorder=2)
    ax.axhline(1.0, color="black", lw=0.7, zorder=2)
    ax.set_xlim(0, xmax)
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.set_xlabel(_time_label(trial))
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    ax.set_ylabel("Hazard ratio (log scale)")
    ax.set_title("Time-varying model")

    for i, m in enumerate(models):
        d = const[m]
        lo, med, hi = np.quantile(d, [0.025, 0.5, 0.975])
        ax_c.plot([i, i], [lo, hi], color=style.NEUTRAL, lw=1.2)
        ax_c.plot([i], [med], "s", ms=4, color=style.NEUTRAL)
    ax_c.axhline(1.0, color="black", lw=0.7)
    ax_c.set_xticks(range(len(models)))
    # Two-line labels keep the narrow side panel free of rotated text.
    ax_c.set_xticklabels([style.wrap_label(style.model_label(m), 14) for m in models], fontsize=7)
    ax_c.tick_params(axis="x", length=0)
    ax_c.set_xlim(-0.6, len(models) - 0.4)
    ax_c.tick_params(axis="y", labelleft=False)
    ax_c.set_title("Constant-HR models")

    lo, hi = _hr_limits(q[0], q[4], *[np.quantile(d, [0.025, 0.975]) for d in const.values()])
    _log_hr_axis(ax, lo, hi, axis="y")
    handles = [
        Line2D([], [], color=c, lw=1.4),
        Patch(color=c, alpha=0.30, lw=0),
        Patch(color=c, alpha=0.15, lw=0),
    ]
    labels = ["Median", "50% interval", "95% interval"]
    if band_model is not None:
        handles.append((Patch(color=style.LIGHT, alpha=0.35, lw=0),
                        Line2D([], [], color=style.NEUTRAL, lw=0.9, ls=(0, (4, 2)))))
        labels.append(f"{style.model_label(band_model)}: constant HR, median and 95% interval")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles))
    fig.suptitle(f"Hazard ratio over time, {trt} vs {ref}", x=0.01, ha="left", fontsize=8,
                 fontweight="bold")
    return fig


# --------------------------------------------------------------------------- figure 6


@_styled
def plot_prob_benefit(
    fits: Mapping[tuple[str, str], Any],
    trial: Trial,
    *,
    models: Sequence[str] | None = None,
    thresholds: np.ndarray | None = None,
    width: float = style.DOUBLE_COLUMN,
    height: float = 2.5,
) -> Figure:
    """Probability of benefit: P(HR < h) against the threshold h, per prior set.

    Reads as "how sure are we that the treatment cuts the hazard by at least
    1 - h". One line per prior set; one panel per model.

    Parameters
    ----------
    fits : mapping
        ``(model, prior)`` to a fit, InferenceData or HR draws.
    trial : Trial
        Arm names for the axis label.
    models : sequence of str, optional
        Models to show (default all in ``fits``).
    thresholds : array, optional
        HR thresholds; default 0.5 to 1.1.
    width, height : float
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    models = list(models) if models is not None else style.order_models(m for m, _ in fits)
    priors = style.order_priors(p for _, p in fits)
    pcol = style.prior_colours(priors)
    h = np.linspace(0.5, 1.1, 241) if thresholds is None else np.asarray(thresholds, float)

    fig = _new_figure(width, height)
    axes = fig.subplots(1, len(models), sharex=True, sharey=True, squeeze=False)[0]
    for ax, model in zip(axes, models):
        ax.axvline(1.0, color=style.NEUTRAL, lw=0.6, zorder=0)
        for y in (0.5, 0.9):
            ax.axhline(y, color=style.LIGHT, lw=0.5, ls=(0, (2, 2)), zorder=0)
        for prior in priors:
            if (model, prior) not in fits:
                continue
            d = np.sort(_hr_draws(fits[(model, prior)]))
            p = np.searchsorted(d, h, side="left") / d.size
            ax.plot(h, p, color=pcol[prior], lw=1.3, label=style.prior_label(prior))
        ax.set_title(_panel_title(model, fig, len(axes)))
        ax.set_xlim(h.min(), h.max())
        ax.set_ylim(0, 1.0)
        ax.xaxis.set_major_locator(MultipleLocator(0.1))
        ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_major_locator(MultipleLocator(0.2))
        tv = any(_is_time_varying(model, f) for (m, _), f in fits.items() if m == model)
        ax.set_xlabel("Threshold h for exp(mean log HR)" if tv else "HR threshold h")
    axes[0].set_ylabel("P(HR < h)")
    handles = [Line2D([], [], color=pcol[p], lw=1.3) for p in priors]
    fig.legend(handles, [style.prior_label(p) + " prior" for p in priors],
               loc="outside lower center", ncol=len(priors) if width > 5 else 2)
    return fig


# --------------------------------------------------------------------------- figure 7


@_styled
def plot_rmst_difference(
    fits: Mapping[str, Any],
    trial: Trial,
    *,
    horizons: np.ndarray | None = None,
    ipd: Any = None,
    width: float = style.DOUBLE_COLUMN,
    height: float = 2.4,
) -> Figure:
    """Difference in restricted mean survival time against the horizon.

    RMST(treatment) - RMST(reference) up to each horizon: posterior median
    and 95% band, one panel per model; the reconstructed KM difference is
    overlaid when ``ipd`` is given.

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
    width, height : float
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per model.
    """
    models = style.order_models(fits)
    if horizons is None:
        horizons = np.arange(12.0, 120.0 + 1e-9, 6.0)
    horizons = np.asarray(horizons, float)
    c = style.TREATMENT_ARM_COLOUR
    km_diff = None
    if ipd is not None:
        kms = {a: _km(*_arm_ipd(ipd, a)) for a in trial.arm_ids}
        hk = np.linspace(horizons.min(), horizons.max(), 200)
        km_diff = (hk, np.array([
            _km_rmst(kms[trial.treatment_arm], x) - _km_rmst(kms[trial.reference_arm], x) for x in hk
        ]))

    fig = _new_figure(width, height)
    axes = fig.subplots(1, len(models), sharex=True, sharey=True, squeeze=False)[0]
    step = _time_step(trial, float(horizons.max()))
    for ax, model in zip(axes, models):
        d, hh = _rmst_diff(fits[model], trial, horizons)
        q = _quantiles(d, [0.025, 0.5, 0.975])
        ax.axhline(0.0, color="black", lw=0.7, zorder=0)
        ax.fill_between(hh, q[0], q[2], color=c, alpha=0.2, lw=0)
        ax.plot(hh, q[1], color=c, lw=1.4)
        if km_diff is not None:
            ax.plot(*km_diff, color=style.NEUTRAL, lw=0.9, ls=(0, (1.5, 1.2)))
        ax.set_title(_panel_title(model, fig, len(axes)))
        ax.set_xlim(0, _axis_max(float(hh.max()), step))
        ax.xaxis.set_major_locator(MultipleLocator(step if step >= 24 else 2 * step))
        ax.set_xlabel(f"Horizon ({trial.time_unit})")
    axes[0].set_ylabel(f"RMST difference ({trial.time_unit})")
    trt, ref = trial.arms[trial.treatment_arm].name, trial.arms[trial.reference_arm].name
    handles = [Line2D([], [], color=c, lw=1.4), Patch(color=c, alpha=0.2, lw=0)]
    labels = ["Posterior median", "95% credible band"]
    if km_diff is not None:
        handles.append(Line2D([], [], color=style.NEUTRAL, lw=0.9, ls=(0, (1.5, 1.2))))
        labels.append("Kaplan-Meier (reconstructed)")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles))
    fig.suptitle(f"Restricted mean survival time, {trt} minus {ref}", x=0.01, ha="left",
                 fontsize=8, fontweight="bold")
    return fig


# --------------------------------------------------------------------------- figure 8


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


@_styled
def plot_diagnostics(
    fits: Mapping[str, Any],
    trial: Trial | None = None,
    *,
    loo: Any = None,
    max_params: int = 3,
    width: float = style.DOUBLE_COLUMN,
    row_height: float = 1.15,
) -> Figure:
    """MCMC rank plots of each model's key parameters, and the LOO comparison.

    Rank plots (Vehtari et al. 2021) show, per chain, the histogram of a
    parameter's ranks across all chains: near-uniform bars mean the chains
    mix. The LOO panel shows each model's expected log predictive density
    relative to the best (with the standard error of the difference).

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
        fits' prior set are used). If omitted it is computed from ``fits``
        when they carry log-likelihoods.
    max_params : int
        Parameters per model.
    width, row_height : float
        Figure width, and height per model row, inches.

    Returns
    -------
    matplotlib.figure.Figure
        Rank-plot axes (model x parameter) plus one LOO axes.
    """
    models = style.order_models(fits)
    idatas = {m: _idata(fits[m]) for m in models}
    params = {m: _key_params(idatas[m], max_params) for m in models}
    ncol = max(len(v) for v in params.values())
    if loo is not None and "prior" in getattr(loo, "columns", ()):
        names = {getattr(getattr(f, "prior", None), "name", None) for f in fits.values()} - {None}
        pick = next(iter(names)) if len(names) == 1 else None
        if pick is None:
            pick = "reference" if (loo["prior"] == "reference").any() else loo["prior"].iloc[0]
        loo = loo[loo["prior"] == pick]
    if loo is not None and len(loo) == 0:
        loo = None
    if loo is None:
        loo = _compute_loo(idatas)
    loo = _loo_table(loo) if loo is not None else None

    loo_h = 0.75 + 0.3 * len(loo) if loo is not None else 0.0
    fig = _new_figure(width, 0.2 + row_height * len(models) + loo_h)
    if loo is not None:
        sf_rank, sf_loo = fig.subfigures(2, 1, height_ratios=[row_height * len(models), loo_h])
    else:
        sf_rank, sf_loo = fig, None
    rows = sf_rank.subfigures(len(models), 1) if len(models) > 1 else [sf_rank]
    n_chains = max(int(idatas[m]["posterior"].sizes["chain"]) for m in models)
    for r, (sf, m) in enumerate(zip(rows, models)):
        sf.suptitle(style.model_label(m), x=0.0, ha="left", fontsize=7.5, fontweight="bold")
        axes = sf.subplots(1, ncol, squeeze=False)[0]
        for j, ax in enumerate(axes):
            if j >= len(params[m]):
                ax.set_visible(False)
                continue
            var, coords = params[m][j]
            # One neutral colour: chains are exchangeable and arm/prior colours
            # must keep their meaning.
            _rank_bars(ax, idatas[m], var, coords, n_chains)
            ax.set_title(_param_title(var, coords), fontsize=7, fontweight="normal", loc="left",
                         family="monospace")
            ax.set_xlabel("Rank (all chains)" if r == len(models) - 1 else "")
            ax.set_ylabel("Chain" if j == 0 else "")
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(3))
    if sf_loo is not None:
        ax_l = sf_loo.subplots()
        _draw_loo(ax_l, loo)
    return fig


def _rank_bars(ax: Any, idata: Any, var: str, coords: dict | None, n_chains: int) -> None:
    """Rank plot as bars (Vehtari et al. 2021): one histogram of ranks per chain.

    The ranks are of all chains' draws pooled; if the chains mix, every
    chain's histogram is flat at the dashed line.
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
        ax.bar(bins[:-1], h / expected * 0.4, width=np.diff(bins), bottom=c, align="edge",
               color=style.NEUTRAL, edgecolor="white", lw=0.3)
        ax.axhline(c + 0.4, color="black", lw=0.6, ls=(0, (3, 2)))
    ax.set_yticks(np.arange(nc) + 0.2, [str(c) for c in range(nc)])
    ax.set_ylim(-0.1, nc)


def _compute_loo(idatas: Mapping[str, Any]) -> Any:
    from .diagnostics import compare

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


def _draw_loo(ax: Any, loo: Any) -> None:
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
    if "weight" in loo.columns:
        labels = [f"{lab} (weight {w:.2f})" for lab, w in zip(labels, loo["weight"].to_numpy(float))]
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(-0.6, len(loo) - 0.4)
    ax.set_xlabel("ELPD difference from the best model (LOO); bars \u00b11 and \u00b12 SE")
    ax.set_title("Model comparison (PSIS-LOO)", loc="left")
    # Room for the +-2 SE bars on both sides, and at least half a unit
    # around 0 so a lone best model does not fill the axis.
    se2 = 2 * np.nan_to_num(dse)
    lo = float(np.min(np.concatenate([diff - se2, [0.0]])))
    hi = float(np.max(np.concatenate([diff + se2, [0.0]])))
    pad = max(0.5, 0.06 * (hi - lo))
    ax.set_xlim(lo - pad, hi + pad)


# --------------------------------------------------------------------------- all


def _placeholder(message: str, width: float = style.DOUBLE_COLUMN, height: float = 1.2) -> Figure:
    """A figure that says why it is empty, so the report's figure list stays whole."""
    with mpl.rc_context(style.RC):
        fig = _new_figure(width, height)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, message, ha="center", va="center", color=style.NEUTRAL)
    return fig


def _is_time_varying(model: str, fit: Any) -> bool:
    post = getattr(_idata(fit), "posterior", None)
    return model.endswith("_tv") or (post is not None and "log_hr_mean" in post)


def _pick(models: Sequence[str], preferred: Sequence[str]) -> str | None:
    return next((m for m in preferred if m in models), models[0] if models else None)


def draw_all(
    grid: Any,
    ipd: Any,
    trial: Trial,
    outdir: str | Path = "reports/figures",
    *,
    prior: str | None = None,
    dpi: int = style.DPI,
) -> list[Path]:
    """Draw and save the report's eight figures (PNG and PDF each).

    Parameters
    ----------
    grid : GridResult
        Output of :func:`kmbayes.fitting.fit_grid`: ``fits`` maps
        ``(model, prior)`` to a fit with ``idata``, ``prior`` (a PriorSpec),
        ``data`` and ``ctx``.
    ipd : pandas.DataFrame
        Reconstructed IPD (``time, event, arm[, replicate]``), e.g. from
        :func:`kmbayes.data.read_ipd`.
    trial : Trial
        The trial.
    outdir : str or Path
        Output directory.
    prior : str, optional
        Prior set of the per-model figures (4, 5, 7, 8); default
        ``reference`` (so they show what the data say), else the first.
    dpi : int, default 300
        PNG resolution.

    Returns
    -------
    list of Path
        The 16 files written, PNG then PDF per figure, in figure order
        (:data:`FIGURE_STEMS`).

    Notes
    -----
    The triplot uses the piecewise PH model (else Weibull PH, else the first
    constant-HR model), which is also the constant-HR band of figure 5.
    """
    from . import estimands

    fits: Mapping[tuple[str, str], Any] = grid.fits
    models = style.order_models(m for m, _ in fits)
    priors = style.order_priors(p for _, p in fits)
    ref_prior = prior or ("reference" if "reference" in priors else priors[0])
    per_model = {m: fits[(m, ref_prior)] for m in models if (m, ref_prior) in fits}
    tv_models = [m for m in per_model if _is_time_varying(m, per_model[m])]
    ph_models = [m for m in per_model if m not in tv_models]
    main = _pick(ph_models, ("piecewise_ph", "weibull_ph"))
    ipd = _primary(ipd)
    t_last = float(ipd["time"].max())

    any_fit = next(iter(fits.values()))
    likelihood = None
    if getattr(any_fit, "data", None) is not None:
        likelihood = estimands.cox_likelihood(any_fit.data)

    def draw(stem: str) -> Figure:
        if stem == "fig1_km_reconstruction":
            return plot_km(ipd, trial)
        if stem == "fig2_hr_triplot":
            if main is None:
                return _placeholder("No constant-HR model was fitted.")
            post = {p: fits[(main, p)] for p in priors if (main, p) in fits}
            specs = {p: f.prior for p, f in post.items() if hasattr(f, "prior")}
            return plot_hr_triplot(post, specs, trial, likelihood=likelihood, model=main)
        if stem == "fig3_forest":
            return plot_forest(fits, trial, likelihood=likelihood,
                               pooled=getattr(grid, "pooled", None) or None)
        if stem == "fig4_posterior_survival":
            return plot_posterior_survival(per_model, ipd, trial)
        if stem == "fig5_hr_over_time":
            if not tv_models:
                return _placeholder("No time-varying-HR model was fitted.")
            tv = per_model[tv_models[0]]
            cuts = np.asarray((getattr(tv, "ctx", None) or {}).get("cuts") or (), float)
            times = np.linspace(0.0, t_last, 600)
            times = np.union1d(times, cuts[(cuts > 0) & (cuts < t_last)])
            return plot_hr_over_time(tv, {m: per_model[m] for m in ph_models}, trial,
                                     times=times, tmax=t_last, band_model=main)
        if stem == "fig6_prob_benefit":
            return plot_prob_benefit(fits, trial)
        if stem == "fig7_rmst_difference":
            step = _time_step(trial, t_last)
            h_max = max(step, step * math.floor(min(t_last, 10 * step) / step))
            horizons = np.linspace(step, h_max, 4 * round(h_max / step) - 3)
            return plot_rmst_difference(per_model, trial, horizons=horizons, ipd=ipd)
        if stem == "fig8_diagnostics":
            return plot_diagnostics(per_model, trial, loo=getattr(grid, "loo", None))
        raise AssertionError(stem)

    paths: list[Path] = []
    for stem in FIGURE_STEMS:
        fig = draw(stem)
        try:
            paths.extend(save_figure(fig, outdir, stem, dpi=dpi))
        finally:
            fig.clear()
    return paths
