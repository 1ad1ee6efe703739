"""Shared plumbing of the figures: style context, canvas, saving, axes helpers
and the conversion of fits into the draws a figure needs.

Figures are built on :class:`~matplotlib.figure.Figure` with an Agg canvas
rather than through ``pyplot``: nothing here touches the interactive backend
or pyplot's global figure registry, so drawing many figures in a batch (or in
forked workers) leaks no memory and never needs a display.

Posterior inputs are accepted in two forms. A *fit* (anything with an
``idata`` attribute, such as :class:`~kmbayes.fitting.FitResult`) is turned
into draws with :mod:`kmbayes.estimands`; an already computed value (an array
of HR draws, or the ``(draws, times)`` tuples that :mod:`estimands` returns)
is used as given, so tests and notebooks can draw any figure from synthetic
draws without fitting anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from .. import style
from ..io import atomic_path
from ..km import km as km_fit
from ..trial import Trial

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
"""File stems written by :func:`kmbayes.figures.draw_all`, in figure order."""

MAX_BAND_DRAWS = 1000
"""Draws used for bands and curves. 1000 equally spaced draws put a 95% band
edge within ~1% (in probability) of the full-sample one, far below what the
eye can see, at a fraction of the cost of 4000-8000 draws."""

_HR_TICK_SETS = (
    (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
    (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    (0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0),
    (0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0),
    (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4),
)


# --------------------------------------------------------------------------- plumbing


def styled(fn: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw under the house rc settings without changing the caller's rcParams.

    ``style.RC`` turns mathtext parsing off, so arm or prior labels with
    ``$`` are drawn literally instead of crashing the mathtext parser.
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(style.RC):
            return fn(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """An Agg-backed figure with constrained layout and a little air."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    # Constrained layout pads tight by default; a little air reads better in print.
    fig.get_layout_engine().set(w_pad=0.04, h_pad=0.04, wspace=0.04, hspace=0.04)
    return fig


def is_single(width: float) -> bool:
    """Whether ``width`` is a single-column figure (layouts switch to stacking)."""
    return width < 5.0


# OpenType layout tables: shaping rules (ligatures, kerning pairs) for text
# engines. A PDF places every glyph itself -- matplotlib has already laid the
# text out -- so viewers never read them, yet subsetting them (DejaVu Sans
# has a large GPOS) was two thirds of the time of writing a PDF.
_LAYOUT_TABLES = ("GSUB", "GPOS", "GDEF", "kern", "BASE", "JSTF", "MATH")


