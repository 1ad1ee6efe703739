"""Curve engine: patient-level data from a digitized Kaplan-Meier curve.

Input per arm: the clicked points of the published curve, the numbers-at-risk
table printed under the figure, ``n`` and (when reported) the total number of
events. Output: one ``(time, event)`` pair of arrays per arm and replicate.

The algorithm follows Guyot et al. (2012) in spirit (work interval by interval
of the at-risk table; convert drops of the curve into event counts using the
reconstructed risk set), with these changes:

* **Corner pairs.** A figure digitized the careful way (``(0, 1)``, then the
  top and bottom corner of every vertical edge, then the end of the curve)
  is recognised as such (:func:`corner_pairs`). Every pair is then a step
  with at least one event, even when its drop is far below reading error
  (one death among 2,000 patients); the two readings of each level are
  averaged, and the levels are fitted by least squares under the
  constraint that every known step drops by at least one event
  (:func:`_min_drop_levels`). Step times are the pair means, sorted along
  the path (pooling crowded, noisy times would stack steps on one time).
* **Published landmarks anchor the levels.** A survival estimate printed to
  3 decimals is a reading of the level ten times more precise than a click
  (rounding SD 0.0003 against about 0.003); it enters the level fit with
  that weight (:func:`_anchor_levels`).
* **Tried and dropped:** choosing where censorings fall inside the table's
  intervals so that the published landmark CIs (Greenwood) are reproduced
  made the 109 validation figures worse (median 0.0047 against 0.0037).
* **Cleaning** (clicks not laid out as corner pairs). Survival in percent is
  rescaled and the curve anchored at ``(0, 1)``. Clicks that come in order
  along the curve (the usual way of digitizing) are forced monotone in both
  time and survival along that order by pool-adjacent-violators; otherwise
  they are sorted by time and survival is made non-increasing. Only the first click of each new level (a drop) is
  kept; when the last click on the old level is close, the two are the
  corners of one vertical edge and the drop is timed at their mean.
* **Exact at-risk numbers.** For each interval the number of censorings is
  found by bisection so that ``events + censorings`` equals the drop in the
  at-risk table, and the remainder is made exact, so the reconstructed
  numbers at risk match the table at every table time.
* **Steps near a table time.** A step read just across a table time is moved
  to the other side when the level fit of both neighbouring intervals gains
  more than the implied time error costs (both in units of reading error).
* **Where censorings fall.** Intervals are first solved with censorings
  evenly spread (Guyot); then the size of each step, which tells the number
  at risk, is weighed against that solution and the cumulative censorings
  implied become the interval's censoring shape.
* **Intervals are fitted relative to their own start**, so an error in one
  interval does not leak into the next.
* **The tail after the table.** Nothing in the figure says when those still
  at risk at the last table time were censored; the reported median
  follow-up (reverse Kaplan-Meier, all arms) does. One spread of the tail's
  censorings, shared by the arms, is chosen so the reconstruction gives the
  reported follow-up (:func:`.curve_followup.followup_gammas`); a follow-up beyond
  both the table and anything the tail can give means censoring at the
  data cut-off, at the end of the curve. When the tail alone still misses
  the reported follow-up by more than the check table accepts, the spread of the
  censorings inside the table interval that holds the follow-up is chosen
  the same way (in a sparse table that interval holds most of them).
* **Exact total events.** Without a reported follow-up (and without corner
  pairs, which pin the events), the reported total decides how early the
  tail's censorings come (a one-parameter spread, by bisection); then one
  rounding threshold shared by all intervals is tuned; anything left is fixed
  by flipping the latest records' status (times unchanged, so the numbers at
  risk stay exact). Guyot et al. only use the total in the last interval.
* **Replicates** 2..K re-read the digitized points with their own reading
  error (:func:`~kmbayes.reconstruct.replicates.reread_curve`, scale chosen
  by cross-validation), then randomise the rounding of event counts, the
  place of each event between its neighbouring clicks and the place of
  censorings inside their interval, keeping n, events and the at-risk
  numbers exact.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.

Liu N, Zhou Y, Lee JJ. IPDfromKM: reconstruct individual patient data from
published Kaplan-Meier survival curves. BMC Med Res Methodol. 2021;21:111.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..trial import Trial
from . import _segment_kernel as _kernel
from . import replicates as _reps
from .curve_followup import arm_tail_gamma, followup_gammas
from .curve_layout import _pava_nonincreasing, clean_curve, corner_pairs, is_trace
from .replicates import reread_curve

__all__ = ["clean_curve", "corner_pairs", "reconstruct_arm", "reconstruct_curve"]

# Bounds of the shared rounding threshold: 0.5 is ordinary rounding. Outside
# this range the curve would be bent more than reading error explains; the
# remaining discrepancy in events is then fixed directly.
_THETA_LO, _THETA_HI = 0.2, 0.8
# Spread of the per-step rounding threshold in replicates 2..K.
_THETA_JITTER = 0.25
# Range of the censoring shape in the tail after the at-risk table.
_TAIL_GAMMA = (0.05, 20.0)
# The six constants below (with curve_layout._CORNER_GAP) were chosen
# jointly, one value serving clicks, traces and corners, by one round of
# coordinate-wise choice from the earlier values (each constant at 3 values,
# criterion median + p90 of |dlog HR| summed over the styles). The nested
# 5-fold cross-validation of that choice (folds by zlib.crc32(name) % 5; the
# procedure of benchmarks/cv_engine_constants.py) scores (median / p90 /
# max) clicks 0.0039 / 0.0175 / 0.058, trace 0.0029 / 0.0161 / 0.061,
# corners 0.0036 / 0.0190 / 0.088. A second round from these values
# (benchmarks/cv_engine_constants.py as shipped) scores no better nested
# (clicks 0.0041 / 0.0200, trace 0.0041 / 0.0161, corners 0.0042 / 0.0190):
# the engine is insensitive to them, and they were left as they are.
#
# A landmark this many step-time reading errors from a step is not used to
# anchor a level: which side of the step it falls on is not known.
_LANDMARK_NEAR = 1.0
# Relative uncertainty of the evenly-spread risk set, as a prior against
# which the step sizes are weighed.
_SHAPE_PRIOR = 0.05
# Reading error of a level (survival units) in the fit of the step sizes and
# in the choice of which side of a table time a step falls.
_SIGMA = 0.01
# How far (fraction of the time axis) a step may be moved across a table
# time: reading error of its time, the window searched, and the weight of
# moving it against the fit of the levels.
_TIME_ERROR = 0.0015
_WINDOW = 0.005
_TIME_WEIGHT = 2.0
# Digitized points times replicates from which the segment kernels are
# compiled (see _segment_kernel): below it, loading numba costs more than the
# compiled loops save. Measured on dev figures, one reconstruction: 485
# points 0.37 s plain vs 0.44 s compiled, 811 points 0.58 s vs 0.46 s.
_COMPILE_MIN_WORK = 600


def _risk_upper(t, at_risk, n) -> np.ndarray:
    """The last table count at or before each time: an upper bound on those at risk."""
    table = sorted((float(a), int(b)) for a, b in at_risk)
    if not table or table[0][0] > 0:
        table.insert(0, (0.0, n))
    tt = np.array([x for x, _ in table])
    nn = np.array([float(y) for _, y in table])
    return np.maximum(nn[np.clip(np.searchsorted(tt, t, side="right") - 1, 0, len(nn) - 1)], 1.0)


def _min_drop_levels(t, lev, w, md, at_risk, n, t_end) -> np.ndarray:
    """Levels closest to the readings in which every known step drops.

    Least squares (weights: readings per level) under ``S_k <= S_{k-1} -
    delta_k``, where ``delta_k = S_{k-1} md_k / n_k`` is the drop of the
    fewest events the step can hold and ``n_k`` the last table count before
    the step (an upper bound on those at risk, so the least drop is never
    overstated). Subtracting the cumulative least drop
    turns this into an ordinary isotonic regression. Plain isotonic
    regression lets reading error flatten and exaggerate steps at random;
    forcing a single-event drop at steps that are known to be there removes
    the upward bias of rounding noise that can only add events.
    """
    # An upper bound on the number at risk (the last table count before the
    # step) gives a lower bound on the least drop: the constraint never
    # asks for more than the step must hold, whatever the censoring did.
    nk = _risk_upper(t, at_risk, n)
    s = _pava_nonincreasing(lev, w)
    for _ in range(3):  # delta depends on the level before the step
        prev = np.r_[1.0, s[:-1]]
        delta = np.where(md > 0, prev * md / nk, 0.0)
        cum = np.cumsum(delta)
        s_new = _pava_nonincreasing(lev + cum, w) - cum
        s_new[0] = 1.0
        s_new = np.clip(s_new, 0.0, 1.0)
        if np.allclose(s_new, s):
            break
        s = s_new
    return s


# --------------------------------------------------------------------------- core


def _below(lo: float, hi: float) -> float:
    """The latest time counted before a table time ``hi``, written or not.

    Output times are written with 6 decimals; the next float below ``hi``
    would be written as ``hi`` itself and the event would cross into the
    next interval of the table. Stay a hair (1e-4 of the interval, at least
    2e-6) below.
    """
    gap = max((hi - lo) * 1e-4, 2e-6)
    return max(lo, hi - gap) if hi - lo > 2 * gap else float(np.nextafter(hi, -np.inf))


@dataclass
class _Segment:
    """One interval of the at-risk table (or the tail after it)."""

    lo: float  # start time (inclusive)
    hi: float  # end time (exclusive for censorings)
    n0: int  # at risk at ``lo``
    n1: int  # at risk at ``hi`` (0 for the tail)
    ts: np.ndarray  # step times inside [lo, hi)
    rs: np.ndarray  # target survival ratio S(t)/S(lo) after each step
    prev_t: np.ndarray  # time of the click before each step (for jitter)
    next_t: np.ndarray  # time of the click after each step (for jitter)
    tail: bool = False  # after the last table time: nobody at risk at ``hi``
    s0: float = 1.0  # survival at ``lo``
    # Cumulative share of the censorings against the segment's time fraction,
    # estimated from the step sizes (None: evenly spread).
    shape: tuple[np.ndarray, np.ndarray] | None = None
    # Least number of events at each step: 1 for a step known to be a drop
    # (read as a corner pair), 0 for a step inferred from the levels alone.
    md: np.ndarray | None = None


def _cens_times(
    seg: _Segment, c: int, rng: np.random.Generator | None, gamma: float = 1.0
) -> np.ndarray:
    """Censoring times inside a segment.

    Quantiles ``u**gamma`` of the segment: ``gamma = 1`` is Guyot's even
    spacing, ``gamma > 1`` crowds censorings early, ``gamma < 1`` late. A
    generator draws ``u`` uniformly instead of evenly.
    """
    if c <= 0:
        return np.empty(0)
    if rng is None:
        u = np.arange(1, c + 1) / (c + 1)
    else:
        u = np.sort(rng.uniform(0.0, 1.0, c))
    x = u**gamma if gamma != 1.0 else u
    if seg.shape is not None:
        xs, fs = seg.shape
        x = np.interp(x, fs, xs)
    out = seg.lo + (seg.hi - seg.lo) * x
    # Censored at a table time would still count as at risk there.
    top = seg.hi if seg.tail else _below(seg.lo, seg.hi)
    return np.minimum(np.maximum(out, seg.lo), max(seg.lo, top))


def _solve_segment(
    seg: _Segment, theta: np.ndarray, rng: np.random.Generator | None, gamma: float = 1.0
):
    """Events per step and censoring times, exact on the segment's at-risk drop.

    The counts come from :func:`._segment_kernel.solve_counts` (compiled on
    large work; ``tests/test_curve_engine.py`` holds it equal to a
    pure-Python reference); only the censorings' final placement may be
    random.
    """
    nts = len(seg.ts)
    md = seg.md.astype(np.int64) if seg.md is not None else np.zeros(nts, dtype=np.int64)
    xs, fs = seg.shape if seg.shape is not None else (_EMPTY, _EMPTY)
    top = seg.hi if seg.tail else _below(seg.lo, seg.hi)
    d, c = _kernel.solve_counts(
        np.asarray(seg.ts, dtype=float), np.asarray(seg.rs, dtype=float), md, int(seg.n0), int(seg.n1),
        float(seg.lo), float(seg.hi), float(top), np.asarray(theta, dtype=float), float(gamma),
        seg.shape is not None, np.asarray(xs, dtype=float), np.asarray(fs, dtype=float),
    )
    return d.astype(int), _cens_times(seg, int(c), rng, gamma)


_EMPTY = np.zeros(0)


def _risk_sets(seg: _Segment, d: np.ndarray, cens: np.ndarray) -> np.ndarray:
    """Number at risk at each step of a segment's solution."""
    n_before = np.searchsorted(cens, seg.ts, side="left")  # censored strictly before
    d_before = np.r_[0, np.cumsum(d)[:-1]]
    return seg.n0 - n_before - d_before


