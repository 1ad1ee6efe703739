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
draws without fitting anything (see :mod:`._draws`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from .. import style
from ..io import atomic_path
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
    post = getattr(getattr(fit, "idata", fit), "posterior", None)
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