@contextmanager
def _lean_font_subsets() -> Iterator[None]:
    """While saving a PDF, subset embedded fonts without their layout tables.

    Matplotlib builds its ``fontTools.subset.Options`` internally, so the
    class is swapped for the duration of one ``savefig`` (figures are saved
    from one thread) and restored after. The embedded fonts keep every
    glyph, metric and name; text stays selectable and searchable.
    """
    try:
        from fontTools import subset
    except ImportError:  # pragma: no cover - matplotlib requires fontTools
        yield
        return
    base = subset.Options

    class LeanOptions(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.drop_tables = [*self.drop_tables, *_LAYOUT_TABLES]

    subset.Options = LeanOptions
    try:
        yield
    finally:
        subset.Options = base


def save_figure(fig: Figure, outdir: str | Path, stem: str, *, dpi: int = style.DPI) -> list[Path]:
    """Write ``fig`` as ``outdir/stem.png`` and ``outdir/stem.pdf``, atomically.

    Each file is written to a temporary sibling and renamed into place, so a
    reader never sees a half-written figure. The layout is computed once (by
    the PNG draw) and then frozen for the PDF: constrained layout would
    otherwise solve the same layout a second time. The PDF's fonts are
    embedded (TrueType, editable text) without their OpenType layout tables,
    which a PDF never uses (see :func:`_lean_font_subsets`). Same figure,
    same bytes: no dates or versions are written.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save.
    outdir : str or Path
        Directory; created if missing.
    stem : str
        File name without extension.
    dpi : int, default ``style.DPI``
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
    engine = fig.get_layout_engine()
    with mpl.rc_context(style.RC):
        try:
            for ext in ("png", "pdf"):
                path = outdir / f"{stem}.{ext}"
                with atomic_path(path) as tmp:
                    # Metadata dates/versions would make every rebuild differ byte-wise.
                    if ext == "pdf":
                        with _lean_font_subsets():
                            fig.savefig(tmp, format=ext, dpi=dpi, metadata={"CreationDate": None})
                    else:
                        fig.savefig(tmp, format=ext, dpi=dpi, metadata={"Software": None})
                paths.append(path)
                if ext == "png" and engine is not None:
                    # Positions are final after the first draw; keep them for the PDF.
                    fig.set_layout_engine("none")
        finally:
            if engine is not None:
                fig.set_layout_engine(engine)
    return paths


def time_label(trial: Trial) -> str:
    return f"Time ({trial.time_unit})"


def endpoint_label(trial: Trial) -> str:
    ep = trial.endpoint or "survival"
    return ep[0].upper() + ep[1:]


def nice_step(span: float) -> float:
    """A tick step for a time axis: 12 for months-scale spans, else 1-2-5."""
    if span <= 0:
        return 1.0
    raw = span / 8
    for base in (1, 2, 3, 6, 12, 24, 36, 48, 60, 120):
        if base >= raw:
            return float(base)
    mag = 10 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def time_step(trial: Trial, tmax: float) -> float:
    # Months read best in years; other units get a generic 1-2-5 step.
    if trial.time_unit.lower().startswith("month") and tmax >= 36:
        return 12.0 if tmax <= 180 else 24.0
    return nice_step(tmax)


def axis_max(tmax: float, step: float) -> float:
    return step * math.ceil(tmax / step - 1e-9)


def log_hr_axis(ax: Any, lo: float, hi: float, *, axis: str = "x", max_ticks: int = 7) -> None:
    """A log-scale HR axis with plain-number ticks (0.5, 1, 2 rather than 10^x)."""
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(lo, hi)
    # The densest familiar tick set that fits without crowding. Prefer sets
    # whose end ticks come near both limits, so no long stretch of axis is
    # left unlabelled.
    ticks: list[float] = [1.0]
    best = (False, 0)
    for cand in _HR_TICK_SETS:
        inside = [t for t in cand if lo <= t <= hi]
        if not inside or len(inside) > max_ticks:
            continue
        covers = inside[0] <= lo * 1.6 and inside[-1] >= hi / 1.6
        if (covers, len(inside)) > best:
            best, ticks = (covers, len(inside)), inside
    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(FixedLocator(ticks))
    a.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_locator(NullLocator())
    a.set_minor_formatter(NullFormatter())


HR_AXIS_BOUNDS = (0.02, 50.0)
"""Outermost HR axis limits: an interval beyond them (e.g. from a one-patient
arm, whose HR draws run to 0 or infinity) is clipped and marked with an arrow
instead of stretching the axis over tens of decades."""


def hr_limits(*arrays: Any, pad: float = 1.15) -> tuple[float, float]:
    """Log-HR axis limits covering ``arrays`` and 1, within :data:`HR_AXIS_BOUNDS`."""
    parts = [np.ravel(np.asarray(a, float)) for a in arrays if a is not None and np.size(a)]
    vals = np.concatenate(parts) if parts else np.array([1.0])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size == 0:
        vals = np.array([1.0])
    lo, hi = min(float(vals.min()), 1.0) / pad, max(float(vals.max()), 1.0) * pad
    return max(lo, HR_AXIS_BOUNDS[0]), min(hi, HR_AXIS_BOUNDS[1])


def panel_title(model: str, fig: Figure, n_panels: int) -> str:
    """Model label, wrapped to fit a panel of a row of ``n_panels``."""
    cols = n_panels if n_panels <= 3 else 2
    width_in = fig.get_figwidth() / max(cols, 1)
    # ~0.075 in per character of 8 pt bold DejaVu Sans.
    return style.wrap_label(style.model_label(model), max(int(width_in / 0.075), 12))


def placeholder(message: str, width: float = style.DOUBLE_COLUMN, height: float = 1.2) -> Figure:
    """A figure that says why it is empty, so the report's figure list stays whole."""
    with mpl.rc_context(style.RC):
        fig = new_figure(width, height)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, style.wrap_label(message, int(width / 0.07)), ha="center", va="center",
                color=style.NEUTRAL)
    return fig