def _fit_shape(seg: _Segment, d: np.ndarray, cens: np.ndarray, sigma: float, s0: float):
    """Where the censorings fall, read off the size of the steps.

    A step of ``d`` events drops the KM by the factor ``1 - d / n``, so its
    size tells the number at risk ``n`` and hence how many were censored
    before it. Each step's reading of ``1 / n`` is combined with the current
    (evenly spread) solution as a prior, weighted by the reading error of the
    curve, and forced monotone; the implied cumulative censorings become the
    segment's censoring shape.
    """
    ctot = len(cens)
    m = d > 0
    if ctot < 2 or m.sum() < 3 or seg.hi <= seg.lo or s0 <= 0:
        return None
    ts, rs = seg.ts[m], seg.rs[m]
    prev = np.r_[1.0, seg.rs[:-1]][m]
    dk = d[m].astype(float)
    nk = _risk_sets(seg, d, cens)[m].astype(float)
    ok = (prev > 0) & (nk > 0)
    if ok.sum() < 3:
        return None
    ts, rs, prev, dk, nk = ts[ok], rs[ok], prev[ok], dk[ok], nk[ok]
    u_obs = (1.0 - rs / prev) / dk
    var_obs = (sigma * math.sqrt(2.0) / (s0 * prev * dk)) ** 2
    u0 = 1.0 / nk
    var0 = (_SHAPE_PRIOR * u0) ** 2
    w = 1.0 / var_obs + 1.0 / var0
    u = (u_obs / var_obs + u0 / var0) / w
    u = -_pava_nonincreasing(-u, w)  # the risk set only shrinks
    n_fit = 1.0 / np.maximum(u, 1e-12)
    d_before = np.r_[0.0, np.cumsum(dk)[:-1]] + 0.0
    # Events at dropped (d == 0) steps do not exist; all kept steps in order.
    c_k = np.clip(seg.n0 - n_fit - d_before, 0.0, ctot)
    c_k = np.maximum.accumulate(c_k)
    xs = np.r_[0.0, (ts - seg.lo) / (seg.hi - seg.lo), 1.0]
    fs = np.r_[0.0, c_k / ctot, 1.0]
    xs = np.maximum.accumulate(np.clip(xs, 0.0, 1.0))
    # np.interp needs increasing abscissae (fs): keep the first of equal values.
    keep = np.r_[True, np.diff(fs) > 1e-9]
    keep[-1] = True
    xs, fs = xs[keep], fs[keep]
    if fs[-1] <= fs[-2] if len(fs) > 1 else True:
        return None
    return xs, fs


