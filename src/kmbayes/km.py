"""Kaplan-Meier, Greenwood, log-log CIs, medians, two-group Cox and log-rank.

NumPy only: this module sits on the start-up path of ``kmbayes reconstruct``,
so it must not pull in pandas, SciPy or lifelines. The conventions copy
lifelines (>= 0.28) exactly, because published numbers in the validation are
produced with lifelines:

* the survival curve lives on ``0`` plus every distinct observed time;
* Greenwood terms ``d / (n (n - d))`` that are infinite (all at risk die) are
  set to 0;
* 95% intervals are the exponential-Greenwood ("log-log", Kalbfleisch-Prentice)
  intervals, set to 1 where the estimate is 1;
* a quantile is the first time the curve is ``<= q`` (``inf`` if never), and
  the Brookmeyer-Crowley median CI is that quantile of the lower and upper CI
  curves, as ``median_survival_times(km.confidence_interval_)`` gives it;
* the Cox model uses Efron's tie correction and Wald intervals.

Public API (stable; :mod:`kmbayes.reconstruct.curve` imports it):
:func:`km`, :class:`KM` (``survival``, ``ci``, ``ci_at``, ``quantile``,
``median``, ``median_ci``), :func:`reverse_km_median`, :func:`cox_two_group`,
:func:`logrank`, :func:`loglog_ci`, :func:`first_below`, :data:`Z95`.

References
----------
Kaplan EL, Meier P. Nonparametric estimation from incomplete observations.
J Am Stat Assoc. 1958;53:457-481.

Greenwood M. The natural duration of cancer. Reports on Public Health and
Medical Subjects 33. London: HMSO; 1926.

Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time Data.
New York: Wiley; 1980 (log-log interval).

Brookmeyer R, Crowley J. A confidence interval for the median survival time.
Biometrics. 1982;38:29-41.

Schemper M, Smith TL. A note on quantifying follow-up in studies of failure
time. Control Clin Trials. 1996;17:343-346 (reverse Kaplan-Meier).

Efron B. The efficiency of Cox's likelihood function for censored data.
J Am Stat Assoc. 1977;72:557-565.

Davidson-Pilon C. lifelines: survival analysis in Python. J Open Source Softw.
2019;4(40):1317.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Standard normal 97.5% quantile (what ``scipy.stats.norm.ppf(0.975)`` returns).
Z95 = 1.959963984540054


@dataclass(frozen=True)
class KM:
    """A Kaplan-Meier fit on lifelines' timeline.

    Attributes
    ----------
    time : ndarray
        ``0`` (if no observation is at 0) then every distinct observed time.
    n_at_risk, d, c : ndarray
        Number at risk just before, deaths and censorings at each time.
    surv : ndarray
        Survival just after each time (right-continuous step function).
    gw : ndarray
        Greenwood sum ``sum d / (n (n - d))`` up to each time.
    """

    time: np.ndarray
    n_at_risk: np.ndarray
    d: np.ndarray
    c: np.ndarray
    surv: np.ndarray
    gw: np.ndarray

    def _index(self, t) -> np.ndarray:
        # Step function: the last timeline point <= t (before 0 there is none).
        return np.searchsorted(self.time, np.asarray(t, dtype=float), side="right") - 1

    def survival(self, t) -> np.ndarray | float:
        """S(t), right-continuous; 1 before the first time."""
        i = self._index(t)
        s = np.where(i >= 0, self.surv[np.maximum(i, 0)], 1.0)
        return float(s) if np.ndim(s) == 0 else s

    def ci(self, z: float = Z95, kind: str = "log-log") -> tuple[np.ndarray, np.ndarray]:
        """Greenwood bounds on the timeline (log-log by default; see :func:`survival_ci`)."""
        return survival_ci(self.surv, self.gw, kind, z)

    def ci_at(self, t: float, z: float = Z95, kind: str = "log-log") -> tuple[float, float, float]:
        """``(S(t), lower, upper)`` at one time, as lifelines reports a landmark."""
        i = int(self._index(t))
        if i < 0:
            return 1.0, 1.0, 1.0
        lo, hi = survival_ci(self.surv[i : i + 1], self.gw[i : i + 1], kind, z)
        return float(self.surv[i]), float(lo[0]), float(hi[0])

    def quantile(self, q: float = 0.5) -> float:
        """First time the curve is ``<= q`` (``inf`` if it never gets there)."""
        return first_below(self.time, self.surv, q)

    def median(self) -> float:
        """Median survival time (``inf`` if S stays above 0.5)."""
        return self.quantile(0.5)

    def median_ci(self, z: float = Z95, kind: str = "log-log") -> tuple[float, float]:
        """Brookmeyer-Crowley CI: medians of the lower and upper CI curves."""
        lo, hi = self.ci(z, kind)
        return first_below(self.time, lo, 0.5), first_below(self.time, hi, 0.5)


def first_below(time: np.ndarray, curve: np.ndarray, q: float) -> float:
    """First time a step curve is ``<= q`` (``inf`` if never).

    Same rule, and the same binary search on a curve that may be slightly
    non-monotone, as ``lifelines.utils.qth_survival_time``.
    """
    if curve[-1] > q:
        return math.inf
    return float(time[np.searchsorted(-curve, -q, side="left")])


def loglog_ci(surv: np.ndarray, gw: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Kalbfleisch-Prentice bounds ``exp(-exp(log(-log S) -+ z sqrt(V) / log S))``.

    Returns ``(lower, upper)``; both are 1 where S is 1 (lifelines' fill).
    """
    surv = np.asarray(surv, dtype=float)
    gw = np.asarray(gw, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = np.log(surv)
        w = z * np.sqrt(gw) / v
        lv = np.log(-v)
        lower = np.exp(-np.exp(lv - w))  # w < 0: this is the smaller bound
        upper = np.exp(-np.exp(lv + w))
    # nan where S = 1 (0 / 0); lifelines fills those with 1.
    return np.where(np.isnan(lower), 1.0, lower), np.where(np.isnan(upper), 1.0, upper)


CI_KINDS = ("log-log", "log", "plain", "arcsine")


def survival_ci(surv, gw, kind: str = "log-log", z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise Greenwood CI of ``S`` on one of four scales.

    ``V = gw`` is the Greenwood sum, the variance of ``log S``; the interval
    is symmetric on the scale of the transform:

    * ``log-log`` ``log(-log S)`` (Kalbfleisch-Prentice; lifelines, R's
      ``survfit(conf.type = "log-log")``, SAS default),
    * ``log`` ``log S`` (R ``survival``'s default),
    * ``plain`` ``S`` itself (Greenwood's linear interval, clipped to [0, 1]),
    * ``arcsine`` ``asin(sqrt(S))`` (Borgan-Liestol).

    Returns ``(lower, upper)``; both are 1 where S is 1.

    References
    ----------
    Kalbfleisch JD, Prentice RL. The Statistical Analysis of Failure Time
    Data. New York: Wiley; 1980.

    Borgan O, Liestol K. A note on confidence intervals and bands for the
    survival function based on transformations. Scand J Stat. 1990;17:35-41.
    """
    if kind == "log-log":
        return loglog_ci(surv, gw, z)
    surv = np.asarray(surv, dtype=float)
    sd = np.sqrt(np.asarray(gw, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "log":
            lower, upper = surv * np.exp(-z * sd), surv * np.exp(z * sd)
        elif kind == "plain":
            lower, upper = surv * (1 - z * sd), surv * (1 + z * sd)
        elif kind == "arcsine":
            a = np.arcsin(np.sqrt(np.clip(surv, 0.0, 1.0)))
            h = 0.5 * z * sd * np.sqrt(surv / (1.0 - surv))
            lower = np.sin(np.clip(a - h, 0.0, math.pi / 2)) ** 2
            upper = np.sin(np.clip(a + h, 0.0, math.pi / 2)) ** 2
        else:
            raise ValueError(f"unknown CI type {kind!r} (one of {', '.join(CI_KINDS)})")
    lower = np.where(np.isfinite(lower), np.clip(lower, 0.0, 1.0), 1.0)
    upper = np.where(np.isfinite(upper), np.clip(upper, 0.0, 1.0), 1.0)
    one = surv >= 1.0
    return np.where(one, 1.0, lower), np.where(one, 1.0, upper)


def km(time, event) -> KM:
    """Kaplan-Meier estimate with lifelines' conventions.

    Parameters
    ----------
    time : array_like of float
    event : array_like of {0, 1}

    Returns
    -------
    KM
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event).astype(bool)
    if t.size == 0:
        raise ValueError("km() needs at least one observation")
    ut, inv = np.unique(t, return_inverse=True)
    tot = np.bincount(inv, minlength=ut.size).astype(float)
    d = np.bincount(inv, weights=e.astype(float), minlength=ut.size)
    if ut[0] > 0:
        ut = np.concatenate(([0.0], ut))
        tot = np.concatenate(([0.0], tot))
        d = np.concatenate(([0.0], d))
    n = t.size - np.concatenate(([0.0], np.cumsum(tot)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.exp(np.cumsum(np.log(n - d) - np.log(n)))
        term = d / (n * (n - d))
    term[~np.isfinite(term)] = 0.0
    return KM(time=ut, n_at_risk=n, d=d, c=tot - d, surv=surv, gw=np.cumsum(term))


def reverse_km_median(time, event) -> float:
    """Median follow-up by the reverse Kaplan-Meier (censorings as events)."""
    return km(time, 1 - np.asarray(event).astype(int)).median()


@dataclass(frozen=True)
class CoxResult:
    """Two-group Cox fit: ``hr`` of group 1 vs group 0 with 95% Wald CI."""

    beta: float
    se: float
    hr: float
    lower: float
    upper: float
    p: float


def _risk_tables(time, event, group):
    # Per distinct event time: at risk and deaths in each group.
    t = np.asarray(time, dtype=float)
    e = np.asarray(event).astype(bool)
    g = np.asarray(group).astype(bool)
    et = np.unique(t[e])
    # n at risk at s = number with t >= s
    t0, t1 = np.sort(t[~g]), np.sort(t[g])
    n0 = t0.size - np.searchsorted(t0, et, side="left")
    n1 = t1.size - np.searchsorted(t1, et, side="left")
    idx = np.searchsorted(et, t[e])
    d1 = np.bincount(idx, weights=g[e].astype(float), minlength=et.size)
    d = np.bincount(idx, minlength=et.size).astype(float)
    return n0.astype(float), n1.astype(float), d - d1, d1


def _exp(x: float) -> float:
    # exp that saturates: under separation beta runs away and se is infinite.
    if math.isnan(x):
        return math.nan
    return math.exp(min(x, 700.0))


def _norm_sf2(zabs: float) -> float:
    return math.erfc(zabs / math.sqrt(2.0))


def cox_two_group(time, event, group, *, tol: float = 1e-10, max_iter: int = 50) -> CoxResult:
    """Cox PH model with one binary covariate, Efron ties, Newton-Raphson.

    Parameters
    ----------
    time, event : array_like
    group : array_like of {0, 1}
        1 for the arm whose hazard ratio is wanted (vs 0).

    Returns
    -------
    CoxResult
        ``beta`` (log HR), its SE from the observed information, HR with 95%
        Wald CI and the two-sided Wald p-value.
    """
    n0, n1, d0, d1 = _risk_tables(time, event, group)
    d = d0 + d1
    # Expand each event time into its d tie-fractions l/d, l = 0..d-1 (Efron).
    rep = d.astype(int)
    j = np.repeat(np.arange(d.size), rep)
    start = np.concatenate(([0], np.cumsum(rep)[:-1]))
    frac = (np.arange(j.size) - start[j]) / d[j]
    n0j, n1j, d0j, d1j = n0[j], n1[j], d0[j], d1[j]
    a = n1j - frac * d1j  # weight of group 1 in each Efron denominator
    b = n0j - frac * d0j
    total_d1 = d1.sum()
    beta = 0.0
    info = 0.0
    for _ in range(max_iter):
        w = math.exp(beta)
        phi = b + w * a
        p1 = w * a / phi
        score = total_d1 - p1.sum()
        info = float(np.sum(p1 - p1 * p1))
        if info <= 0:
            break
        step = score / info
        # Damp huge steps (separation); the likelihood is concave in beta.
        step = max(-2.0, min(2.0, step))
        beta += step
        if abs(step) < tol:
            break
    w = math.exp(beta)
    phi = b + w * a
    p1 = w * a / phi
    info = float(np.sum(p1 - p1 * p1))
    se = 1.0 / math.sqrt(info) if info > 0 else math.inf
    return CoxResult(
        beta=beta,
        se=se,
        hr=_exp(beta),
        lower=_exp(beta - Z95 * se) if math.isfinite(se) else 0.0,
        upper=_exp(beta + Z95 * se) if math.isfinite(se) else math.inf,
        p=_norm_sf2(abs(beta / se)) if se > 0 and math.isfinite(se) else 1.0,
    )


@dataclass(frozen=True)
class LogRankResult:
    """Log-rank test: observed and expected deaths in group 1, chi2 (1 df), p."""

    observed: float
    expected: float
    variance: float
    chi2: float
    p: float


def logrank(time, event, group) -> LogRankResult:
    """Two-group log-rank test (hypergeometric variance, as lifelines).

    The p-value is the chi-square (1 df) upper tail, ``erfc(sqrt(chi2 / 2))``.
    """
    n0, n1, d0, d1 = _risk_tables(time, event, group)
    n = n0 + n1
    d = d0 + d1
    exp1 = d * n1 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(n > 1, d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1), 0.0)
    o, ex, v = float(d1.sum()), float(exp1.sum()), float(var.sum())
    chi2 = (o - ex) ** 2 / v if v > 0 else 0.0
    return LogRankResult(o, ex, v, chi2, math.erfc(math.sqrt(chi2 / 2.0)))
