"""Calibrated replicates: plausible IPD given the published numbers.

Replicate 1 is an engine's best reconstruction. Replicates 2..K must spread
as much as the real reconstruction error does, so that the truth falls in
their central 90% in about 90% of trials. The engines' own randomisation
(draws of the model's parameters, where events fall between clicks, the
rounding of event counts) leaves them about five times too narrow: what it
ignores is what the published numbers do not pin at all.

Two perturbations supply it, each with one scale chosen by 5-fold
cross-validation over the development figures
(``benchmarks/cv_reconstruction.py``: folds by ``zlib.crc32(name) % 5``;
on each fold the scale is chosen on the other four so that the central 90%
of 20 replicates holds the original log HR in 90% of trials, and the figure
reported is the coverage on the fold left out):

* **Hazard shape between published times** (summary engine). Between two
  consecutive times the publication pins (landmarks, the ends of the
  rounding interval of a median or CI bound, the end of follow-up), the
  number of deaths is known but not when they fell. Each replicate tilts
  the deaths inside every such interval by the monotone map
  ``u -> (exp(b u) - 1) / (exp(b) - 1)`` of the interval onto itself, with
  ``b ~ N(0, SUMMARY_TILT^2)`` drawn per arm and interval
  (:func:`tilt_events`). Deaths never leave their interval, so the counts
  before every published time, and with them the landmark survival and the
  medians, are kept.
* **Reading error of the curve** (curve engine). Each replicate re-reads
  the digitized points with independent error of ``CURVE_READ`` times the
  reading error estimated from the points themselves
  (:func:`reread_curve`) and reconstructs from the re-read curve; the
  at-risk table, n and events stay exact.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.

Efron B, Tibshirani RJ. An Introduction to the Bootstrap. New York: Chapman
& Hall; 1993 (the parametric bootstrap the re-reading follows).
"""

from __future__ import annotations

import math

import numpy as np

# SD of the log tilt of the deaths inside an interval (summary engine).
# Chosen by 5-fold CV (benchmarks/cv_reconstruction.py --mode summary, grid
# 2.5, 3, 4, with the summary engine's constants as shipped): the folds
# chose 3 four times and 2.5 once; held-out coverage of the central 90% of
# 20 replicates 0.908 (80%: 0.844) over 109 dev figures. The summaries'
# errors are heavy-tailed (median 0.015, p90 0.055), so calibrated coverage
# comes with a median |z| of 0.38 rather than the Gaussian 0.67.
SUMMARY_TILT = 3.0
# Re-reading error of a digitized curve in units of its estimated reading
# error (curve engine). Chosen by 5-fold CV (benchmarks/cv_reconstruction.py
# --mode curve --digitize clicks, grid 2, 3, 4, after the engine's constants
# were chosen): folds chose 2 four times and 3 once; held-out coverage of the
# central 90% of 20 replicates 0.890 (80%: 0.853). Larger than 1 because the
# re-read curve is cleaned again, which removes much of the added error, and
# because the error of a reconstruction also has sources other than reading
# (censoring inside intervals, the tail).
CURVE_READ = 2.0
# The same for a dense automatic trace (curve_layout.is_trace), chosen by
# 5-fold CV on traces (benchmarks/cv_reconstruction.py --mode curve
# --digitize trace, grid 1, 2, 3): folds chose 2 four times and 1 once;
# held-out coverage of the central 90% of 20 replicates 0.862 (80%: 0.789).
TRACE_READ = 2.0


def _tilt(u: np.ndarray, b: float) -> np.ndarray:
    """Monotone map of [0, 1] onto itself; ``b > 0`` pushes mass to the start."""
    if abs(b) < 1e-8:
        return u
    # Written with expm1 so small tilts stay accurate; the map is exactly
    # (exp(b u) - 1) / (exp(b) - 1) reflected so b > 0 means earlier deaths.
    return 1.0 - np.expm1(b * (1.0 - u)) / math.expm1(b)


