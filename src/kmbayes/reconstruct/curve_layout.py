"""Recognising how a Kaplan-Meier figure was digitized, and cleaning it.

Three layouts reach the curve engine:

* **corners**: ``(0, 1)``, then the top and bottom corner of every vertical
  edge, then the end of the curve (:func:`corner_pairs`);
* **clicks**: points clicked along the curve in any other pattern (ends of
  the visible horizontal segments, a few points per level), cleaned into a
  monotone step curve by :func:`clean_curve`;
* **trace**: an automatic extractor's dense output, one point per pixel
  column at near-constant spacing, with no vertical pairs: no step time is
  given, only the level in each column (:func:`is_trace`). Reading
  consecutive trace points as corner pairs would invent a step with at least
  one death in every pair of columns; a trace goes through
  :func:`clean_curve`, whose least-squares monotone fit averages the
  level's pixel jitter over each flat stretch.

:func:`curve_layout` names the layout it recognises.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.

Barlow RE, Bartholomew DJ, Bremner JM, Brunk HD. Statistical Inference under
Order Restrictions. New York: Wiley; 1972 (pool adjacent violators).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["clean_curve", "corner_pairs", "curve_layout", "is_trace"]

# Two clicks this close (fraction of the time axis) across a drop are read as
# the top and bottom corner of the same step. Chosen by nested 5-fold
# cross-validation with the curve engine's constants (see curve.py).
_CORNER_GAP = 0.04
# A trace: at least this many points, and at most this share of consecutive
# time gaps under half the typical gap (a vertical edge clicked twice).
_TRACE_MIN_POINTS = 60
_TRACE_SHORT_GAPS = 0.05


def is_trace(time: np.ndarray, survival: np.ndarray) -> bool:
    """Whether the points are a dense automatic trace (one per pixel column).

    A trace has many points at near-constant time spacing and no vertical
    pairs (two readings at one time); clicked corners and segment ends come
    in pairs whose time gap is a small fraction of the typical gap. Gaps
    where the extractor lost the line are allowed (they are long, not short).
    """
    t = np.sort(np.asarray(time, dtype=float).ravel())
    t = t[t > 0]
    if t.size < _TRACE_MIN_POINTS:
        return False
    dt = np.diff(t)
    typical = float(np.median(dt))
    if typical <= 0:
        return False
    short = float(np.mean(dt < 0.5 * typical))
    regular = float(np.mean(np.abs(dt - typical) <= 0.25 * typical))
    return short <= _TRACE_SHORT_GAPS and regular >= 0.8


def curve_layout(time: np.ndarray, survival: np.ndarray) -> str:
    """``"trace"``, ``"corners"`` or ``"clicks"``: how the figure was digitized."""
    if is_trace(time, survival):
        return "trace"
    return "corners" if corner_pairs(time, survival) is not None else "clicks"




def _pava_nonincreasing(y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares non-increasing fit (pool adjacent violators)."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    vals: list[float] = []
    wts: list[float] = []
    lens: list[int] = []
    for i in range(n):
        vals.append(y[i])
        wts.append(w[i])
        lens.append(1)
        # A later value above an earlier one violates monotonicity: pool them.
        while len(vals) > 1 and vals[-1] > vals[-2]:
            v2, w2, l2 = vals.pop(), wts.pop(), lens.pop()
            v1, w1, l1 = vals[-1], wts[-1], lens[-1]
            wt = w1 + w2
            vals[-1] = (v1 * w1 + v2 * w2) / wt
            wts[-1] = wt
            lens[-1] = l1 + l2
    return np.repeat(np.asarray(vals), np.asarray(lens, dtype=int))


def _is_path_order(t: np.ndarray, s: np.ndarray) -> bool:
    """Whether clicks come in order along the curve (up to reading error).

    True when points sit close to their place in the time-sorted order and in
    the survival-sorted order; a shuffled or otherwise sorted file is False.
    """
    m = len(t)
    if m < 4:
        return False
    pos = np.arange(m)
    rank_t = np.empty(m, dtype=int)
    rank_t[np.lexsort((-s, t))] = pos
    rank_s = np.empty(m, dtype=int)
    rank_s[np.lexsort((t, -s))] = pos
    # Either coordinate may be the noisy one: crowded steps shuffle times,
    # tiny drops shuffle levels; a file in path order keeps at least one.
    disp = min(np.median(np.abs(rank_t - pos)), np.median(np.abs(rank_s - pos)))
    return float(disp) <= max(3.0, 0.02 * m)


def clean_curve(time: np.ndarray, survival: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Turn raw clicks into a monotone step curve.

    Parameters
    ----------
    time, survival : array_like
        Digitized points in any order; survival as a fraction or in percent.

    Returns
    -------
    t, s : numpy.ndarray
        Times where the cleaned curve reaches a new, lower level and that
        level, starting with ``(0, 1)``; strictly increasing in ``t`` (ties
        merged) and strictly decreasing in ``s``.
    t_end : float
        Last clicked time: where the curve (and follow-up) ends.
    """
    t = np.asarray(time, dtype=float).ravel()
    s = np.asarray(survival, dtype=float).ravel()
    ok = np.isfinite(t) & np.isfinite(s)
    t, s = t[ok], s[ok]
    if len(s) and s.max() > 1.5:  # percent
        s = s / 100.0
    t = np.clip(t, 0.0, None)
    s = np.clip(s, 0.0, 1.0)
    t_end = float(t.max()) if len(t) else 0.0
    # The curve starts at 1 by definition: anchor it so reading error at the
    # top cannot become events at time 0.
    t = np.concatenate([[0.0], t])
    s = np.concatenate([[1.0], s])
    if _is_path_order(t, s):
        # Clicks taken along the curve: their order separates the two corners
        # of a step better than noisy times do. Force both coordinates
        # monotone along that path.
        t = -_pava_nonincreasing(-t)
        s = _pava_nonincreasing(s)
        order = np.lexsort((-s, t))
        t, s = t[order], s[order]
    else:
        order = np.lexsort((-s, t))
        t, s = t[order], s[order]
        s = _pava_nonincreasing(s)
    # Only the first click of each level carries information (the drop).
    new_level = np.r_[True, s[1:] < s[:-1] - 1e-12]
    # A drop lies between the last click on the old level and the first on
    # the new one. When the two are close they are the two corners of one
    # vertical edge, read with independent error: their mean is the better
    # time. Far apart, the drop is where the new level was clicked.
    prev_t = np.r_[t[0], t[:-1]]
    close = (t - prev_t) <= _CORNER_GAP * max(t_end, 1e-12)
    t = np.where(new_level & close, 0.5 * (t + prev_t), t)
    t, s = t[new_level], s[new_level]
    # Within a tied time keep the lowest level (the bottom of a vertical drop).
    last_of_time = np.r_[t[1:] != t[:-1], True]
    t, s = t[last_of_time], s[last_of_time]
    if s[0] < 1.0:  # a drop at time 0: keep the anchor at 1 just before it
        t = np.concatenate([[0.0], t])
        s = np.concatenate([[1.0], s])
    return t, s, t_end


