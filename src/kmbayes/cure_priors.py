"""Priors for the mixture cure model's cure fractions, as data.

The mixture cure family (:mod:`kmbayes.families.cure`) has two treatment
effects: a log HR among the uncured, which takes the usual community of
:mod:`kmbayes.priors`, and an effect on the cure fraction,

    logit pi_1 = logit pi_0 + delta,

which needs its own community. ``delta`` is a log odds ratio of cure, which
few clinicians can read, so every prior here is *stated* on the scale of the
difference in cure fraction, pi_1 - pi_0, read at a baseline (reference-arm)
cure fraction ``base`` (default 0.10: long-term survival of patients with
unresectable colorectal liver metastases on chemotherapy alone is of the
order of 5-10%), and converted to a normal prior on ``delta``:

``sceptical``
    Median difference 0, and 5% prior probability that the difference
    exceeds the minimal clinically important difference (MCID, +0.15, i.e.
    from 10% to 25% cured): delta ~ Normal(0, log(3) / 1.645) =
    Normal(0, 0.668), since logit(0.25) - logit(0.10) = log 3.
``enthusiastic``
    Centred on the MCID (delta = log 3) with 5% prior probability of harm
    (delta < 0): Normal(1.099, 0.668).
``pessimistic``
    The enthusiast's mirror image on the log-odds scale (cure odds ratio 1/3,
    i.e. from 10% to 3.6% cured) with 5% probability of benefit:
    Normal(-1.099, 0.668).
``reference``
    Normal(0, 2) on delta. Not Normal(0, 10) as for the log HR: on the logit
    scale a very wide normal is not vague but piles the treatment arm's cure
    fraction at 0 and 1. With the baseline prior below, SD 2 lets the prior
    predictive difference pi_1 - pi_0 spread over about (-0.34, 0.67) at
    95%, median 0 (:func:`kmbayes.families.cure.prior_predictive_cure`): wide
    enough for a trial of this size to dominate.

The reference-arm cure fraction has one weakly-informative prior for all
readers (:class:`CureBaseline`): logit pi_0 ~ Normal(logit 0.10, 1.5), a
median of 10% and a central 95% range of about 0.6% to 69%.

Every constant enters the model as ``pm.Data`` (``cure_mu``, ``cure_sigma``,
``cure0_mu``, ``cure0_sd``), so swapping a cure prior never recompiles.

How a fit gets its cure prior: a :class:`PriorWithCure` carries one
explicitly; otherwise the cure prior of the same name as the log-HR prior
(``sceptical`` -> ``sceptical``), so one "reader" is equally sceptical
about both effects; a custom log-HR prior gets the reference cure prior.

References
----------
Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials
and Health-Care Evaluation. Wiley; 2004. Sections 5.5 (community of priors).
Othus M, Barlogie B, LeBlanc ML, Crowley JJ. Cure models as a useful
statistical tool for analyzing survival. Clin Cancer Res. 2012;18:3731-6.
Amico M, Van Keilegom I. Cure models in survival analysis. Annu Rev Stat
Appl. 2018;5:311-42.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from .errors import InputError
from .priors import STANDARD_IDS, PriorSpec

#: baseline cure fraction at which a difference in cure fraction is read
DEFAULT_BASE_CURE = 0.10
#: minimal clinically important difference in cure fraction
DEFAULT_MCID_DIFF = 0.15
DEFAULT_TAIL = 0.05
REFERENCE_SIGMA = 2.0


def logit(p):
    p = np.asarray(p, float)
    return np.log(p) - np.log1p(-p)


def expit(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, float)))


def _check_prob(p: float, fld: str, lo: float = 0.0, hi: float = 1.0) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not lo < p < hi:
        raise InputError(fld, f"must be a number in ({lo:g}, {hi:g}), got {p!r}")
    return float(p)


def delta_of_difference(diff: float, base: float = DEFAULT_BASE_CURE) -> float:
    """Log odds ratio of cure giving difference ``diff`` at reference cure fraction ``base``."""
    base = _check_prob(base, "cure_priors.base")
    _check_prob(base + diff, "cure_priors.difference (base + diff must lie in (0, 1))")
    return float(logit(base + diff) - logit(base))


def difference_of_delta(delta, base: float = DEFAULT_BASE_CURE):
    """pi_1 - pi_0 implied by log odds ratio ``delta`` at reference cure fraction ``base``."""
    return expit(logit(base) + np.asarray(delta, float)) - base


@dataclass(frozen=True)
class CurePrior:
    """A normal prior on delta, the log odds ratio of cure (treatment vs reference).

    Attributes
    ----------
    name : str
        ``reference``, ``sceptical``, ``enthusiastic``, ``pessimistic`` or custom.
    mu, sigma : float
        Mean and SD of delta.
    description : str
        One line for reports, on the cure-fraction-difference scale.
    """

    name: str
    mu: float
    sigma: float
    description: str = ""

    def __post_init__(self):
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma)) or self.sigma <= 0:
            raise InputError(f"cure_priors.{self.name}",
                             f"need finite mu and sigma > 0, got {self.mu}, {self.sigma}")

    def values(self) -> dict[str, float]:
        """Values of the ``pm.Data`` containers holding this prior."""
        return {"cure_mu": float(self.mu), "cure_sigma": float(self.sigma)}

    def prob_difference_gt(self, diff: float, base: float = DEFAULT_BASE_CURE) -> float:
        """Prior P(pi_1 - pi_0 > ``diff``) at reference cure fraction ``base``."""
        return float(stats.norm.sf((delta_of_difference(diff, base) - self.mu) / self.sigma))

    def difference_interval(self, base: float = DEFAULT_BASE_CURE, level: float = 0.95):
        """Central prior interval of pi_1 - pi_0 at reference cure fraction ``base``."""
        z = stats.norm.ppf(0.5 + level / 2)
        lo, hi = difference_of_delta([self.mu - z * self.sigma, self.mu + z * self.sigma], base)
        return float(lo), float(hi)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CureBaseline:
    """Weakly-informative prior on the reference-arm cure fraction, logit pi_0 ~ Normal(mu, sd)."""

    mu: float = float(logit(DEFAULT_BASE_CURE))
    sd: float = 1.5

    def __post_init__(self):
        if not (math.isfinite(self.mu) and math.isfinite(self.sd)) or self.sd <= 0:
            raise InputError("cure_priors.baseline", f"need finite mu and sd > 0, got {self.mu}, {self.sd}")

    def values(self) -> dict[str, float]:
        return {"cure0_mu": float(self.mu), "cure0_sd": float(self.sd)}


@dataclass(frozen=True)
class PriorWithCure(PriorSpec):
    """A log-HR prior (:class:`~kmbayes.priors.PriorSpec`) that also names its cure prior."""

    cure: CurePrior | None = None
    cure_baseline: CureBaseline | None = None


def from_difference(name: str, center_diff: float, tail_prob: float, threshold_diff: float,
                    base: float = DEFAULT_BASE_CURE, description: str = "") -> CurePrior:
    """Normal prior on delta centred at difference ``center_diff`` with ``tail_prob`` beyond ``threshold_diff``.

    Both differences are read at reference cure fraction ``base`` and mapped
    to the log-odds scale; sigma = |delta(center) - delta(threshold)| / z_{1-tail}.

    Parameters
    ----------
    name : str
    center_diff : float
        Prior median of pi_1 - pi_0 at ``base``.
    tail_prob : float
        Prior probability beyond ``threshold_diff``, in (0, 0.5).
    threshold_diff : float
        A difference in cure fraction other than ``center_diff``.
    base : float
        Reference-arm cure fraction at which the differences are read.
    description : str

    Returns
    -------
    CurePrior

    Examples
    --------
    >>> p = from_difference("sceptical", 0.0, 0.05, 0.15)
    >>> round(p.sigma, 4), round(p.prob_difference_gt(0.15), 3)
    (0.6679, 0.05)
    """
    tail = _check_prob(tail_prob, f"cure_priors.{name}.tail_prob", 0.0, 0.5)
    mu = delta_of_difference(center_diff, base)
    thr = delta_of_difference(threshold_diff, base)
    if mu == thr:
        raise InputError(f"cure_priors.{name}.threshold_diff", "must differ from center_diff")
    sigma = abs(mu - thr) / float(stats.norm.ppf(1 - tail))
    return CurePrior(name, mu, sigma, description)


def reference(sigma: float = REFERENCE_SIGMA) -> CurePrior:
    """Normal(0, 2) on the log odds ratio of cure (see the module docstring for why not wider)."""
    return CurePrior("reference", 0.0, sigma, f"Normal(0, {sigma:g}) on the log odds ratio of cure")


def sceptical(mcid_diff: float = DEFAULT_MCID_DIFF, tail: float = DEFAULT_TAIL,
              base: float = DEFAULT_BASE_CURE) -> CurePrior:
    """Median difference 0; P(difference > ``mcid_diff``) = ``tail`` at cure fraction ``base``."""
    p = from_difference("sceptical", 0.0, tail, mcid_diff, base)
    return CurePrior("sceptical", 0.0, p.sigma,
                     f"cure difference median 0, P(> +{mcid_diff:g} at base {base:g}) = {tail:g}")


def enthusiastic(mcid_diff: float = DEFAULT_MCID_DIFF, tail: float = DEFAULT_TAIL,
                 base: float = DEFAULT_BASE_CURE) -> CurePrior:
    """Centred on the MCID difference; P(difference < 0) = ``tail``."""
    p = from_difference("enthusiastic", mcid_diff, tail, 0.0, base)
    return CurePrior("enthusiastic", p.mu, p.sigma,
                     f"cure difference median +{mcid_diff:g} at base {base:g}, P(< 0) = {tail:g}")


def pessimistic(mcid_diff: float = DEFAULT_MCID_DIFF, tail: float = DEFAULT_TAIL,
                base: float = DEFAULT_BASE_CURE) -> CurePrior:
    """The enthusiast mirrored on the log-odds scale; P(difference > 0) = ``tail``."""
    p = enthusiastic(mcid_diff, tail, base)
    return CurePrior("pessimistic", -p.mu, p.sigma,
                     f"cure odds ratio median {math.exp(-p.mu):.3g}, P(difference > 0) = {tail:g}")


def standard(name: str, mcid_diff: float = DEFAULT_MCID_DIFF, tail: float = DEFAULT_TAIL,
             base: float = DEFAULT_BASE_CURE) -> CurePrior:
    """One of the four standard cure priors by name."""
    if name == "reference":
        return reference()
    makers = {"sceptical": sceptical, "enthusiastic": enthusiastic, "pessimistic": pessimistic}
    if name not in makers:
        raise InputError("cure_priors.ids", f"unknown cure prior {name!r} (standard: {', '.join(STANDARD_IDS)})")
    return makers[name](mcid_diff, tail, base)


def community(mcid_diff: float = DEFAULT_MCID_DIFF, tail: float = DEFAULT_TAIL,
              base: float = DEFAULT_BASE_CURE) -> dict[str, CurePrior]:
    """The four standard cure priors, in the order of :data:`kmbayes.priors.STANDARD_IDS`."""
    return {n: standard(n, mcid_diff, tail, base) for n in STANDARD_IDS}


def with_cure(prior: PriorSpec, cure: CurePrior | None = None,
              cure_baseline: CureBaseline | None = None) -> PriorWithCure:
    """``prior`` with an explicit cure prior (and optionally a cure baseline prior)."""
    return PriorWithCure(prior.name, prior.mu, prior.sigma, prior.description, cure, cure_baseline)


def for_prior(prior) -> tuple[CurePrior, CureBaseline]:
    """The cure prior and cure baseline a fit under ``prior`` uses (see the module docstring)."""
    cure = getattr(prior, "cure", None)
    if cure is None:
        name = getattr(prior, "name", "")
        cure = standard(name) if name in STANDARD_IDS else reference()
    return cure, getattr(prior, "cure_baseline", None) or CureBaseline()
