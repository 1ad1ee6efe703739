"""The figures of the reanalysis, as functions that return matplotlib Figures.

Each ``plot_*`` function takes data (reconstructed IPD, posterior draws or
fits) and the :class:`~kmbayes.trial.Trial`, and returns a
:class:`matplotlib.figure.Figure` drawn at print size, so notebooks and the
report share one implementation. :func:`save_figure` writes PNG and PDF
atomically and :func:`draw_all` writes the report's eight figures (and, on
request, their single-column variants).

Modules, one per job: :mod:`._common` (style context, saving, axes and label
helpers), :mod:`._draws` (draws from fits, KM and Cox fits), :mod:`.km`
(figure 1), :mod:`.hr` (figures 2 and 6), :mod:`.forest` (figure 3),
:mod:`.survival` (figures 4 and 7), :mod:`.time_varying` (figure 5) and
:mod:`.diagnostics` (figure 8); :func:`draw_all` here.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .. import style
from ..trial import Trial
from ._common import FIGURE_STEMS, is_time_varying, pick, placeholder, save_figure, time_step
from ._draws import cox_efron, primary, rmst_diff
from .diagnostics import plot_diagnostics
from .forest import plot_forest
from .hr import plot_hr_triplot, plot_prob_benefit
from .km import plot_km
from .survival import plot_posterior_survival, plot_rmst_difference
from .time_varying import plot_hr_over_time

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

# Kept under its old private name for notebooks and tests written against
# the single-module version.
_rmst_diff = rmst_diff

_WIDTHS = {"double": style.DOUBLE_COLUMN, "single": style.SINGLE_COLUMN}

# Most expensive first, so two workers finish at about the same time.
_COST_ORDER = (
    "fig8_diagnostics", "fig4_posterior_survival", "fig7_rmst_difference", "fig2_hr_triplot",
    "fig1_km_reconstruction", "fig3_forest", "fig6_prob_benefit", "fig5_hr_over_time",
)


def _is_ph(model: str) -> bool:
    from ..families import FAMILIES, Family

    fam = FAMILIES.get(model)
    return fam is None or fam.effect_name == Family.effect_name


class _Job:
    """Everything a figure needs, shared with forked workers by inheritance."""

    def __init__(self, grid: Any, ipd: Any, trial: Trial, outdir: Path, prior: str | None,
                 dpi: int, mcid_hr: float | None, widths: tuple[str, ...]) -> None:
        self.grid, self.trial, self.outdir, self.dpi = grid, trial, outdir, dpi
        self.mcid_hr, self.widths = mcid_hr, widths
        self.fits: Mapping[tuple[str, str], Any] = grid.fits
        priors = style.order_priors(p for _, p in self.fits)
        self.prior = prior or ("reference" if "reference" in priors else priors[0])
        self.priors = priors
        models = style.order_models(m for m, _ in self.fits)
        self.per_model = {m: self.fits[(m, self.prior)] for m in models if (m, self.prior) in self.fits}
        self.tv_models = [m for m in self.per_model if is_time_varying(m, self.per_model[m])]
        # Constant-HR models only: the cure model's "HR" is among the uncured, not the arms' HR.
        self.ph_models = [m for m in self.per_model if m not in self.tv_models and _is_ph(m)]
        self.main = pick(self.ph_models, ("piecewise_ph", "weibull_ph"))
        self.ipd = primary(ipd)
        self.t_last = float(self.ipd["time"].max())

    def cox(self) -> tuple[float, float] | None:
        """The Cox fit to the reconstructed IPD (a frequentist reference row)."""
        data = getattr(next(iter(self.fits.values())), "data", None)
        if data is None:
            return None
        m, se = cox_efron(data.time, data.event, data.arm)
        return (m, se) if np.isfinite(m) and np.isfinite(se) else None

    def triplot_likelihood(self) -> tuple[float, float] | None:
        """The likelihood of the triplot's own model, so prior x likelihood
        gives the posterior drawn: the normal approximation of that model's
        fit under the most diffuse prior, with the prior divided out."""
        from ..tipping import likelihood_from_fit

        cands = [(self.main, p) for p in self.priors if (self.main, p) in self.fits]
        cands = [k for k in cands if hasattr(self.fits[k], "prior") and hasattr(self.fits[k], "model")]
        if not cands:
            return None
        key = max(cands, key=lambda k: float(self.fits[k].prior.sigma))
        return likelihood_from_fit(self.fits[key])

    def draw(self, stem: str, width: float) -> Figure:
        fits, trial, per_model = self.fits, self.trial, self.per_model
        if stem == "fig1_km_reconstruction":
            return plot_km(self.ipd, trial, width=width)
        if stem == "fig2_hr_triplot":
            if self.main is None:
                return placeholder("No constant-HR model was fitted.", width)
            post = {p: fits[(self.main, p)] for p in self.priors if (self.main, p) in fits}
            specs = {p: f.prior for p, f in post.items() if hasattr(f, "prior")}
            lik = self.triplot_likelihood()
            label = (f"Likelihood ({style.model_label(self.main)}, normal approx.)"
                     if width >= 5 else "Likelihood (same model)")
            return plot_hr_triplot(post, specs, trial, likelihood=lik, likelihood_label=label,
                                   model=self.main, width=width)
        if stem == "fig3_forest":
            return plot_forest(fits, trial, likelihood=self.cox(),
                               pooled=getattr(self.grid, "pooled", None) or None, width=width)
        if stem == "fig4_posterior_survival":
            return plot_posterior_survival(per_model, self.ipd, trial, prior=self.prior, width=width)
        if stem == "fig5_hr_over_time":
            if not self.tv_models:
                return placeholder("No time-varying-HR model was fitted.", width)
            tv = per_model[self.tv_models[0]]
            return plot_hr_over_time(tv, {m: per_model[m] for m in self.ph_models}, trial,
                                     tmax=self.t_last, band_model=self.main, prior=self.prior,
                                     width=width)
        if stem == "fig6_prob_benefit":
            return plot_prob_benefit(fits, trial, mcid_hr=self.mcid_hr, width=width)
        if stem == "fig7_rmst_difference":
            step = time_step(trial, self.t_last)
            h_max = max(step, step * int(min(self.t_last, 10 * step) // step))
            horizons = np.linspace(step, h_max, 4 * round(h_max / step) - 3)
            return plot_rmst_difference(per_model, trial, horizons=horizons, ipd=self.ipd,
                                        prior=self.prior, width=width)
        if stem == "fig8_diagnostics":
            return plot_diagnostics(per_model, trial, loo=getattr(self.grid, "loo", None),
                                    prior=self.prior, width=width)
        raise AssertionError(stem)

    def run(self, stem: str) -> tuple[str, list[Path], float, float, float]:
        """Draw and save one figure (each requested width): paths, draw and save
        seconds (wall clock), and the CPU seconds of both."""
        paths: list[Path] = []
        t_draw = t_save = 0.0
        cpu0 = time.process_time()
        for w in self.widths:
            t0 = time.perf_counter()
            fig = self.draw(stem, _WIDTHS[w])
            t1 = time.perf_counter()
            try:
                paths.extend(save_figure(fig, self.outdir, stem if w == "double" else f"{stem}_{w}",
                                         dpi=self.dpi))
            finally:
                fig.clear()
            t_draw += t1 - t0
            t_save += time.perf_counter() - t1
        return stem, paths, t_draw, t_save, time.process_time() - cpu0


_ACTIVE: _Job | None = None  # the job forked workers inherit


def _run_in_worker(stem: str) -> tuple[str, list[Path], float, float, float]:
    assert _ACTIVE is not None
    return _ACTIVE.run(stem)


def _default_workers() -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def _warm_fonts() -> None:
    """Load the font and its glyph cache once, before forking, so workers
    inherit it instead of each loading it."""
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with mpl.rc_context(style.RC):
        fig = Figure(figsize=(1, 1))
        FigureCanvasAgg(fig)
        fig.text(0.1, 0.1, "0123456789 Hazard ratio", fontsize=7)
        fig.text(0.1, 0.5, "x", fontsize=8, fontweight="bold")
        fig.canvas.draw()


def draw_all(
    grid: Any,
    ipd: Any,
    trial: Trial,
    outdir: str | Path = "reports/figures",
    *,
    prior: str | None = None,
    dpi: int = style.DPI,
    mcid_hr: float | None = 0.7,
    width: str = "double",
    progress: Callable[[str, float], Any] | None = None,
    workers: int | None = None,
    timings: dict[str, dict[str, float]] | None = None,
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
        Prior set of the per-model figures (4, 5, 7, 8), named in their
        titles; default ``reference`` (so they show what the data say), else
        the first.
    dpi : int
        PNG resolution (PDFs are vector, with no rasterised parts).
    mcid_hr : float or None, default 0.7
        Minimal clinically important HR, marked in figure 6.
    width : {"double", "single"}
        ``"single"`` also writes a single-column (3.5 in) variant of every
        figure as ``<stem>_single.png`` / ``.pdf``.
    progress : callable, optional
        Called as ``progress(stem, seconds)`` after each figure is written
        (in completion order when drawn in parallel).
    workers : int, optional
        Processes drawing figures; default 2 where ``fork`` is available and
        two CPUs are, else 1 (in-process).
    timings : dict, optional
        Filled with ``{stem: {"draw": s, "save": s, "cpu": s}}``: wall-clock
        seconds drawing and saving, and CPU seconds of both (a measure that
        other load on the machine disturbs less).

    Returns
    -------
    list of Path
        The files written, in figure order (:data:`FIGURE_STEMS`): PNG then
        PDF, then the single-column PNG and PDF if asked for.

    Notes
    -----
    The triplot uses the piecewise PH model (else Weibull PH, else the first
    constant-HR model), which is also the constant-HR band of figure 5; its
    likelihood is that model's own (:func:`kmbayes.tipping.likelihood_from_fit`).
    """
    global _ACTIVE
    if width not in _WIDTHS:
        raise ValueError(f"width must be 'double' or 'single', got {width!r}")
    if dpi < 200:
        raise ValueError(f"dpi must be >= 200 for print, got {dpi}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    widths = ("double",) if width == "double" else ("double", "single")
    job = _Job(grid, ipd, trial, outdir, prior, dpi, mcid_hr, widths)
    n_workers = _default_workers() if workers is None else max(1, int(workers))
    results: dict[str, list[Path]] = {}

    def done(res: tuple[str, list[Path], float, float, float]) -> None:
        stem, paths, t_draw, t_save, cpu = res
        results[stem] = paths
        if timings is not None:
            timings[stem] = {"draw": t_draw, "save": t_save, "cpu": cpu}
        if progress is not None:
            progress(stem, t_draw + t_save)

    if n_workers == 1:
        for stem in FIGURE_STEMS:
            done(job.run(stem))
    else:
        _warm_fonts()
        _ACTIVE = job
        try:
            # Fork: workers inherit the fits and the job without pickling them.
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(n_workers) as pool:
                for res in pool.imap_unordered(_run_in_worker, _COST_ORDER, chunksize=1):
                    done(res)
        finally:
            _ACTIVE = None
    return [p for stem in FIGURE_STEMS for p in results[stem]]