def tilt_events(t: np.ndarray, e: np.ndarray, edges: np.ndarray, scale: float,
                rng: np.random.Generator) -> np.ndarray:
    """Move each death within its interval of ``edges`` by a random tilt.

    Parameters
    ----------
    t, e : numpy.ndarray
        One arm's times and event indicators.
    edges : numpy.ndarray
        Increasing times the publication pins, starting at 0 and ending at
        the end of follow-up; deaths stay between the same two edges.
    scale : float
        SD of the tilt ``b`` of each interval.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        New times (censorings unchanged).
    """
    t = np.asarray(t, dtype=float).copy()
    if scale <= 0 or edges.size < 2:
        return t
    b = rng.normal(0.0, scale, edges.size - 1)
    dead = np.asarray(e) == 1
    j = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, edges.size - 2)
    lo, hi = edges[j], edges[j + 1]
    width = np.maximum(hi - lo, 1e-300)
    u = np.clip((t - lo) / width, 0.0, 1.0)
    moved = np.empty_like(t)
    for k in np.unique(j[dead]):
        m = dead & (j == k)
        moved[m] = lo[m] + width[m] * _tilt(u[m], float(b[k]))
    t[dead] = np.where(t[dead] < edges[-1], moved[dead], t[dead])
    return t


def reading_error(time: np.ndarray, survival: np.ndarray) -> tuple[float, float]:
    """Reading error (SD of survival, SD of time) estimated from the points.

    Clicks along a step curve come in runs on one level; the differences of
    survival between neighbouring clicks that lie within the curve's smallest
    real drops are reading error. We take the median absolute difference of
    consecutive survival readings from the lower quartile of the non-zero
    differences (robust to the real drops) and scale it to an SD of one
    reading. Time error is taken as the same fraction of the time axis as
    the survival error is of the [0, 1] survival axis: digitizers read both
    axes at about one resolution. A dense trace gives time at column
    centres: its time error is that of rounding to a column.
    """
    s = np.asarray(survival, dtype=float)
    t = np.asarray(time, dtype=float)
    if s.size and s.max() > 1.5:
        s = s / 100.0
    from .curve_layout import is_trace  # here: curve_layout does not need this module

    dense = is_trace(t, s)
    d = np.abs(np.diff(s))
    d = d[d > 0]
    if d.size < 4:
        return 0.002, 0.002 * max(float(t.max(initial=0.0)), 1e-9)
    # Lower quartile of |difference of two readings| is 0.3186 sqrt(2) sd
    # for pure reading error; real drops only sit in the upper part.
    sd_s = float(np.quantile(d, 0.25)) / (0.3186 * math.sqrt(2.0))
    sd_s = min(max(sd_s, 1e-4), 0.02)
    sd_t = sd_s * float(t.max() - t.min())
    if dense:
        # A trace reads time at column centres: its time error is the
        # rounding to a column, not a click's.
        sd_t = float(np.median(np.diff(np.sort(t)))) / math.sqrt(12.0)
    return sd_s, sd_t


def reread_curve(time: np.ndarray, survival: np.ndarray, scale: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The digitized points read again with ``scale`` times their reading error."""
    t = np.asarray(time, dtype=float)
    s = np.asarray(survival, dtype=float)
    if scale <= 0:
        return t, s
    pct = s.size and s.max() > 1.5
    s1 = s / 100.0 if pct else s
    sd_s, sd_t = reading_error(t, s1)
    tt = np.clip(t + rng.normal(0.0, scale * sd_t, t.size), 0.0, None)
    ss = np.clip(s1 + rng.normal(0.0, scale * sd_s, s.size), 0.0, 1.0)
    # The anchor (0, 1) is known, not read.
    anchor = (t <= 0) & (s1 >= 1.0)
    tt[anchor], ss[anchor] = t[anchor], s1[anchor]
    return tt, (ss * 100.0 if pct else ss)
