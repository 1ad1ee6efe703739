"""Integer data that honour the published numbers: the summary engine's last step.

The summary engine places deaths and censorings at quantiles of its fitted
model; a discrete Kaplan-Meier curve through them can still miss a
published landmark or median by a step. :func:`_refine` searches greedily
for single moves (and, when needed, pairs) of a death or a censoring just
across a published time that bring the recomputed statistics closer, so
every time stays near the model's.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..km import first_below, km

if TYPE_CHECKING:
    from .summary import _ArmSpec

# A landmark survival still off by more than this (rounding plus a margin)
# after the first search triggers the extended one.
S_REFINE_TOL = 0.0025


def _round6(t: np.ndarray) -> np.ndarray:
    # The CSV writes 6 decimals; round here so checks see what the file holds.
    return np.round(t, 6)


def _discrete_loss(a: _ArmSpec, t: np.ndarray, e: np.ndarray, gap: bool = False) -> float:
    """Mismatch of one arm's recomputed statistics, in rounding units.

    With ``gap``, median-type times are scaled by half the local spacing of
    deaths (a discrete curve crosses 0.5 only at a death), which frees the
    search to fix landmark survival to the third decimal.
    """
    f = km(t, e)
    lo_c, hi_c = f.ci(kind=a.ci)
    loss = 0.0
    if a.lm_t.size:
        i = np.searchsorted(f.time, a.lm_t, side="right") - 1
        loss += float(np.sum(((f.surv[i] - a.lm_s) / 0.0015) ** 2))
        dl = np.where(a.lo_ok, lo_c[i] - a.lm_lo, 0.0) / 0.004
        dh = np.where(a.hi_ok, hi_c[i] - a.lm_hi, 0.0) / 0.004
        loss += float(dl @ dl + dh @ dh)
    if a.med:
        # A discrete curve crosses 0.5 only at a death: one death's spacing
        # near the published time is as close as a median can be asked to be.
        dt = f.time[f.d > 0]

        def scale(q: float, floor: float) -> float:
            if not gap:
                return floor
            near = dt[(dt > 0.8 * q) & (dt < 1.2 * q)]
            spacing = 0.4 * q / near.size if near.size else 0.4 * q
            return max(floor, 0.5 * spacing)

        m = first_below(f.time, f.surv, 0.5)
        loss += (((m if math.isfinite(m) else 10 * a.med) - a.med) / scale(a.med, max(0.05, 0.004 * a.med))) ** 2
        for q, curve in ((a.med_lo, lo_c), (a.med_hi, hi_c)):
            if q:
                qq = first_below(f.time, curve, 0.5)
                qq = qq if math.isfinite(qq) else 10 * q
                loss += ((qq - q) / scale(q, max(0.15, 0.01 * q))) ** 2
    return loss


def _s_off(a: _ArmSpec, t: np.ndarray, e: np.ndarray) -> float:
    """Largest landmark survival error of the discrete data."""
    if a.lm_t.size == 0:
        return 0.0
    f = km(t, e)
    i = np.searchsorted(f.time, a.lm_t, side="right") - 1
    return float(np.max(np.abs(f.surv[i] - a.lm_s)))


def _refine(a: _ArmSpec, t: np.ndarray, e: np.ndarray, max_moves: int = 30) -> np.ndarray:
    """Greedy local search on the integer data.

    A move takes the death (or censoring) nearest to a published time point
    on one side and puts it just across that point; the best move is kept
    while it lowers the mismatch of the recomputed statistics. If a landmark
    survival is still off by more than 0.0025 (rounding plus a margin), a
    second search from the same start also lets a censoring step past its
    neighbouring death and tries pairs of moves (a death and a censoring may
    have to move together to hit a 3-decimal S); the one with the smaller
    landmark error is kept. Moves only shift individuals locally, so every
    time stays near the model's.
    """
    if (a.lm_t.size == 0 and not a.med) or max_moves <= 0:
        return t
    t1 = _search(a, t, e, max_moves, extended=False)
    if _s_off(a, t1, e) > S_REFINE_TOL:
        # Both searches start from the model's placement; keep the better fit.
        t2 = _search(a, t, e, max_moves, extended=True)
        if _s_off(a, t2, e) < _s_off(a, t1, e):
            return t2
    return t1


def _search(a: _ArmSpec, t: np.ndarray, e: np.ndarray, max_moves: int, extended: bool) -> np.ndarray:
    t = t.copy()
    pts = sorted(set(a.lm_t.tolist()) | {x for x in (a.med, a.med_lo, a.med_hi) if x})
    best = _discrete_loss(a, t, e, extended)
    groups = [np.flatnonzero(e == 1), np.flatnonzero(e == 0)]
    for _ in range(max_moves):
        if best < 0.5:
            break
        singles = []
        for p in pts:
            eps = 1e-4 * max(p, 1e-3)
            for idx in groups:
                if idx.size == 0:
                    continue
                ti = t[idx]
                before = idx[ti <= p]
                after = idx[ti > p]
                if before.size:
                    singles.append((int(before[np.argmax(t[before])]), p + eps))
                if after.size:
                    singles.append((int(after[np.argmin(t[after])]), p - eps))
        cens, deaths = groups[1], np.sort(t[groups[0]])
        if extended and cens.size and deaths.size:
            # A censoring steps past its neighbouring death: the order of
            # deaths and censorings sets the KM steps at the 3rd decimal.
            cc = cens[t[cens] < pts[-1]]
            pick = np.unique(np.linspace(0, cc.size - 1, min(cc.size, 12)).round().astype(int)) if cc.size else []
            for j in cc[pick] if cc.size else []:
                k = np.searchsorted(deaths, t[j])
                if k > 0:
                    singles.append((int(j), deaths[k - 1] * (1 - 1e-6)))
                if k < deaths.size:
                    singles.append((int(j), deaths[k] * (1 + 1e-6)))
        scored = []
        for j, newt in singles:
            old = t[j]
            t[j] = newt
            scored.append((_discrete_loss(a, t, e, extended), j, newt))
            t[j] = old
        scored.sort()
        if scored and scored[0][0] < best - 1e-9:
            best, j, newt = scored[0]
            t[j] = newt
            continue
        if not extended:
            break
        cand = None
        top = scored[:8]
        for x in range(len(top)):
            for y in range(x + 1, len(top)):
                (_, j1, t1), (_, j2, t2) = top[x], top[y]
                if j1 == j2:
                    continue
                o1, o2 = t[j1], t[j2]
                t[j1], t[j2] = t1, t2
                loss = _discrete_loss(a, t, e, extended)
                t[j1], t[j2] = o1, o2
                if loss < best - 1e-9 and (cand is None or loss < cand[0]):
                    cand = (loss, j1, t1, j2, t2)
        if cand is None:
            break
        best, j1, t1, j2, t2 = cand
        t[j1], t[j2] = t1, t2
    return t
