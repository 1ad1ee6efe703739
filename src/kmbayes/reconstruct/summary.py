"""Summary engine: patient-level data from abstract-level numbers.

Input per arm: ``n``, ``events``, landmark survival with 95% Greenwood CIs
(log-log unless the arm declares another ``ci`` type), the median with its Brookmeyer-Crowley CI, and (all arms) the median
follow-up by reverse Kaplan-Meier. All optional except ``n`` and ``events``.
Numbers at risk are used when given.

Method
------
1. **A continuous model of each arm.** Deaths follow a piecewise-constant
   hazard whose knots are the times at which the publication pins the curve:
   the landmarks, and both ends ``q -+ dq`` of the rounding interval of the
   median and of each median-CI bound (``dq`` is half a unit of the last
   published decimal). Constant hazard between known points is log-linear
   interpolation of S, as in Guyot et al. (2012), except before the first
   knot, where the hazard rises from 0 as ``t ** FIRST_POW`` (patients are
   fit at entry and first assessed at a scan). Past the last knot a tail
   hazard runs to the end of follow-up ``T``. Censoring has two parts:
   administrative, shared by the arms, with potential follow-up on
   ``[F, T]`` and ``P(C > t) = ((T - t) / (T - F))^2`` (accrual that
   speeds up, so few patients have the longest follow-up); and drop-out, a
   piecewise-constant hazard per arm between its landmarks. On a fine grid
   the model gives the expected numbers at risk ``Y(t)``, deaths and
   censorings (competing risks within each bin), hence S, the Greenwood sum
   ``V(t) ~ int lambda / Y``, the log-log CI curves, and the pooled reverse
   Kaplan-Meier.
2. **Fit.** Every published number becomes a residual on the survival scale,
   scaled by its rounding: S and both CI bounds at each landmark (the CI
   width carries the effective number at risk, hence the censoring before
   the landmark); for the median, the curve must be above 0.5 at ``q - dq``
   and at or below 0.5 at ``q + dq`` (a hinge), and the same for the lower
   and upper CI curves at the median-CI bounds (each bound thus pins one more
   point of the curve: Brookmeyer-Crowley); the pooled reverse KM equals 0.5
   at the median follow-up; the expected deaths equal ``events``; numbers at
   risk, when given, are matched. Weak priors close what the numbers leave
   open: the tail hazard near the last interval's, drop-out small and slowly
   varying, ``F`` near ``0.3 T`` and ``T`` near ``median follow-up / 0.65``.
   The penalised least-squares problem is solved by Levenberg-Marquardt.
3. **Integer data.** Death and censoring times are placed at the
   mid-quantiles ``(k - 1/2) / K`` of the model's cumulative expected deaths
   and censorings: exactly ``events`` deaths and ``n - events`` censorings.
   A short greedy search then moves single deaths or censorings just across
   a published time point while that brings the recomputed (discrete)
   statistics closer to the published ones.
4. **Replicates.** Replicate 1 is the fit above. Replicates 2..K are draws
   from the pseudo-posterior ``exp(-cost / 2)`` of the fit by random-walk
   Metropolis (proposal: the Laplace covariance, ridged), so they vary where
   the numbers constrain least (the tail, the censoring pattern, the curve
   between knots) while still matching the published numbers; times are
   placed at stratified random quantiles ``(k - u_k) / K``, then refined;
   finally the deaths inside each interval between pinned times are tilted
   at random (:func:`~kmbayes.reconstruct.replicates.tilt_events`, scale
   chosen by cross-validation) so the replicates spread as far as the
   reconstruction error does.

``trial.reported_hr`` and ``trial.reported_p`` are never read here.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.

Greenwood M. The natural duration of cancer. London: HMSO; 1926.

Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data.
New York: Wiley; 1980.

Brookmeyer R, Crowley J. A confidence interval for the median survival time.
Biometrics. 1982;38:29-41.

Schemper M, Smith TL. A note on quantifying follow-up in studies of failure
time. Control Clin Trials. 1996;17:343-346.

Marquardt DW. An algorithm for least-squares estimation of nonlinear
parameters. J Soc Ind Appl Math. 1963;11:431-441.

Roberts GO, Gelman A, Gilks WR. Weak convergence and optimal scaling of
random walk Metropolis algorithms. Ann Appl Probab. 1997;7:110-120.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from dataclasses import dataclass, field

import numpy as np

from ..km import survival_ci
from ..trial import Arm, Trial
from . import replicates as _reps
from .replicates import tilt_events
from .summary_refine import _refine, _round6

# Residual scales (survival-probability units). Published S and CI bounds are
# rounded to 3 decimals; the extra slack covers the steps of a discrete KM.
SIG_S = 0.0015
SIG_CI = 0.002
SIG_HINGE = 0.002  # a curve on the wrong side of 0.5 at a rounded median-type time
SIG_Q = 0.03  # weak pull to the centre of that rounding interval (hinges do the work)
SIG_FU = 0.01  # pooled reverse KM at the median follow-up
SIG_EVENTS = 0.3
SIG_ATRISK_REL = 0.02
# Priors (what the numbers leave open), FIRST_POW and REFINE_MOVES below.
# Chosen on the dev figures for the median + 90th percentile of the HR
# error, not per trial, one constant at a time (benchmarks/
# cv_engine_constants.py --mode summary; grids: FIRST_POW 0, 0.15, 0.25, 0.4,
# 0.5, 0.6, 0.75, 1; SIG_TAIL 1.5, 3, 6; SIG_T 0.25, 0.5, 1; F_LOGIT at
# 0.2 T, 0.3 T, 0.4 T; ACCRUAL_POW 1, 2, 3; SIG_MU_RW 0.5, 1, 2; REFINE_MOVES
# 0, 8, 15, 30). Nested 5-fold cross-validation of that whole choice (folds
# by crc32 of the figure name) scores median 0.0149, p90 0.0592, max 0.314
# on the held-out folds; in-sample, the values below score 0.0150 / 0.0549.
# Every choice is weakly determined: neighbouring values move the median by
# about 0.002.
SIG_TAIL = 6.0  # log tail hazard vs the last interval's: weak
SIG_MU_RW = 1.0  # drop-out log hazard: random walk across landmark intervals
DROP_LOG = math.log(0.05)  # drop-out prior centre: hazard 0.05 / T
F_LOGIT = math.log(0.3 / 0.7)  # administrative censoring starts at ~0.3 T
SIG_T = 0.5  # log T around median follow-up / 0.65
ACCRUAL_POW = 2.0  # potential follow-up density falls linearly to 0 at T
# Hazard shape before the first published time point: h(t) ~ t ** FIRST_POW
# (0 would be a constant hazard); the folds chose 0.4, 0.4, 0, 0.5, 0.5.
FIRST_POW = 0.5
# Numerics.
N_GRID = 240
LM_TOL = 1e-5
MCMC_THIN = 10
REFINE_MOVES = 8  # greedy integer moves (summary_refine); the folds chose 8, 30, 8, 30, 15


@dataclass
class _ArmSpec:
    id: str
    n: int
    events: int
    knots: np.ndarray  # hazard knots (excluding 0); tail runs past the last
    lm_t: np.ndarray
    lm_s: np.ndarray
    lm_lo: np.ndarray  # nan where not published
    lm_hi: np.ndarray
    med: float | None
    med_lo: float | None
    med_hi: float | None
    ar_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lo_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    hi_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    ar_n: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ci: str = "log-log"  # scale the published CIs are symmetric on


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _time_delta(trial: Trial) -> float:
    """Half a unit of the last decimal the median-type times are given to."""
    vals = []
    for arm in trial.arms.values():
        if arm.median is not None:
            vals += [v for v in (arm.median.estimate, arm.median.lower, arm.median.upper) if _finite(v)]
    if trial.followup_median:
        vals.append(trial.followup_median)
    if not vals:
        return 0.0
    for d in range(0, 4):
        if all(abs(round(v, d) - v) < 1e-9 * max(1.0, abs(v)) for v in vals):
            return 0.5 * 10.0**-d
    return 0.5e-4


def _arm_spec(arm: Arm, delta: float = 0.0) -> _ArmSpec:
    lm = [x for x in arm.survival if x.time > 0]
    knots = [x.time for x in lm]
    med = med_lo = med_hi = None
    if arm.median is not None and _finite(arm.median.estimate):
        med = arm.median.estimate
        med_lo = arm.median.lower if _finite(arm.median.lower) else None
        med_hi = arm.median.upper if _finite(arm.median.upper) else None
        for q in (med, med_lo, med_hi):
            if q:
                # The published time is rounded: the curve crosses 0.5
                # somewhere in [q - dq, q + dq]; knots at both ends let the
                # model drop as steeply as the data did.
                dq = min(delta, 0.02 * q)
                knots += [q - dq, q + dq] if dq > 0 else [q]
    knots = np.unique(np.asarray(knots, dtype=float))
    knots = knots[knots > 0]
    if knots.size > 1:
        keep = np.concatenate(([True], np.diff(knots) > 1e-6 * knots[-1]))
        knots = knots[keep]
    nan = math.nan
    lo_ok = np.array([x.lower is not None for x in lm], dtype=bool)
    hi_ok = np.array([x.upper is not None for x in lm], dtype=bool)
    return _ArmSpec(
        lo_ok=lo_ok,
        hi_ok=hi_ok,
        id=arm.id,
        n=arm.n,
        events=arm.events,
        knots=knots,
        lm_t=np.array([x.time for x in lm], dtype=float),
        lm_s=np.array([x.estimate for x in lm], dtype=float),
        lm_lo=np.array([nan if x.lower is None else x.lower for x in lm], dtype=float),
        lm_hi=np.array([nan if x.upper is None else x.upper for x in lm], dtype=float),
        med=med,
        med_lo=med_lo,
        med_hi=med_hi,
        ar_t=np.array([a.time for a in arm.at_risk if a.time > 0], dtype=float),
        ar_n=np.array([a.n for a in arm.at_risk if a.time > 0], dtype=float),
        ci=arm.ci,
    )


class _Model:
    """Parameter layout, priors and the expected-count computation.

    Parameters (a flat vector ``th``):

    * per arm, the logs of the increments of the cumulative hazard over each
      interval between knots and over the tail to ``T`` (so H rises by
      construction; the hazard is constant within an interval), then the logs
      of ``T`` times the drop-out hazard in each landmark interval;
    * shared, the logit of ``F / T`` (start of administrative censoring) and
      ``log(T / t_floor - 1)`` (``T`` is the end of follow-up).
    """

    def __init__(self, trial: Trial):
        self._q = None
        self.delta = _time_delta(trial)
        self.arms = [_arm_spec(trial.arms[a], self.delta) for a in trial.arm_ids]
        self.fu = trial.followup_median if _finite(trial.followup_median) else None
        self.fu_max = trial.followup_max if _finite(trial.followup_max) else None
        self.accrual = trial.accrual if _finite(trial.accrual) else None
        pts = [0.0]
        for a in self.arms:
            pts += list(a.knots) + list(a.lm_t) + list(a.ar_t)
            pts += [q for q in (a.med, a.med_lo, a.med_hi) if q]
        if self.fu:
            pts.append(self.fu)
        self.fixed_pts = np.unique(np.asarray(pts, dtype=float))
        # Follow-up must outlast every time the publication reports on.
        self.t_floor = max(float(self.fixed_pts.max()), 1e-6) * 1.02
        self.slices = []
        k = 0
        for a in self.arms:
            m = a.knots.size + 1
            nd = a.lm_t.size + 1
            self.slices.append((slice(k, k + m), slice(k + m, k + m + nd)))
            k += m + nd
        self.i_F = k
        self.i_T = k + 1
        self.size = k + 2
        # Caches of residuals (per arm) and of the grid (per T); see there.
        self._arm_cache: list[dict] = [{} for _ in self.arms]
        self._grid_key = None
        self._grid_val = None

    # ------------------------------------------------------------------ init
    def initial(self, simple: bool = False) -> np.ndarray:
        """Start values; ``simple`` uses one constant hazard per arm (fallback)."""
        th = np.zeros(self.size)
        T0 = self._t_prior_center()
        th[self.i_T] = math.log(max(T0 / self.t_floor - 1.0, 0.05))
        th[self.i_F] = F_LOGIT
        for a, (sl, idrop) in zip(self.arms, self.slices):
            H = self._init_H(a, T0, simple)
            inc = np.diff(np.concatenate(([0.0], H)))
            th[sl] = np.log(np.maximum(inc, 1e-6 * max(H[-1], 1e-3)))
            th[idrop] = DROP_LOG
        return th

    def _t_prior_center(self) -> float:
        if self.fu_max:
            return max(self.fu_max, self.t_floor * 1.001)
        if self.fu:
            # Admin. censoring over [0.3 T, T] has its median near 0.65 T.
            return max(self.fu / 0.65, self.t_floor * 1.05)
        return self.t_floor * 1.25

    @staticmethod
    def _init_H(a: _ArmSpec, T: float, simple: bool = False) -> np.ndarray:
        # log S linear in t through (0, 1), the landmarks and (median, 0.5).
        pts_t = [0.0] + list(a.lm_t)
        pts_s = [1.0] + list(a.lm_s)
        if a.med:
            pts_t.append(a.med)
            pts_s.append(0.5)
        order = np.argsort(pts_t)
        pt = np.asarray(pts_t)[order]
        ps = np.maximum(np.minimum.accumulate(np.asarray(pts_s)[order]), 1e-3)
        edges = np.concatenate((a.knots, [T]))
        if pt.size == 1 or simple:
            frac = min(max(a.events / a.n, 1e-3), 0.999)
            lam = -math.log(1 - frac) / (0.6 * T)
            return lam * edges
        logs = np.log(ps)
        # Tail slope from the last point and one well before it (a median may
        # sit on a landmark: their spacing says nothing about the hazard).
        far = np.flatnonzero(pt <= pt[-1] - 0.2 * pt[-1])
        j = far[-1] if far.size else 0
        slope_end = (logs[-1] - logs[j]) / max(pt[-1] - pt[j], 1e-9)
        ls = np.where(edges <= pt[-1], np.interp(edges, pt, logs), logs[-1] + slope_end * (edges - pt[-1]))
        H = np.maximum.accumulate(-ls)
        return H + 1e-6 * np.arange(1, H.size + 1) * max(H[-1], 1e-3)

    # ------------------------------------------------------------------ model
    def T_of(self, th: np.ndarray) -> float:
        return self.t_floor * (1.0 + math.exp(min(th[self.i_T], 30.0)))

    def grid(self, T: float, n_grid: int = N_GRID) -> np.ndarray:
        # Most evaluations of a fit share T (only one parameter moves per
        # Jacobian column): keep the last grid.
        key = (T, n_grid)
        if self._grid_key != key:
            self._grid_key = key
            self._grid_val = np.unique(np.concatenate((np.linspace(0.0, T, n_grid + 1), self.fixed_pts)))
        return self._grid_val

    @staticmethod
    def knot_H(a: _ArmSpec, h: np.ndarray, T: float) -> tuple[np.ndarray, np.ndarray]:
        """Knot times (with T) and the cumulative hazard there."""
        return np.concatenate((a.knots, [T])), np.cumsum(np.exp(np.clip(h, -60, 60)))

    def _grid(self, th: np.ndarray, n_grid: int = N_GRID):
        """End of follow-up, the grid and its administrative censoring curve."""
        T = self.T_of(th)
        g = self.grid(T, n_grid)
        F = T / (1.0 + math.exp(-th[self.i_F]))
        # Administrative censoring: potential follow-up F..T with density
        # falling to 0 at T (accrual that speeds up), P(C > t) = ((T-t)/(T-F))^p.
        U = np.clip((T - g) / max(T - F, 1e-9 * T), 0.0, 1.0) ** ACCRUAL_POW
        return T, g, U

    def _arm_expected(self, a: _ArmSpec, h: np.ndarray, rho: np.ndarray, T: float, g: np.ndarray, U: np.ndarray):
        """One arm on the grid: S, at-risk Y, deaths and censorings per bin, and its knots."""
        dt = np.diff(g)
        mid = 0.5 * (g[:-1] + g[1:])
        kt, kH = self.knot_H(a, h, T)
        H = _interp_H(g, kt, kH)
        S = np.exp(-H)
        # Drop-out: piecewise-constant hazard between the arm's landmarks.
        mu = np.exp(np.minimum(rho, 30.0)) / T
        mub = mu[np.searchsorted(a.lm_t, mid, side="right")] if a.lm_t.size else np.full(dt.size, mu[0])
        Gc = U * np.exp(-np.concatenate(([0.0], np.cumsum(mub * dt))))
        Y = a.n * S * Gc
        drop = Y[:-1] - Y[1:]
        lam = np.diff(H) / dt
        with np.errstate(divide="ignore", invalid="ignore"):
            kap = -np.log(Gc[1:] / Gc[:-1]) / dt
            frac = lam / (lam + kap)
        # Competing risks within a bin: deaths take lam / (lam + kap) of
        # the leavers; the last bin (Gc -> 0) is all censoring.
        frac = np.where(np.isfinite(kap), np.nan_to_num(frac, nan=1.0), 0.0)
        d = drop * frac
        c = drop - d
        return g, S, Y, d, c, (kt, kH)

    def expected(self, th: np.ndarray, n_grid: int = N_GRID):
        """Per arm, on a grid: S, at-risk Y, deaths and censorings per bin."""
        T, g, U = self._grid(th, n_grid)
        out = [self._arm_expected(a, th[sl], th[idrop], T, g, U)[:5] for a, (sl, idrop) in zip(self.arms, self.slices)]
        return T, g, out

    def _tail_prior(self, kt: np.ndarray, kH: np.ndarray) -> float:
        """Log ratio of the tail hazard to the hazard of the interval before it."""
        if kt.size < 2:
            return 0.0
        h = np.diff(np.concatenate(([0.0], kH))) / np.diff(np.concatenate(([0.0], kt)))
        with np.errstate(over="ignore"):  # an infinite ratio is a rejected LM step
            return math.log(max(h[-1], 1e-300) / max(h[-2], 1e-300))

    def _queries(self):
        """Per arm: times where the residuals look at the curves, and what."""
        qs = []
        for a in self.arms:
            t, kind, target = [], [], []
            # kind: 0 S, 1 lower CI, 2 upper CI (landmarks, squared error);
            # 3/4/5 S/lower/upper centre of a crossing; 6/7/8 left end (must be
            # > 0.5); 9/10/11 right end (must be <= 0.5).
            for j, (tt, sv, lo, hi) in enumerate(zip(a.lm_t, a.lm_s, a.lm_lo, a.lm_hi)):
                t += [tt, tt, tt]
                kind += [0, 1, 2]
                target += [sv, lo, hi]
                del j
            if a.med:
                for q, which in ((a.med, 0), (a.med_lo, 1), (a.med_hi, 2)):
                    if not q:
                        continue
                    dq = min(self.delta, 0.02 * q)
                    t += [q]
                    kind += [3 + which]
                    target += [0.5]
                    if dq > 0:
                        t += [q - dq, q + dq]
                        kind += [6 + which, 9 + which]
                        target += [0.5, 0.5]
            kind = np.asarray(kind, dtype=int)
            target = np.asarray(target, dtype=float)
            valid = np.isfinite(target)
            qs.append((np.asarray(t, dtype=float)[valid], kind[valid], target[valid]))
        return qs

    def _arm_residuals(self, a: _ArmSpec, h: np.ndarray, rho: np.ndarray, T: float, grid, q):
        """One arm's residuals (published numbers and priors), its Y and censorings."""
        _, g, U = grid
        _, S, Y, d, c, (kt, kH) = self._arm_expected(a, h, rho, T, g, U)
        qt, kind, target = q
        r = []
        with np.errstate(divide="ignore", invalid="ignore"):
            term = d / (Y[:-1] * (Y[:-1] - d))
        term = np.where(np.isfinite(term), term, 0.0)
        if qt.size:
            i = np.searchsorted(g, qt)
            V = np.cumsum(term)[np.maximum(i - 1, 0)] * (i > 0)
            s = S[i]
            # CI curves on the scale the publication declares (log-log by default).
            lo, hi = survival_ci(s, V, a.ci)
            which = kind % 3
            val = np.where(which == 0, s, np.where(which == 1, lo, hi))
            diff = val - target
            res = np.where(
                kind < 3,
                diff / np.where(kind == 0, SIG_S, SIG_CI),
                np.where(
                    kind < 6,
                    diff / SIG_Q,
                    np.where(kind < 9, np.maximum(-diff, 0.0), np.maximum(diff, 0.0)) / SIG_HINGE,
                ),
            )
            r.append(res)
        if not a.med:
            # Unreached median: the curve should stay above 0.5.
            r.append([min(S[-1] - 0.5, 0.0) / SIG_HINGE])
        if a.ar_t.size:
            i = np.searchsorted(g, a.ar_t)
            r.append((Y[i] - a.ar_n) / np.maximum(SIG_ATRISK_REL * a.ar_n, 0.5))
        r.append([(d.sum() - a.events) / SIG_EVENTS])
        # Priors: a tail hazard near the last interval's; drop-out small
        # and drifting slowly from one landmark interval to the next.
        r.append([self._tail_prior(kt, kH) / SIG_TAIL])
        r.append([(rho[0] - DROP_LOG) / 2.0])
        r.append(np.diff(rho) / SIG_MU_RW)
        return np.concatenate([np.asarray(x, dtype=float) for x in r]), g, Y, c

    def residuals(self, th: np.ndarray) -> np.ndarray:
        if self._q is None:
            self._q = self._queries()
        T = self.T_of(th)
        r = []
        grid = None
        Ypool = Cpool = None
        for k, (a, (sl, irho), q) in enumerate(zip(self.arms, self.slices, self._q)):
            # An arm's residuals depend on its own parameters and the shared
            # F and T only: a finite-difference Jacobian moves one parameter
            # at a time, so the other arms' blocks are reused, not recomputed.
            key = th[sl].tobytes() + th[irho].tobytes() + th[[self.i_F, self.i_T]].tobytes()
            block = self._arm_cache[k].get(key)
            if block is None:
                if grid is None:
                    grid = self._grid(th)
                block = self._arm_residuals(a, th[sl], th[irho], T, grid, q)
                if len(self._arm_cache[k]) > 256:
                    self._arm_cache[k].clear()
                self._arm_cache[k][key] = block
            res, g, Y, c = block
            r.append(res)
            Ypool = Y.copy() if Ypool is None else Ypool + Y
            Cpool = c.copy() if Cpool is None else Cpool + c
        if self.fu:
            with np.errstate(divide="ignore", invalid="ignore"):
                hz = np.where(Ypool[:-1] > 0, Cpool / Ypool[:-1], 0.0)
            i = np.searchsorted(g, self.fu)
            G = math.exp(-float(np.sum(np.clip(hz[:i], 0.0, 50.0))))
            r.append([(G - 0.5) / SIG_FU])
        r.append([(th[self.i_F] - F_LOGIT) / 1.5])
        Tc = self._t_prior_center()
        r.append([math.log(T / Tc) / (0.01 if self.fu_max else SIG_T)])
        if self.accrual:
            F = T / (1.0 + math.exp(-th[self.i_F]))
            r.append([math.log(max(T - F, 1e-12) / self.accrual) / 0.02])
        return np.concatenate(r)