def _fit_error(seg: _Segment, d: np.ndarray, cens: np.ndarray) -> float:
    """Squared distance between the reconstructed KM ratio and the curve's."""
    return float(_kernel.fit_error(np.asarray(seg.ts, dtype=float), np.asarray(seg.rs, dtype=float), int(seg.n0),
                           np.asarray(d, dtype=np.int64), np.asarray(cens, dtype=float)))


def _make_segment(t, s, md, t_end, a, b, lo, hi, n0, n1, tail) -> _Segment:
    """Segment ``[lo, hi)`` holding steps ``a:b`` of the cleaned curve."""
    idx = np.arange(a, b)
    s0 = float(s[a - 1])  # level before the segment's first step
    top = hi if tail else _below(lo, hi)
    # Steps moved across a table time by _segments sit at its edge.
    ts = np.clip(t[idx], lo, max(lo, top))
    rs = np.minimum(s[idx] / s0, 1.0) if s0 > 0 else np.zeros(len(idx))
    prev_t = np.maximum(t[idx - 1], lo) if len(idx) else np.empty(0)
    next_t = np.where(idx + 1 < len(t), t[np.minimum(idx + 1, len(t) - 1)], t_end)
    next_t = np.maximum(np.minimum(next_t, top), ts)
    prev_t = np.minimum(prev_t, ts)
    return _Segment(lo, hi, n0, n1, ts, rs, prev_t, next_t, tail, s0, md=md[idx])