def suptitle(fig: Figure, text: str, width: float) -> None:
    """Bold left-aligned figure title, wrapped to the figure width."""
    fig.suptitle(style.wrap_label(text, int(width / 0.072)), x=0.01, ha="left", fontsize=8,
                 fontweight="bold")


# --------------------------------------------------------------------------- data access


def km_curve(time: np.ndarray, event: np.ndarray) -> dict[str, np.ndarray]:
    """Kaplan-Meier step function (from :mod:`kmbayes.km`) with censoring ticks."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    fit = km_fit(time, event)
    keep = (fit.d > 0) | (fit.time == 0)  # the curve only changes at deaths
    t_step, s_step = fit.time[keep], fit.surv[keep]
    if s_step.size == 0 or s_step[0] < 1.0:  # start the step function at (0, 1)
        t_step, s_step = np.concatenate([[0.0], t_step]), np.concatenate([[1.0], s_step])
    cens = np.sort(time[~event])
    return {"time": t_step, "surv": s_step, "cens_time": cens,
            "cens_surv": np.asarray(fit.survival(cens), float)}


def km_rmst(km: dict[str, np.ndarray], horizons: np.ndarray) -> np.ndarray:
    """Area under a KM step function up to each horizon (vectorised)."""
    t, s = km["time"], km["surv"]
    # Cumulative area at each step start; the area to h adds the partial step.
    area = np.concatenate([[0.0], np.cumsum(np.diff(t) * s[:-1])])
    i = np.searchsorted(t, horizons, side="right") - 1
    return area[i] + (horizons - t[i]) * s[i]


def primary(ipd: Any) -> Any:
    """The first reconstruction replicate if the IPD holds several.

    Pooling replicates would draw one KM curve from K copies of each patient,
    which overstates the at-risk numbers K-fold.
    """
    if "replicate" in getattr(ipd, "columns", ()):
        return ipd[ipd["replicate"] == ipd["replicate"].min()]
    return ipd


def arm_ipd(ipd: Any, arm: str) -> tuple[np.ndarray, np.ndarray]:
    ipd = primary(ipd)
    sub = ipd[ipd["arm"] == arm]
    if len(sub) == 0:
        raise ValueError(f"the IPD has no rows for arm {arm!r}")
    return sub["time"].to_numpy(float), sub["event"].to_numpy().astype(int)


def is_fit(obj: Any) -> bool:
    return hasattr(obj, "idata")


def idata_of(obj: Any) -> Any:
    return obj.idata if is_fit(obj) else obj


def thin(obj: Any, max_draws: int = MAX_BAND_DRAWS) -> Any:
    """A view of a fit that :mod:`estimands` sees with at most ``max_draws`` draws.

    Bands and curves are computed per draw and time point, so their cost is
    linear in the draws; equally spaced draws keep every chain represented.
    Anything that is not a fit is returned unchanged.
    """
    if not is_fit(obj) or not hasattr(obj, "model"):
        return obj
    from .. import estimands

    post = estimands.posterior_arrays(obj)
    n = next(iter(post.values())).shape[0] if post else 0
    if n <= max_draws:
        return obj
    idx = np.linspace(0, n - 1, max_draws).round().astype(int)
    return SimpleNamespace(
        model=obj.model, ctx=getattr(obj, "ctx", None), data=getattr(obj, "data", None),
        prior=getattr(obj, "prior", None), idata=obj.idata,
        gate_passed=getattr(obj, "gate_passed", True),
        _post_cache={k: v[idx] for k, v in post.items()},
    )


def hr_draws(obj: Any) -> np.ndarray:
    """Flattened HR draws from an array (HR scale), an InferenceData or a fit.

    A fit goes through :func:`kmbayes.estimands.hr_draws`, which knows what
    "the" HR of each model is. A bare InferenceData is read directly:
    ``log_hr`` if it is scalar per draw, else ``log_hr_mean`` (time-varying
    models).
    """
    if is_fit(obj):
        from .. import estimands

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


def draws_times(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    draws, times = obj
    draws = np.asarray(draws, float)
    if draws.ndim > 2:  # (chain, draw, time) -> (sample, time)
        draws = draws.reshape(-1, draws.shape[-1])
    return draws, np.asarray(times, float)


def survival(obj: Any, times: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if is_fit(obj):
        from .. import estimands

        obj = estimands.survival_draws(thin(obj), times)
    return {arm: draws_times(v) for arm, v in obj.items()}


def hr_time(obj: Any, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if is_fit(obj):
        from .. import estimands

        obj = estimands.hr_over_time(thin(obj), times)
    return draws_times(obj)


def rmst_diff(obj: Any, trial: Trial, horizons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMST difference draws (treatment - reference), shape (sample, horizon).

    For a fit, survival is evaluated once on a grid of ~400 points plus the
    model's cut points (where piecewise curves kink) and the horizons, and
    integrated cumulatively by the trapezoid rule -- the rule
    :func:`kmbayes.estimands.rmst_draws` uses, in one pass for all horizons.
    With a step of horizon/400 the trapezoid error is below 1e-4 relative.
    """
    if not is_fit(obj):
        return draws_times(obj)
    horizons = np.asarray(horizons, float)
    grid = np.linspace(0.0, float(horizons.max()), 401)
    cuts = np.asarray((getattr(obj, "ctx", None) or {}).get("cuts") or (), float)
    grid = np.union1d(grid, np.concatenate([cuts[(cuts > 0) & (cuts < grid[-1])], horizons]))
    surv = survival(obj, grid)
    (d_trt, _), (d_ref, _) = surv[trial.treatment_arm], surv[trial.reference_arm]
    # The trapezoid rule is linear in S, so integrate the difference once.
    d = d_trt - d_ref
    area = np.concatenate(
        [np.zeros((d.shape[0], 1)), np.cumsum(0.5 * (d[:, 1:] + d[:, :-1]) * np.diff(grid), axis=1)],
        axis=1,
    )
    return area[:, np.searchsorted(grid, horizons)], horizons