def _interp_H(g: np.ndarray, kt: np.ndarray, kH: np.ndarray) -> np.ndarray:
    """Cumulative hazard on ``g`` from its values ``kH`` at the knots ``kt``.

    Log-linear in S between knots (Guyot et al. 2012), except before the
    first knot, where the hazard rises from 0 as ``t ** FIRST_POW``: patients
    fit enough to enter a trial, or first assessed at a scheduled scan, die
    or progress later than a constant hazard from time 0 would place them.
    """
    H = np.interp(g, np.concatenate(([0.0], kt)), np.concatenate(([0.0], kH)))
    if FIRST_POW and kt.size > 1:
        m = g < kt[0]
        H[m] = kH[0] * (g[m] / kt[0]) ** (1.0 + FIRST_POW)
    return H


def _jacobian(fun, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    J = np.empty((r.size, x.size))
    for j in range(x.size):
        h = 1e-6 * max(1.0, abs(x[j]))
        xp = x.copy()
        xp[j] += h
        J[:, j] = (fun(xp) - r) / h
    return J


def _lm_fit(fun, x0: np.ndarray, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt with a forward-difference Jacobian.

    Stops when an iteration lowers the cost by less than ``LM_TOL * (1 +
    cost)``. Returns the solution and the Jacobian there.
    """
    x = x0.copy()
    r = fun(x)
    cost = float(r @ r)
    lam = 1e-2
    for _ in range(max_iter):
        J = _jacobian(fun, x, r)
        A = J.T @ J
        gvec = J.T @ r
        improved = False
        cost_before = cost
        for _ in range(12):
            step = np.linalg.solve(A + lam * (np.diag(np.diag(A)) + 1e-9 * np.eye(x.size)), -gvec)
            xn = x + step
            rn = fun(xn)
            cn = float(rn @ rn)
            if np.isfinite(cn) and cn < cost:
                improved = True
                x, r, cost = xn, rn, cn
                lam = max(lam / 3.0, 1e-9)
                break
            lam *= 4.0
        if not improved or (cost_before - cost) < LM_TOL * (1.0 + cost_before):
            break
    return x, _jacobian(fun, x, r)


# --------------------------------------------------------------------- integer data


def _place(cum: np.ndarray, g: np.ndarray, k: int, u: np.ndarray | None) -> np.ndarray:
    """Times of ``k`` individuals at quantiles of a cumulative count curve."""
    if k == 0:
        return np.zeros(0)
    tot = cum[-1]
    q = (np.arange(1, k + 1) - (0.5 if u is None else u)) / k * tot
    # Flat stretches of ``cum`` carry nobody: interpolate on the rising part.
    keep = np.concatenate(([True], np.diff(cum) > 0))
    return np.interp(q, cum[keep], g[keep])


def _discretize(model: _Model, th: np.ndarray, rng: np.random.Generator | None):
    T, g, arms = model.expected(th, n_grid=4 * N_GRID)
    out = []
    for a, (_, _s, _y, d, c) in zip(model.arms, arms):
        ne, nc = a.events, a.n - a.events
        cd = np.concatenate(([0.0], np.cumsum(d)))
        cc = np.concatenate(([0.0], np.cumsum(c)))
        ue = None if rng is None else rng.random(ne)
        uc = None if rng is None else rng.random(nc)
        if ne and cd[-1] <= 0:
            cd = np.linspace(0.0, 1.0, g.size)
        if nc and cc[-1] <= 0:
            cc = np.linspace(0.0, 1.0, g.size) ** 4
        te = _place(cd, g, ne, ue)
        tc = _place(cc, g, nc, uc)
        # No time 0 (Cox fitters drop it); keep every time strictly positive.
        tiny = 1e-6 * T
        t = np.maximum(np.concatenate((te, tc)), tiny)
        e = np.concatenate((np.ones(ne, dtype=np.int64), np.zeros(nc, dtype=np.int64)))
        out.append((a, t, e))
    return out


# --------------------------------------------------------------------- entry point


def _posterior_draws(model: _Model, th: np.ndarray, J: np.ndarray, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` draws from ``exp(-cost / 2)`` by random-walk Metropolis.

    The fit's residuals are standardised, so ``exp(-cost / 2)`` is a
    pseudo-posterior over the parameters. The proposal is the Laplace
    covariance ``(J'J + I)^-1`` (the ridge caps steps along directions the
    numbers do not constrain at one log unit), scaled by 2.38 / sqrt(d); the
    chain starts at the fit and is thinned.
    """
    d = th.size
    A = J.T @ J + np.eye(d)
    try:
        L = np.linalg.cholesky(np.linalg.inv(A))
    except np.linalg.LinAlgError:
        L = np.eye(d) * 0.1
    scale = 2.38 / math.sqrt(d)
    x = th.copy()
    r = model.residuals(x)
    cost = float(r @ r)
    out = []
    for _ in range(k):
        for _ in range(MCMC_THIN):
            y = x + scale * (L @ rng.standard_normal(d))
            ry = model.residuals(y)
            cy = float(ry @ ry)
            if np.isfinite(cy) and math.log(rng.random() + 1e-300) < 0.5 * (cost - cy):
                x, cost = y, cy
        out.append(x.copy())
    return out


def reconstruct_summary(trial: Trial, *, seed: int, replicates: int) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Reconstruct ``replicates`` IPD sets from summary statistics.

    Parameters
    ----------
    trial : Trial
        Validated trial; only n, events, landmarks, medians, follow-up and
        at-risk numbers are read (never ``reported_*``).
    seed : int
        Seed for replicates 2..K (replicate 1 is deterministic).
    replicates : int
        Number of reconstructions.

    Returns
    -------
    list of dict
        ``[{arm_id: (time, event)}, ...]``; each arm has exactly ``n`` rows
        and ``events`` deaths.
    """
    model = _Model(trial)
    th, J = _lm_fit(model.residuals, model.initial())
    r = model.residuals(th)
    if float(r @ r) > 50.0 * r.size:
        # A bad start can strand the fit; try once from constant hazards.
        th2, J2 = _lm_fit(model.residuals, model.initial(simple=True))
        r2 = model.residuals(th2)
        if float(r2 @ r2) < float(r @ r):
            th, J = th2, J2
    rng = np.random.default_rng(seed)
    draws = _posterior_draws(model, th, J, replicates - 1, rng) if replicates > 1 else []
    # Each replicate's integer data come from its own stream, so they are
    # the same bytes whether replicates are built in turn or in parallel.
    streams = np.random.SeedSequence([abs(int(seed)), int(seed < 0), 1]).spawn(max(replicates - 1, 0))
    tasks = [(draws[k], streams[k]) for k in range(replicates - 1)]
    reps = [_replicate(model, th, None)]
    parallel = (len(tasks) >= PARALLEL_MIN and (os.cpu_count() or 1) > 1
                and "fork" in mp.get_all_start_methods() and not mp.current_process().daemon)
    if parallel:
        global _POOL_MODEL
        _POOL_MODEL = model  # inherited by the forked workers, not pickled
        try:
            with mp.get_context("fork").Pool(min(os.cpu_count() or 1, MAX_WORKERS)) as pool:
                reps += pool.map(_pool_replicate, tasks, chunksize=max(1, len(tasks) // (4 * MAX_WORKERS)))
        finally:
            _POOL_MODEL = None
    else:
        reps += [_replicate(model, thk, np.random.default_rng(ss)) for thk, ss in tasks]
    return reps


# Replicates 2..K are independent given the fit: with this many, two worker
# processes (forked, so nothing is re-imported) halve the wall time.
PARALLEL_MIN = 16
MAX_WORKERS = 2
_POOL_MODEL: _Model | None = None


def _pool_replicate(task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    thk, ss = task
    return _replicate(_POOL_MODEL, thk, np.random.default_rng(ss))


def _replicate(model: _Model, thk: np.ndarray, rng: np.random.Generator | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One reconstruction from the parameters ``thk``; ``rng=None`` is replicate 1."""
    rep = {}
    for a, t, e in _discretize(model, thk, rng):
        t = _round6(_refine(a, _round6(t), e, max_moves=(REFINE_MOVES if rng is None else min(REFINE_MOVES, 8))))
        if rng is not None:
            # What the numbers leave open: when deaths fell between the
            # times they pin (calibrated scale, see replicates.py).
            edges = np.unique(np.concatenate(([0.0], a.knots, a.ar_t, [model.T_of(thk)])))
            t = _round6(np.maximum(tilt_events(t, e, edges, _reps.SUMMARY_TILT, rng), 1e-6 * edges[-1]))
        rep[a.id] = (t.astype(float), e.astype(np.int64))
    return rep
