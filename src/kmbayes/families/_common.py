"""Shared pieces of the model families: the censored log-likelihood, the
baseline priors, interval helpers and the :class:`Family` interface.

Every family writes its likelihood as the right-censored log-likelihood

    l_i = d_i log h(t_i) - H(t_i)

(``d`` the event indicator, ``h`` the hazard, ``H`` the cumulative hazard),
which is log f(t_i) for an event and log S(t_i) for a censored time, so the
per-patient values are comparable across families for LOO.

References
----------
Ibrahim JG, Chen M-H, Sinha D. Bayesian Survival Analysis. Springer; 2001.
Sections 2.1 and 3.1 (piecewise exponential / Poisson equivalence).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError

#: CLOCC default cut points (months). Yearly for the first three years, where
#: most deaths happen and the curves overlap, then 36-60 and 60-96 to follow
#: the published 3/5/8-year landmarks, and one open tail after 8 years where
#: few patients remain. Each interval holds roughly 10+ reference-arm deaths
#: in a CLOCC-sized trial, which keeps per-interval HRs estimable.
DEFAULT_CUTS = (0.0, 12.0, 24.0, 36.0, 60.0, 96.0, math.inf)


def censored_loglik(event, log_hazard, cum_hazard):
    """Per-patient right-censored log-likelihood ``d log h - H``.

    Works on NumPy arrays and PyTensor tensors alike; every family's sampling
    likelihood and the Weibull pointwise values use it. The piecewise pointwise
    values use its per-interval sum in matrix form (:func:`piecewise_pointwise`,
    tested to add up to the sampled Poisson kernel).
    """
    return event * log_hazard - cum_hazard


@dataclass(frozen=True)
class BaselinePrior:
    """Weakly-informative priors on the nuisance (baseline) parameters.

    Attributes
    ----------
    time_ref : float
        A reference time in the data's unit (CLOCC: 36 months). The baseline
        prior is centred on a reference-arm median survival of ``time_ref``:
        the log cumulative hazard at ``time_ref`` (Weibull) or the log hazard
        in every interval (piecewise, log(log 2 / time_ref)) has prior mean
        log(log 2) resp. that rate.
    sd_log_cumhaz : float
        SD of that log cumulative hazard / log rate. 1.0 puts the central 95%
        of prior reference-arm survival at ``time_ref`` between about 0.02 and
        0.95: weakly informative, not piled at 0 or 1 (checked by
        :func:`kmbayes.families.prior_predictive_survival`).
    sd_log_shape : float
        SD of the log Weibull shape (0.5: shape between 0.37 and 2.7 at 95%,
        i.e. hazards from clearly falling to clearly rising).
    tau_scale : float
        Half-normal scale of tau, the SD of the change in log HR between
        adjacent intervals in ``piecewise_tv`` (random walk). 0.5 lets the HR
        change by a factor exp(1) = 2.7 between neighbouring intervals at
        about 2 SD, while shrinking noise.
    """

    time_ref: float = 36.0
    sd_log_cumhaz: float = 1.0
    sd_log_shape: float = 0.5
    tau_scale: float = 0.5

    def __post_init__(self):
        for k, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise InputError(f"models.baseline.{k}", f"must be a positive number, got {v!r}")

    def values(self) -> dict[str, float]:
        """Values of the ``pm.Data`` containers holding the baseline prior."""
        return {
            "t_ref": float(self.time_ref),
            "base_sd": float(self.sd_log_cumhaz),
            "shape_sd": float(self.sd_log_shape),
            "tau_scale": float(self.tau_scale),
        }


def check_cuts(cuts) -> tuple[float, ...]:
    """Validate cut points: start at 0, strictly increasing, >= 2 intervals."""
    try:
        c = [float(x) for x in cuts]
    except (TypeError, ValueError):
        raise InputError("models.cuts", f"expected an array of numbers, got {cuts!r}") from None
    if len(c) < 2:
        raise InputError("models.cuts", "need at least two cut points (one interval)")
    if c[0] != 0.0:
        raise InputError("models.cuts", f"must start at 0, got {c[0]:g}")
    if any(b <= a for a, b in zip(c, c[1:])) or any(math.isnan(x) for x in c):
        raise InputError("models.cuts", "must be strictly increasing")
    if not math.isinf(c[-1]):
        # The last interval is open so every patient's time falls in one.
        c.append(math.inf)
    return tuple(c)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


def interval_labels(cuts) -> list[str]:
    """``["0_12", "12_24", ..., "96_inf"]``."""
    return [f"{_fmt(a)}_{_fmt(b)}" for a, b in zip(cuts[:-1], cuts[1:])]


def exposure_at(times, cuts) -> np.ndarray:
    """Time spent in each interval up to each of ``times``, shape (T, J)."""
    t = np.asarray(times, float)[:, None]
    c = np.asarray(cuts, float)
    return np.clip(np.minimum(t, c[None, 1:]) - c[None, :-1], 0.0, None)


def piecewise_cumhaz(log_rate, times, cuts) -> np.ndarray:
    """Cumulative hazard at ``times`` for draws of log rates (S, J) -> (S, T)."""
    return np.exp(log_rate) @ exposure_at(times, cuts).T


def piecewise_median(log_rate, cuts) -> np.ndarray:
    """Median survival for draws of piecewise log rates (S, J) -> (S,)."""
    rate = np.exp(log_rate)
    c = np.asarray(cuts, float)
    width = np.diff(c)
    s, j = rate.shape
    target = math.log(2.0)
    out = np.full(s, np.inf)
    h_start = np.zeros(s)
    done = np.zeros(s, bool)
    for k in range(j):
        h_end = h_start + rate[:, k] * width[k] if math.isfinite(width[k]) else np.full(s, np.inf)
        hit = ~done & (h_end >= target)
        out[hit] = c[k] + (target - h_start[hit]) / rate[hit, k]
        done |= hit
        h_start = h_end
    return out


def piecewise_pointwise(log_rate_by_arm, data, cuts) -> np.ndarray:
    """Per-patient log-likelihood of a piecewise model.

    ``log_rate_by_arm`` has shape (S, 2, J). Patient i contributes
    sum_j [d_ij log lambda_ij - lambda_ij e_ij]; summed over patients this
    equals the aggregated Poisson kernel used for sampling.
    """
    e = data.exposure(cuts)  # (n, J)
    dmat = data.event_matrix(cuts)  # (n, J)
    out = np.empty((log_rate_by_arm.shape[0], len(data.arm)))
    # sum_j (d_ij log h_j - h_j e_ij) per arm as two matrix products,
    # (S, J) @ (J, n_arm): far cheaper than materialising (S, n, J).
    for a in range(log_rate_by_arm.shape[1]):
        idx = np.flatnonzero(data.arm == a)
        lr = log_rate_by_arm[:, a, :]
        out[:, idx] = lr @ dmat[idx].T - np.exp(lr) @ e[idx].T
    return out


def event_weights(data, edges) -> np.ndarray:
    """omega: each interval's share of all observed deaths (uniform if there are none).

    The weights of the *event-weighted average log HR*, sum_j omega_j log HR_j:
    the time-varying families put the prior set on this average, so it is a
    defined quantity (a death-weighted summary of HR(t), close to what a Cox
    fit of a non-PH effect estimates) rather than an unweighted mean of
    interval effects whose value depends on where the cut points fall.
    """
    d = data.event_matrix(edges).sum(axis=0)
    total = d.sum()
    return d / total if total > 0 else np.full(d.shape, 1.0 / d.size)


def early_late(log_hr, edges, omega, split: float) -> dict[str, np.ndarray]:
    """Event-weighted average HR before and after ``split``, and their ratio.

    ``log_hr`` (S, J) per interval of ``edges``; an interval counts as late if
    its midpoint is at or after ``split``. NaN where a period holds no deaths.
    """
    edges = np.asarray(edges, float)
    mid = np.where(np.isfinite(edges[1:]), 0.5 * (edges[:-1] + edges[1:]), np.inf)

    def avg(mask):
        w = omega * mask
        return log_hr @ (w / w.sum()) if w.sum() > 0 else np.full(log_hr.shape[0], np.nan)

    early, late = avg(mid < split), avg(mid >= split)
    return {"hr_early": np.exp(early), "hr_late": np.exp(late),
            "hr_ratio_late_early": np.exp(late - early)}


def tv_estimands(log_hr, edges, log_avg, data, split: float) -> dict[str, np.ndarray]:
    """The time-varying families' named draws: ``hr_avg_event_weighted`` (exp of
    ``log_avg``, the parameter the prior set acts on) and :func:`early_late` with
    the data's event weights on ``edges``."""
    out = early_late(log_hr, edges, event_weights(data, edges), split)
    out["hr_avg_event_weighted"] = np.exp(log_avg)
    return out