def _segment_sse(seg: _Segment) -> float:
    d, cens = _solve_segment(seg, np.full(len(seg.ts), 0.5), None)
    return _fit_error(seg, d, cens) * seg.s0**2


def _segments(
    t: np.ndarray,
    s: np.ndarray,
    md: np.ndarray,
    t_end: float,
    at_risk: Sequence[tuple[float, int]],
    n: int,
    sigma: float,
):
    """Split the cleaned curve by the at-risk table (plus a tail to ``t_end``).

    A step read just across a table time may truly lie on the other side
    (reading error of the time axis); it is moved when that lets both
    neighbouring intervals follow the curve better under their exact
    at-risk numbers.
    """
    table = sorted((float(a), int(b)) for a, b in at_risk)
    if not table or table[0][0] > 0:
        table.insert(0, (0.0, n))
    end = max(t_end, table[-1][0])
    bounds = list(table)
    if bounds[-1][1] > 0:
        # Those still at risk at the last table time leave by the curve's end.
        bounds.append((end, 0))
    has_tail = len(bounds) > len(table)
    nseg = len(bounds) - 1
    btimes = np.array([b[0] for b in bounds])
    # cuts[i]: first step of segment i; step 0 is the (0, 1) anchor.
    cuts = [max(1, int(np.searchsorted(t, x, side="left"))) for x in btimes[:nseg]]
    last_step = len(t) if has_tail else max(1, int(np.searchsorted(t, btimes[-1], side="left")))
    cuts.append(max(last_step, cuts[-1]))

    def make(i: int, a: int, b: int) -> _Segment:
        (lo, n0), (hi, n1) = bounds[i], bounds[i + 1]
        return _make_segment(t, s, md, t_end, a, b, lo, hi, n0, n1, has_tail and i == nseg - 1)

    sigma_t = _TIME_ERROR * max(t_end, btimes[-1])
    w = _WINDOW * max(t_end, btimes[-1])
    for i in range(1, nseg):
        x = btimes[i]
        a, b = cuts[i - 1], cuts[i + 1]
        p_lo = max(a, int(np.searchsorted(t, x - w, side="left")))
        p_hi = min(b, int(np.searchsorted(t, x + w, side="right")))
        if p_hi <= p_lo or (p_lo == cuts[i] == p_hi):
            continue
        # Weigh the fit of the levels against how far the moved steps'
        # times must be off (both as squared standardised reading errors).
        best = (math.inf, cuts[i])
        for p in range(p_lo, p_hi + 1):
            e = _segment_sse(make(i - 1, a, p)) + _segment_sse(make(i, p, b))
            moved = t[min(p, cuts[i]) : max(p, cuts[i])]
            cost = e / sigma**2 + _TIME_WEIGHT * float(np.sum(((moved - x) / sigma_t) ** 2))
            if cost < best[0]:
                best = (cost, p)
        cuts[i] = best[1]
    return [make(i, cuts[i], cuts[i + 1]) for i in range(nseg)]


