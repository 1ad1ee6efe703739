"""Which stretches of follow-up are pinned by published numbers.

The reconstructed IPD reproduces the trial file's published numbers; between
them, the *shape* of each Kaplan-Meier curve is an assumption of the
reconstruction (how it spreads the deaths). A result that depends on that
shape -- a local HR(t), an interval HR between two unpublished times -- is
interpolated, not data. This module says which is which, so HR(t) figures
can shade interpolated stretches and HR(t) tables can tag their rows.

Knots
-----
An arm's *knots* are the times at which the publication pins its curve:
0 (S(0) = 1 by definition), every published landmark S(t), the published
median (S = 0.5 there) and every at-risk table time (numbers at risk pin
how many are still followed, the anchor the reconstruction algorithm uses).
A digitized curve pins every time in its range ``[min t, max t]``.

Classification
--------------
* a time point is ``"pinned"`` if, in **every** arm, it is a knot (within
  ``tol``) or covered by that arm's digitized curve: both S_a(t), hence
  ΔS(t), are published there;
* an interval [a, b) is ``"pinned"`` if, in every arm, both ends are pinned
  in that sense: then each arm's cumulative hazard increment over the
  interval, and so the interval's average HR, follows from published
  numbers; how the hazard varies *inside* [a, b) remains interpolation
  unless a curve covers it. An open interval (b = inf) is never pinned.

Everything else is ``"interpolated"`` (including stretches after the last
knot, where the reconstruction relies on the event total and follow-up).

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import math

import numpy as np

PINNED = "pinned"
INTERPOLATED = "interpolated"


def arm_knots(arm) -> np.ndarray:
    """Sorted knots of one :class:`~kmbayes.trial.Arm` (see module docs)."""
    t = [0.0]
    t += [lm.time for lm in arm.survival]
    if arm.median is not None and math.isfinite(arm.median.estimate):
        t.append(arm.median.estimate)
    t += [a.time for a in arm.at_risk]
    return np.unique(np.asarray(t, float))


def pinned_times(trial, arm: str | None = None) -> np.ndarray:
    """Times pinned by published numbers.

    Parameters
    ----------
    trial : kmbayes.trial.Trial
    arm : str, optional
        One arm's knots; by default the union over arms.

    Returns
    -------
    ndarray
        Sorted unique times (digitized curves are ranges, see
        :func:`curve_ranges`, and are not listed point by point).
    """
    arms = [trial.arms[arm]] if arm is not None else list(trial.arms.values())
    return np.unique(np.concatenate([arm_knots(a) for a in arms]))


def curve_ranges(trial) -> dict[str, tuple[float, float] | None]:
    """``{arm_id: (first, last) digitized time or None}``."""
    out = {}
    for arm_id, a in trial.arms.items():
        if a.curve is None:
            out[arm_id] = None
        else:
            t = np.asarray(a.curve[0], float)
            out[arm_id] = (float(t.min()), float(t.max()))
    return out


def _pinned_in_arm(arm, t: np.ndarray, tol: float) -> np.ndarray:
    knots = arm_knots(arm)
    # Distance to the nearest knot, via the neighbours' positions.
    i = np.clip(np.searchsorted(knots, t), 1, knots.size - 1) if knots.size > 1 else np.zeros(t.shape, int)
    near = np.minimum(np.abs(t - knots[i - 1]), np.abs(t - knots[i])) if knots.size > 1 \
        else np.abs(t - knots[0])
    ok = near <= tol
    if arm.curve is not None:
        ct = np.asarray(arm.curve[0], float)
        ok |= (t >= ct.min()) & (t <= ct.max())
    return ok & np.isfinite(t)


def pinned_mask(trial, times, tol: float = 0.0) -> np.ndarray:
    """Boolean mask: ``times`` pinned in every arm (see module docs)."""
    t = np.atleast_1d(np.asarray(times, float))
    ok = np.ones(t.shape, bool)
    for a in trial.arms.values():
        ok &= _pinned_in_arm(a, t, tol)
    return ok


def support_of(trial, times, tol: float = 0.0) -> list[str]:
    """``"pinned"`` / ``"interpolated"`` for each time point.

    Parameters
    ----------
    trial : kmbayes.trial.Trial
    times : array_like of float
    tol : float
        A time within ``tol`` of a knot counts as that knot (e.g. half the
        grid spacing of a figure, so a landmark between grid points shows).
    """
    return [PINNED if p else INTERPOLATED for p in pinned_mask(trial, times, tol)]


def interval_support(trial, edges, tol: float = 0.0) -> list[str]:
    """``"pinned"`` / ``"interpolated"`` for each interval ``[edges[j], edges[j+1])``.

    An interval is pinned when both ends are pinned in every arm (its
    cumulative hazard increments are published); see module docs.

    Examples
    --------
    CLOCC (landmarks 36, 60, 96 in both arms, no curves) with the model cuts
    ``(0, 12, 24, 36, 60, 96, inf)``: 0-12, 12-24 and 24-36 are interpolated
    (only S(36) is published, not how the deaths split across the first three
    years), 36-60 and 60-96 are pinned and 96-inf is interpolated.
    """
    e = np.asarray(edges, float)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError("edges must be a strictly increasing sequence of >= 2 times")
    ends = pinned_mask(trial, e, tol)
    return [PINNED if ends[j] and ends[j + 1] else INTERPOLATED for j in range(e.size - 1)]
