"""The curve engine's censoring spreads, chosen from the reported median follow-up.

The numbers-at-risk table fixes how many patients are censored in each of
its intervals, but not where inside one, and nothing after its last time.
The median follow-up (reverse Kaplan-Meier, all arms) says when half the
censoring distribution has passed: :func:`followup_gammas` chooses the
spread of the tail's censorings and, when that is not enough, of those
inside the table interval that holds the follow-up, so the reconstruction
gives the reported value (see :mod:`.curve`).

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.

Schemper M, Smith TL. A note on quantifying follow-up in studies of failure
time. Control Clin Trials. 1996;17:343-346.
"""

from __future__ import annotations

import math

import numpy as np

from ..km import reverse_km_median
from ..trial import Trial, half_unit
from .check import _jump_spacing

# Range of the censoring spread when the follow-up chooses it: down to 1e-4
# puts the tail's censorings at the very end of the curve (a data cut-off).
_FU_GAMMA = (1e-4, 50.0)
# Values of that range scanned (evenly on the log scale, with 1) for the
# spread inside the table interval that holds the follow-up.
_BODY_SCAN = 15


def arm_tail_gamma(gamma: float | None, prep: tuple) -> float | None:
    """The tail spread an arm uses: the follow-up's, else by its total events.

    Corner pairs pin the events; the reported total can then no longer say
    where the tail's censorings fall (it would push them to an extreme to
    shift one event): Guyot's even spread is kept.
    """
    if gamma is None and any(s.md is not None and s.md.any() for s in prep[2]):
        return 1.0
    return gamma


def followup_gammas(trial: Trial, inputs: dict, reconstruct_arm) -> tuple[float | None, float]:
    """Censoring spreads (tail, inside the table) that give the reported follow-up.

    After the last table time nothing in the figure says when the remaining
    patients were censored, but the median follow-up (reverse Kaplan-Meier,
    all arms) does: it is the time by which half the patients' censoring
    distribution has passed, and when the table stops early most of it lies
    in the tail. One tail spread shared by the arms (the same calendar
    cut-off censors both) is found by bisection on the log scale; ``None``
    (keep the default rule) when no arm has a tail.

    When the reconstruction still misses the follow-up by more than the
    check table accepts (its rounding plus the spacing of the censorings
    around it), the follow-up falls inside the table, where the table
    fixes how many are censored in each interval but not where in the
    interval: the interval that holds it (the same in every arm) decides the
    reverse Kaplan-Meier median, and one spread for the censorings inside it
    is then found the same way. In a sparse table that interval may hold
    most of the censorings. Otherwise the spread is 1 (Guyot's even spread,
    and the step sizes' shape).

    Parameters
    ----------
    trial : Trial
    inputs : dict
        Per arm ``(time, survival, table, n, events, prepared)`` as
        :func:`.curve.reconstruct_curve` builds them.
    reconstruct_arm : callable
        :func:`.curve.reconstruct_arm` (passed in: that module imports this
        one).

    Returns
    -------
    tail_gamma : float or None
    body_gamma : float
    """
    target = trial.followup_median
    if target is None:
        return None, 1.0
    tails = all(v[5][2] and v[5][2][-1].tail for v in inputs.values())

    seen: dict = {}  # the searches revisit spreads (0, the chosen tail): reconstruct each once

    def fu(log_g: float | None, log_b: float = 0.0, tol: bool = False):
        if (log_g, log_b) not in seen:
            seen[log_g, log_b] = _followup(log_g, log_b)
        m, m_tol = seen[log_g, log_b]
        return (m, m_tol) if tol else m

    def _followup(log_g: float | None, log_b: float) -> tuple[float, float]:
        tt, ee = [], []
        for ct, cs, table, n, events, prep in inputs.values():
            tg = arm_tail_gamma(None if log_g is None else math.exp(log_g), prep)
            t, e = reconstruct_arm(ct, cs, table, n, events, None, tail_gamma=tg,
                                   body_gamma=math.exp(log_b), body_at=target, _prepared=prep)
            tt.append(t)
            ee.append(e)
        t, e = np.concatenate(tt), np.concatenate(ee)
        m = reverse_km_median(t, e)
        m = m if np.isfinite(m) else math.inf
        # With it, the check table's tolerance: rounding plus the censorings' spacing.
        return m, half_unit(target) + _jump_spacing(np.unique(t[e == 0]), m)

    def bisect(f, lo: float, hi: float) -> float:
        # f falls as its log spread grows (censorings earlier, shorter follow-up).
        # An infinite f is short too: the censorings are so early that the
        # reverse Kaplan-Meier never falls to 0.5 (the last patients die).
        best = (abs(f(0.0) - target), 0.0)
        for _ in range(20):
            mid = 0.5 * (lo + hi)
            v = f(mid)
            best = min(best, (abs(v - target), mid))
            if math.isfinite(v) and v > target:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-3:
                break
        return best[1]

    log_tail = None
    if tails:
        lo, hi = math.log(_FU_GAMMA[0]), math.log(_FU_GAMMA[1])
        f_lo, f_hi = fu(lo), fu(hi)
        table_end = max(max((x for x, _ in v[2]), default=0.0) for v in inputs.values())
        if target > f_lo and target > table_end:
            # Longer than even the latest tail censoring gives, and past the
            # table: most patients were censored at the end (the usual data
            # cut-off), as late as the rule allows. (A median inside the table
            # says more about the censorings there than about the tail.)
            log_tail = lo
        elif math.isfinite(f_hi) and target < f_hi:
            # The tail cannot explain the reported follow-up (it is set mostly
            # inside the table): no reason to push the spread to an extreme.
            log_tail = 0.0
        else:
            log_tail = bisect(fu, lo, hi)
    inside = any(not g.tail and g.lo < target <= g.hi for v in inputs.values() for g in v[5][2])
    if inside:
        f, tol = fu(log_tail, tol=True)
    if not inside or abs(f - target) <= tol:
        # Within what the check table accepts: the table's intervals already
        # place the censorings as well as the follow-up can.
        return (None if log_tail is None else math.exp(log_tail)), 1.0
    log_body = _scan_spread(lambda b: fu(log_tail, b) - target, f - target, tol)
    return (None if log_tail is None else math.exp(log_tail)), math.exp(log_body)


def _scan_spread(miss, miss0: float, tol: float) -> float:
    """Log spread nearest 0 where ``miss`` (signed, ``miss0`` at 0) crosses 0.

    The follow-up is not monotone in the spread inside the table (events per
    step follow the risk set it shapes), so the range is scanned outwards
    from the even spread, the first crossing is bisected until within
    ``tol``, and without a crossing the value with the smallest miss is kept.
    """
    grid = np.unique(np.r_[0.0, np.linspace(math.log(_FU_GAMMA[0]), math.log(_FU_GAMMA[1]), _BODY_SCAN)])
    seen = {0.0: miss0}
    best = (abs(miss0), 0.0)
    for b in sorted(grid[grid != 0.0], key=abs):
        seen[b] = miss(b)
        best = min(best, (abs(seen[b]), b))
        inner = max(grid[grid < b]) if b > 0 else min(grid[grid > b])  # its neighbour towards 0
        if np.sign(seen[b]) != np.sign(seen[inner]):
            near, far, d_near = float(inner), float(b), seen[inner]
            for _ in range(10):
                if best[0] <= tol:
                    break
                mid = 0.5 * (near + far)
                d = miss(mid)
                best = min(best, (abs(d), mid))
                if np.sign(d) == np.sign(d_near):
                    near, d_near = mid, d
                else:
                    far = mid
            break
    return float(best[1])