def cox_efron(time: np.ndarray, event: np.ndarray, x: np.ndarray, tol: float = 1e-10) -> tuple[float, float]:
    """Cox partial-likelihood log HR and SE for one covariate, Efron ties.

    The forest plot's frequentist reference row. It matches
    :func:`kmbayes.estimands.cox_likelihood` (lifelines' ``CoxPHFitter``,
    whose default is Efron) to ~1e-8, without importing lifelines, whose
    import alone takes longer than drawing all the figures.

    Parameters
    ----------
    time, event, x : array
        Follow-up times, event indicators (1 = death) and the covariate
        (1 = treatment arm).
    tol : float
        Newton steps stop below this change in the log HR.

    Returns
    -------
    (float, float)
        Log HR and its SE (inverse observed information at the maximum).
    """
    t = np.asarray(time, float)
    d = np.asarray(event, float) > 0
    x = np.asarray(x, float)
    ev_times = np.unique(t[d])
    if ev_times.size == 0 or np.ptp(x) == 0:
        return math.nan, math.inf
    # Event-time groups: risk sets are everyone with t >= t_j.
    at_risk = t[None, :] >= ev_times[:, None]  # (J, n)
    dies = d[None, :] & (t[None, :] == ev_times[:, None])
    n_d = dies.sum(axis=1)
    # Efron: the l-th of d_j tied deaths removes l/d_j of the dying group's weight.
    lmax = int(n_d.max())
    frac = np.arange(lmax)[None, :] / n_d[:, None]  # (J, L)
    valid = np.arange(lmax)[None, :] < n_d[:, None]
    beta = 0.0
    for _ in range(100):
        w = np.exp(beta * x)
        s0r, s1r = at_risk @ w, at_risk @ (x * w)
        s0d, s1d = dies @ w, dies @ (x * w)
        # Cells past a group's d_j are padding: give them a harmless denominator.
        a = np.where(valid, s0r[:, None] - frac * s0d[:, None], 1.0)
        b = np.where(valid, s1r[:, None] - frac * s1d[:, None], 0.0)
        c = np.where(valid, (at_risk @ (x * x * w))[:, None] - frac * (dies @ (x * x * w))[:, None], 0.0)
        score = float((dies @ x).sum() - (b / a).sum())
        info = float((c / a - (b / a) ** 2).sum())
        if not info > 0:
            return math.nan, math.inf
        step = score / info
        beta += step
        if abs(step) < tol:
            break
    return beta, 1.0 / math.sqrt(info)