def _prepare(time, survival, at_risk, n, landmarks=()) -> tuple:
    """The seed-independent part: cleaned curve split into segments.

    ``landmarks`` are the arm's published ``(time, estimate)`` survival
    figures; they anchor the levels of the corner-pair reading (see
    :func:`_anchor_levels`).
    """
    pairs = corner_pairs(time, survival)
    if pairs is not None:
        t, s, md, t_end, w, (spread, time_sd) = pairs
        s, w = _anchor_levels(t, s, w, spread, time_sd, landmarks)
        s = _min_drop_levels(t, s, w, md, at_risk, n, t_end)
    else:
        t, s, t_end = clean_curve(time, survival)
        md = np.zeros(len(t), dtype=int)
    sigma = _SIGMA
    return t_end, sigma, _segments(t, s, md, t_end, at_risk, n, sigma)


def _anchor_levels(t, lev, w, spread, time_sd, landmarks):
    """Add the published landmark survival as precise readings of the levels.

    A landmark estimate printed to ``k`` decimals is the level in force at
    that time with rounding error of SD ``10**-k / sqrt(12)`` (0.0003 for 3
    decimals), against about 0.003 for a click. It enters the weighted
    least squares of the levels as that many clicks' worth of readings.
    Landmarks within two time-reading errors of a step are skipped: which
    side of the step they fall on is not known.
    """
    if not landmarks or spread <= 0 or len(t) < 2:
        return lev, w
    lev, w = lev.copy(), w.copy()
    var_click = spread**2 / 2.0  # spread is the SD of a difference of two clicks
    near = _LANDMARK_NEAR * time_sd
    for lt, est in landmarks:
        k = int(np.searchsorted(t, lt, side="right")) - 1
        if k < 1 or k >= len(t):
            continue
        if abs(t[k] - lt) < near or (k + 1 < len(t) and abs(t[k + 1] - lt) < near):
            continue
        dec = _decimals(est)
        var_lm = (10.0**-dec) ** 2 / 12.0
        wk = var_click / var_lm
        lev[k] = (lev[k] * w[k] + est * wk) / (w[k] + wk)
        w[k] = w[k] + wk
    return lev, w


