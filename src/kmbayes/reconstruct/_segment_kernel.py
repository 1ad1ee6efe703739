"""Compiled inner loop of the curve engine: events per step in one segment.

:func:`solve_counts` is :func:`kmbayes.reconstruct.curve._solve_segment`
without its final (possibly random) placement of the censorings: the
smallest number of evenly placed censorings ``c`` for which the events the
curve implies plus ``c`` reach the segment's at-risk drop, then the trim to
that drop. It runs for every probe of every search of the engine (the
boundary search, the follow-up and event-count bisections, each replicate),
so on large work (many curve points times replicates) the engine swaps these
functions for numba-compiled versions cached on disk
(:func:`compile_kernels`). On small work the same code runs as plain Python:
importing and loading numba costs more than it saves there.
``tests/test_curve_engine.py`` keeps the engine's original pure-Python loop
and bisection as the reference and holds both paths equal to it, count for
count.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import math

import numpy as np


def _cens(c, lo, hi, top, gamma, has_shape, xs, fs):
    """Evenly spread censoring times (``curve._cens_times`` without a generator)."""
    out = np.empty(c)
    for j in range(c):
        u = (j + 1) / (c + 1)
        out[j] = u**gamma if gamma != 1.0 else u
    if has_shape:
        out = np.interp(out, fs, xs)
    top = max(lo, top)
    for j in range(c):
        v = lo + (hi - lo) * out[j]
        out[j] = min(max(v, lo), top)
    return out


def _alloc(ts, rs, md, n0, theta, cens):
    """Events at each step so the KM through the risk set tracks the curve.

    At a step the expected count is ``x = n (1 - r_k / km)`` with ``km`` the
    reconstructed KM ratio so far (so reading error does not accumulate);
    ``floor(x + theta)`` is rounding when ``theta = 0.5``. A censoring tied
    with an event time is still at risk (KM convention).
    """
    k_n = ts.size
    d = np.zeros(k_n, dtype=np.int64)
    before = np.searchsorted(cens, ts, side="left")
    dead = 0
    km = 1.0
    for k in range(k_n):
        n = n0 - before[k] - dead
        if n <= 0 or km <= 0.0:
            break
        x = n * (1.0 - rs[k] / km)
        dk = int(math.floor(x + theta[k]))
        if md[k] > dk:
            dk = md[k]
        if dk > 0:
            if dk > n:
                dk = n
            km *= 1.0 - dk / n
            dead += dk
            d[k] = dk
    return d


def solve_counts(ts, rs, md, n0, n1, lo, hi, top, theta, gamma, has_shape, xs, fs):
    """Events per step and the number of censorings of one segment.

    Parameters mirror :class:`kmbayes.reconstruct.curve._Segment`; ``top``
    is the latest censoring time allowed, ``md`` the least events per step
    (zeros when none), ``xs``/``fs`` the censoring shape when ``has_shape``.

    Returns
    -------
    d : numpy.ndarray of int64
    c : int
    """
    total = n0 - n1  # events + censorings inside the segment

    def events(c):
        return _alloc(ts, rs, md, n0, theta, _cens(c, lo, hi, top, gamma, has_shape, xs, fs))

    # sum(d(c)) + c grows with c (each censoring removes at most about one
    # event): find the smallest c where it reaches the target. The events
    # depend only weakly on c, so the iteration c <- total - sum(d(c)) from
    # c = 0 climbs to that c in a few solves (it cannot pass it: for c below
    # it, total - sum(d(c)) is at most it); bisection takes over if it is slow.
    d_lo = events(0)
    if d_lo.sum() >= total:
        d = d_lo
    else:
        c_lo = 0
        c_hi = -1
        d_hi = d_lo
        for _ in range(6):
            c = total - d_lo.sum()
            d_c = events(c)
            if d_c.sum() + c >= total:
                c_hi = c
                d_hi = d_c
                break
            c_lo = c
            d_lo = d_c
        flat = False
        if c_hi < 0:
            c_hi = total
            d_hi = events(total)
            if d_hi.sum() + c_hi < total:
                flat = True
        if flat:
            d = d_hi
        else:
            if c_hi - c_lo > 1 and c_hi < total:
                # The climb stops at the smallest c reaching the target, so
                # its neighbour below is the other candidate.
                c_lo = c_hi - 1
                d_lo = events(c_lo)
            while c_hi - c_lo > 1:
                mid = (c_lo + c_hi) // 2
                d_mid = events(mid)
                if d_mid.sum() + mid >= total:
                    c_hi = mid
                    d_hi = d_mid
                else:
                    c_lo = mid
                    d_lo = d_mid
            g_hi = d_hi.sum() + c_hi - total
            g_lo = total - d_lo.sum() - c_lo
            d = d_hi if g_hi <= g_lo else d_lo
    # Make the at-risk number at the segment end exact: too many events ->
    # drop the latest ones (they are the least constrained by the table),
    # first down to each step's least count, then (table wins) below it.
    d = d.copy()
    excess = d.sum() - total
    for rnd in range(2):
        k = d.size - 1
        while excess > 0 and k >= 0:
            floor_k = min(md[k], d[k]) if rnd == 0 else 0
            take = min(excess, d[k] - floor_k)
            d[k] -= take
            excess -= take
            k -= 1
    return d, total - d.sum()


def fit_error(ts, rs, n0, d, cens):
    """Squared distance between the reconstructed KM ratio and the curve's.

    The KM ratio through the risk set built from ``d`` events per step and
    the censorings ``cens`` (sorted), against the curve's ratios ``rs``.
    """
    n = n0
    km = 1.0
    j = 0
    err = 0.0
    for k in range(ts.size):
        while j < cens.size and cens[j] < ts[k]:
            n -= 1
            j += 1
        if d[k] and n > 0:
            km *= 1.0 - d[k] / n
            n -= d[k]
        err += (km - rs[k]) ** 2
    return err


KERNELS = ("_cens", "_alloc", "solve_counts", "fit_error")


def compile_kernels() -> None:
    """Replace the kernels by numba-compiled versions (idempotent).

    The swap is global because the compiled :func:`solve_counts` must call
    compiled helpers; the results are the same either way. Machine code is
    cached on disk next to this file, so only the first call after an install
    compiles (``make setup`` does it, see :func:`warm`).
    """
    import numba  # noqa: PLC0415  (loaded only for large work)

    g = globals()
    for name in KERNELS:
        if not isinstance(g[name], numba.core.registry.CPUDispatcher):
            g[name] = numba.njit(cache=True)(g[name])


def warm() -> None:
    """Compile the kernels and run them once, filling numba's on-disk cache."""
    compile_kernels()
    ts, rs = np.array([1.0, 2.0, 3.0]), np.array([0.9, 0.8, 0.7])
    md, theta, empty = np.zeros(3, dtype=np.int64), np.full(3, 0.5), np.zeros(0)
    d, c = solve_counts(ts, rs, md, 10, 5, 0.0, 4.0, 4.0, theta, 1.0, False, empty, empty)
    fit_error(ts, rs, 10, d, np.linspace(0.5, 3.5, c))