def prior_mu_sigma(spec: Any) -> tuple[float, float]:
    if hasattr(spec, "mu") and hasattr(spec, "sigma"):
        return float(spec.mu), float(spec.sigma)
    mu, sigma = spec
    return float(mu), float(sigma)


def quantiles(draws: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    return np.quantile(draws, qs, axis=0)


def hr_summary(draws: np.ndarray, qs: Sequence[float] = (0.5, 0.025, 0.975)) -> np.ndarray:
    """Quantiles of HR draws that may hold 0 or infinity (a one-patient arm).

    Linear interpolation between two infinite draws gives NaN (inf - inf);
    there the nearest draw is the answer.
    """
    with np.errstate(invalid="ignore"):
        q = np.quantile(draws, qs)
    bad = np.isnan(q)
    if bad.any():
        q[bad] = np.quantile(draws, np.asarray(qs)[bad], method="nearest")
    return q


def fmt_p(p: float) -> str:
    """A probability to two decimals; never 1.00 or 0.00 from a finite sample."""
    if p >= 0.995:
        return ">0.99"
    if p < 0.005:
        return "<0.01"
    return f"{p:.2f}"


def short(x: float) -> str:
    """2-decimal number without trailing zeros: 0, -0.36, 10, 0.22."""
    txt = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if txt in ("-0", "") else txt


def p_relation(p: float) -> str:
    """``"= 0.93"``, or ``"> 0.99"`` / ``"< 0.01"`` at the extremes."""
    txt = fmt_p(p)
    return f"{txt[0]} {txt[1:]}" if txt[0] in "<>" else f"= {txt}"


def fmt_hr(x: float) -> str:
    """An HR for a text column; 0 and infinity (one-patient arms) spelled out."""
    if not np.isfinite(x):
        return "\u221e"
    return f"{x:.2f}" if x < 1000 else f"{x:.3g}"


def is_time_varying(model: str, fit: Any) -> bool:
    post = getattr(idata_of(fit), "posterior", None)
    return model.endswith("_tv") or (post is not None and "log_hr_mean" in post)


def pick(models: Sequence[str], preferred: Sequence[str]) -> str | None:
    return next((m for m in preferred if m in models), models[0] if models else None)


def prior_of(fits: Any, prior: str | None) -> str:
    """The prior set a per-model figure shows: ``prior``, else the fits' own
    (their ``prior.name``, if they agree), else ``"reference"``."""
    if prior:
        return prior
    vals = fits.values() if hasattr(fits, "values") else [fits]
    names = {getattr(getattr(f, "prior", None), "name", None) for f in vals} - {None}
    return names.pop() if len(names) == 1 else "reference"


def prior_phrase(prior: str) -> str:
    """How a figure names the prior it shows: ``"reference prior"``."""
    return f"{style.prior_label(prior).lower()} prior"