def _decimals(x: float) -> int:
    """Decimals a published survival was printed with: at least 3, at most 6.

    A parsed ``0.790`` is ``0.79``: trailing zeros are lost, so fewer than 3
    decimals are not believed (3 decimals, or percent with one, is how
    landmark survival is printed).
    """
    s = repr(float(x))
    if "e" in s or "." not in s:
        return 3
    return int(min(6, max(3, len(s.split(".")[1].rstrip("0")))))


def reconstruct_arm(
    time: np.ndarray,
    survival: np.ndarray,
    at_risk: Sequence[tuple[float, int]],
    n: int,
    events: int | None = None,
    rng: np.random.Generator | None = None,
    *,
    tail_gamma: float | None = None,
    body_gamma: float = 1.0,
    body_at: float | None = None,
    _prepared: tuple | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruct one arm's IPD from its digitized curve and at-risk table.

    Parameters
    ----------
    time, survival : array_like
        Digitized clicks (any order, noisy, survival as fraction or percent).
    at_risk : sequence of (time, n)
        Numbers at risk; a row at time 0 is implied (``n``) when missing.
    n : int
        Patients in the arm.
    events : int, optional
        Reported total events; reproduced exactly when feasible.
    rng : numpy.random.Generator, optional
        ``None`` gives the best (deterministic) reconstruction; a generator
        gives a plausible alternative (see module docstring).
    tail_gamma, body_gamma : float, optional
        Spread of the censorings (see :func:`_cens_times`) after the table
        and inside the table interval ``(lo, hi]`` that holds ``body_at``;
        chosen from the reported follow-up by
        :func:`.curve_followup.followup_gammas`.

    Returns
    -------
    time, event : numpy.ndarray
        Length ``n``; ``event`` is 1 for an event, 0 for a censoring.

    References
    ----------
    Guyot P, Ades AE, Ouwens MJ, Welton NJ. BMC Med Res Methodol. 2012;12:9.
    """
    t_end, sigma, segs = _prepared or _prepare(time, survival, at_risk, n)
    for g in segs:
        g.shape = None  # refitted below (segments may be shared by replicates)
    nsteps = sum(len(g.ts) for g in segs)
    jitter = (
        rng.uniform(-_THETA_JITTER, _THETA_JITTER, nsteps) if rng is not None else np.zeros(nsteps)
    )
    cuts = np.cumsum([0] + [len(g.ts) for g in segs])

    # Censoring spread per segment (see _cens_times).
    gammas = [float(body_gamma) if body_at is not None and not g.tail and g.lo < body_at <= g.hi else 1.0
              for g in segs]
    fixed_tail = tail_gamma is not None and bool(segs) and segs[-1].tail
    if fixed_tail:
        gammas[-1] = float(tail_gamma)

    def solve(theta0: float, crng: np.random.Generator | None = None):
        out = []
        for i, g in enumerate(segs):
            th = np.clip(theta0 + jitter[cuts[i] : cuts[i + 1]], 0.0, 1.0)
            out.append(_solve_segment(g, th, crng, gammas[i]))
        return out

    def n_events(sol) -> int:
        return sum(int(d.sum()) for d, _ in sol)

    def fit_tail(sol):
        # After the table nothing pins the risk set, and even spacing of the
        # censorings up to the curve's end is the weakest assumption of
        # Guyot's: let the reported total choose how early they come (events
        # fall as gamma grows, i.e. as censorings come earlier).
        if events is None or not segs[-1].tail or n_events(sol) == events or fixed_tail:
            return sol
        g = segs[-1]
        target = events - (n_events(sol) - int(sol[-1][0].sum()))
        th = np.clip(0.5 + jitter[cuts[-2] :], 0.0, 1.0)
        lo, hi = math.log(_TAIL_GAMMA[0]), math.log(_TAIL_GAMMA[1])
        best = (abs(int(sol[-1][0].sum()) - target), 0.0, 0.0)
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            e_mid = int(_solve_segment(g, th, None, math.exp(mid))[0].sum())
            best = min(best, (abs(e_mid - target), abs(mid), mid))
            if e_mid == target:
                break
            if e_mid < target:
                hi = mid
            else:
                lo = mid
        gammas[-1] = math.exp(best[2])
        return solve(0.5)

    theta = 0.5
    sol = fit_tail(solve(theta))
    # Second pass: censorings where the step sizes put them.
    for i, g in enumerate(segs):
        if fixed_tail and g.tail:
            continue  # the follow-up decides the tail's censorings
        g.shape = _fit_shape(g, sol[i][0], sol[i][1], sigma, g.s0)
        if g.shape is not None and g.tail:
            gammas[i] = 1.0  # the shape already holds the fitted spread
    sol = fit_tail(solve(theta))
    if events is not None and n_events(sol) != events:
        # Events grow with theta: bisect for the threshold closest to the total.
        lo, hi = _THETA_LO, _THETA_HI
        best = (abs(n_events(sol) - events), 0.0, theta)
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            e_mid = n_events(solve(mid))
            cand = (abs(e_mid - events), abs(mid - 0.5), mid)
            best = min(best, cand)
            if e_mid == events:
                break
            if e_mid < events:
                lo = mid
            else:
                hi = mid
        theta = best[2]
    # Final draw (censoring positions random in replicates).
    if rng is not None:
        sol = solve(theta, rng)
    else:
        sol = solve(theta)

    ev_t: list[np.ndarray] = []
    ce_t: list[np.ndarray] = []
    for g, (d, cens) in zip(segs, sol):
        et = g.ts
        if rng is not None and len(et):
            # Where exactly between its neighbouring clicks an event fell.
            a = 0.5 * (g.prev_t + et)
            b = 0.5 * (et + g.next_t)
            a = np.maximum(a, g.lo)
            b = np.minimum(b, _below(g.lo, g.hi)) if g.hi > g.lo else b
            b = np.maximum(a, b)
            et = rng.uniform(a, b)
        ev_t.append(np.repeat(et, d))
        ce_t.append(cens)
    ev = np.concatenate(ev_t) if ev_t else np.empty(0)
    ce = np.concatenate(ce_t) if ce_t else np.empty(0)
    # Anyone unaccounted for (only if the table is inconsistent with n) is
    # censored at the end of the curve.
    missing = n - len(ev) - len(ce)
    if missing > 0:
        ce = np.concatenate([ce, np.full(missing, max(t_end, 0.0))])
    tt = np.concatenate([ev, ce])
    ee = np.concatenate([np.ones(len(ev), dtype=int), np.zeros(len(ce), dtype=int)])
    tt, ee = tt[:n], ee[:n]
    if events is not None:
        tt, ee = _force_events(tt, ee, events)
    # An event at time 0 would be dropped by most software: nudge it inside.
    pos = tt[tt > 0]
    tiny = (pos.min() if pos.size else 1.0) * 1e-3
    tt = np.where((tt <= 0) & (ee == 1), tiny, tt)
    return tt.astype(float), ee.astype(int)


def _force_events(tt: np.ndarray, ee: np.ndarray, events: int) -> tuple[np.ndarray, np.ndarray]:
    """Match the total events by flipping the latest records' status.

    Flipping keeps every time, so the numbers at risk stay exact; the latest
    records are flipped because the at-risk table says least about them.
    """
    tt, ee = tt.copy(), ee.copy()
    diff = events - int(ee.sum())
    if diff > 0:
        idx = np.nonzero(ee == 0)[0]
        idx = idx[np.argsort(-tt[idx], kind="stable")][:diff]
        ee[idx] = 1
    elif diff < 0:
        idx = np.nonzero(ee == 1)[0]
        idx = idx[np.argsort(-tt[idx], kind="stable")][:-diff]
        ee[idx] = 0
    return tt, ee


def reconstruct_curve(
    trial: Trial, *, seed: int, replicates: int
) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Reconstruct every arm of a trial from its curve and at-risk table.

    Parameters
    ----------
    trial : Trial
        Every arm has ``curve`` and ``at_risk``. ``trial.reported_*`` is
        never read.
    seed : int
        Seed for replicates 2..K (replicate 1 does not use randomness).
    replicates : int
        Number of reconstructions; replicate 1 is the best one.

    Returns
    -------
    list of dict
        ``out[k][arm_id] = (time, event)``.

    References
    ----------
    Guyot P, Ades AE, Ouwens MJ, Welton NJ. BMC Med Res Methodol. 2012;12:9.
    """
    out: list[dict[str, tuple[np.ndarray, np.ndarray]]] = [{} for _ in range(max(1, replicates))]
    root = np.random.SeedSequence([abs(int(seed)), int(seed < 0)])
    children = root.spawn(len(trial.arm_ids) * len(out))
    inputs = {}
    for arm_id in trial.arm_ids:
        arm = trial.arms[arm_id]
        assert arm.curve is not None
        ct, cs = arm.curve
        table = [(a.time, a.n) for a in arm.at_risk]
        marks = [(lm.time, lm.estimate) for lm in arm.survival]
        inputs[arm_id] = (ct, cs, table, arm.n, arm.events, _prepare(ct, cs, table, arm.n, marks))
    if sum(len(v[0]) for v in inputs.values()) * len(out) >= _COMPILE_MIN_WORK:
        _kernel.compile_kernels()
    gamma, body = followup_gammas(trial, inputs, reconstruct_arm)
    for j, arm_id in enumerate(trial.arm_ids):
        ct, cs, table, n, events, prep = inputs[arm_id]
        marks = [(lm.time, lm.estimate) for lm in trial.arms[arm_id].survival]
        trace = is_trace(ct, cs)
        g_arm = arm_tail_gamma(gamma, prep)
        for r in range(len(out)):
            rng = None if r == 0 else np.random.default_rng(children[j * len(out) + r])
            prep_r = prep
            scale = _reps.TRACE_READ if trace else _reps.CURVE_READ
            if rng is not None and scale > 0:
                # The figure read again with its own reading error (calibrated
                # scale, see replicates.py): what a different digitization
                # of the same figure could have given.
                rt, rs_ = reread_curve(ct, cs, scale, rng)
                prep_r = _prepare(rt, rs_, table, n, marks)
            out[r][arm_id] = reconstruct_arm(
                ct, cs, table, n, events, rng, tail_gamma=g_arm, body_gamma=body,
                body_at=trial.followup_median, _prepared=prep_r
            )
    return out