def corner_pairs(time: np.ndarray, survival: np.ndarray):
    """Read clicks taken as the two corners of every step, when they are.

    A careful digitization of a Kaplan-Meier figure clicks ``(0, 1)``, then
    the top and the bottom corner of every vertical edge in turn, then the
    end of the curve. Each pair is then known to be a drop (at least one
    event), however small and however noisy its reading: steps of one event
    in a trial of 2,000 patients are far below reading error, and reading
    the levels alone loses them.

    The layout is recognised, not assumed: clicks in path order, of the form
    anchor + pairs + end, whose within-pair survival changes add up to the
    whole fall of the curve while the between-pair changes add up to no
    more than reading error (a sum of ``m`` noise terms, so within
    ``4 sqrt(m)`` of their own spread).

    Returns
    -------
    (t, s, min_d, t_end, w, (spread, time_sd)) or None
        Step times (mean of the two corner times, sorted along the path),
        levels after each step (the readings of a level averaged, not yet
        made monotone), the minimum number of events at each step (steps
        whose times coincide are merged), the end of the curve, the number
        of readings behind each level, the SD of a drop reading (from the
        between-pair changes) and of a step time (from the within-pair time
        differences); ``None`` when the clicks are not laid out as corner
        pairs.
    """
    t = np.asarray(time, dtype=float).ravel()
    s = np.asarray(survival, dtype=float).ravel()
    if len(t) < 6 or not (np.all(np.isfinite(t)) and np.all(np.isfinite(s))):
        return None
    if is_trace(t, s):
        return None  # consecutive columns of a trace are not the corners of a step
    if s.max() > 1.5:  # percent
        s = s / 100.0
    t = np.clip(t, 0.0, None)
    s = np.clip(s, 0.0, 1.0)
    t_end = float(t.max())
    if t_end <= 0 or not _is_path_order(t, s):
        return None
    # Drop a leading anchor at (0, 1) and a trailing end-of-curve click.
    a = 1 if (t[0] <= 1e-9 and s[0] >= 1.0 - 1e-9) else 0
    body_t, body_s = t[a:], s[a:]
    if len(body_t) % 2 == 1:
        body_t, body_s = body_t[:-1], body_s[:-1]
    m = len(body_t) // 2
    if m < 2:
        return None
    top_t, bot_t = body_t[0::2], body_t[1::2]
    top_s, bot_s = body_s[0::2], body_s[1::2]
    within = top_s - bot_s  # the drops
    between = bot_s[:-1] - top_s[1:]  # reading error only, if pairs are right
    spread = float(np.std(np.r_[between, -between])) if len(between) > 1 else 0.0
    fall = float(top_s[0] - bot_s[-1])
    if fall <= 0:
        return None
    # Within a pair the two times read the same instant; between pairs they
    # follow the curve. Where steps are far apart that settles it; where
    # they crowd (or are tiny), the levels must: the drops should hold the
    # whole fall and the between-pair changes only reading error.
    by_time = np.median(np.abs(bot_t - top_t)) < 0.5 * np.median(top_t[1:] - bot_t[:-1])
    noise = 4.0 * spread * math.sqrt(max(len(between), 1))
    by_level = (within.sum() >= max(fall - noise, 0.5 * fall)
                and abs(between.sum()) <= max(noise, 0.1 * fall))
    if not (by_time or by_level):
        return None
    if np.median(np.abs(bot_t - top_t)) > np.median(np.diff(0.5 * (top_t + bot_t))) + 0.01 * t_end:
        return None
    # Steps come in path order, so the k-th step is at the k-th earliest
    # time. Sorting keeps crowded steps apart; pooling them (isotonic
    # regression) would stack many steps on one time.
    tau = np.sort(0.5 * (top_t + bot_t))
    # Level k (after step k) is read at the bottom of step k and at the top
    # of step k + 1 (and at the end click for the last level).
    lev_sum = bot_s.copy()
    lev_n = np.ones(m)
    lev_sum[:-1] += top_s[1:]
    lev_n[:-1] += 1
    if a + 2 * m < len(t):
        lev_sum[-1] += s[-1]
        lev_n[-1] += 1
    lev = np.minimum(lev_sum / lev_n, 1.0)
    md = np.ones(m, dtype=int)
    # Steps at one time are one step of the curve: merge them.
    keep = np.r_[tau[1:] > tau[:-1] + 1e-12, True]
    grp = np.cumsum(np.r_[0, keep[:-1]])
    md = np.bincount(grp, weights=md).astype(int)
    # Merged steps: the last level, with the weight of all its readings.
    lev_w = np.bincount(grp, weights=lev_n)
    lev = lev[keep]
    tau = tau[keep]
    if tau[0] <= 0:
        tau = np.maximum(tau, 1e-9 * t_end)
    # SD of a step's time (mean of two corners, each read with the error
    # that separates them).
    time_sd = float(np.std(bot_t - top_t)) / 2.0
    return np.r_[0.0, tau], np.r_[1.0, lev], np.r_[0, md], t_end, np.r_[1e6, lev_w], (spread, time_sd)