class Family:
    """Interface of a model family (one instance per module).

    Subclasses set ``name`` and ``uses_cuts`` and implement :meth:`build` and
    the NumPy post-processing methods, which take ``post``, a dict of
    posterior arrays flattened to shape (S, ...), and ``ctx``, a dict with
    ``t_ref`` and ``cuts``.
    """

    name: str = ""
    uses_cuts: bool = False
    #: posterior variable holding the log HR the prior set acts on
    log_hr_var: str = "log_hr"
    #: what exp(log_hr_var) is, for tables and prose
    effect_name: str = "hazard ratio (proportional hazards)"

    def family_estimands(self, post, data, ctx) -> dict[str, np.ndarray]:
        """Family-specific named draws (cure fractions, HR(t) summaries); none by default."""
        return {}

    def build(self, data, prior, *, cuts=DEFAULT_CUTS, baseline=None):
        raise NotImplementedError

    def data_values(self, data, cuts) -> dict[str, np.ndarray]:
        """Values for the model's data containers (for ``with_data``)."""
        raise NotImplementedError

    @staticmethod
    def prior_values(prior) -> dict[str, float]:
        return {"prior_mu": float(prior.mu), "prior_sigma": float(prior.sigma)}

    def log_hr(self, post) -> np.ndarray:
        return post[self.log_hr_var]

    def log_hr_at(self, post, times, ctx) -> np.ndarray:
        """log HR(t), shape (S, T). Constant for PH families."""
        lh = self.log_hr(post)
        return np.repeat(lh[:, None], len(times), axis=1)

    def cumhaz(self, post, times, arm: int, ctx) -> np.ndarray:
        raise NotImplementedError

    def median(self, post, arm: int, ctx) -> np.ndarray:
        raise NotImplementedError

    def pointwise_loglik(self, post, data, ctx) -> np.ndarray:
        raise NotImplementedError
