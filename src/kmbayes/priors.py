"""A community of priors on the log hazard ratio, as data.

Following Spiegelhalter, Abrams & Myles (2004, ch. 5), a single trial is
reanalysed under several priors that stand for different readers:

``reference``
    Normal(0, 10) on the log HR: flat over any plausible effect, so the
    posterior is the likelihood.
``sceptical``
    Centred on no effect, with only ``tail`` (5%) prior probability that the
    HR is better than the minimal clinically important difference (MCID,
    HR 0.7): sigma = -log(0.7) / z_{0.95} = 0.2168.
``enthusiastic``
    Centred on the MCID, with ``tail`` prior probability of harm (HR > 1).
``pessimistic``
    Centred on the mirror image of the MCID (HR 1/0.7): as sure the
    treatment harms as the enthusiast is that it helps.

Custom priors come from a centre HR and a tail probability beyond a
threshold HR, or directly from ``mu`` and ``sigma``. A prior is a frozen
:class:`PriorSpec` -- plain numbers that enter the model as data, so changing
the prior never recompiles the model (after bambi's ``Prior``).

The conjugate normal-normal approximation (:func:`conjugate_posterior`) and
the tipping point (:func:`tipping_point_conjugate`) use the published HR's
95% CI as a normal likelihood on the log HR.

References
----------
Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials
and Health-Care Evaluation. Chichester: Wiley; 2004. Sections 3.6, 5.5.
Spiegelhalter DJ, Freedman LS, Parmar MKB. Bayesian approaches to randomized
trials. J R Stat Soc A. 1994;157(3):357-416.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy import optimize, stats

from .errors import InputError

DEFAULT_MCID_HR = 0.7
DEFAULT_TAIL = 0.05
REFERENCE_SIGMA = 10.0
STANDARD_IDS = ("reference", "sceptical", "enthusiastic", "pessimistic")


class _NormalOnLogHR:
    """HR-scale summaries of a normal distribution on the log HR (``mu``, ``sigma``)."""

    @property
    def hr_median(self) -> float:
        return math.exp(self.mu)

    def hr_interval(self, level: float = 0.95) -> tuple[float, float]:
        z = stats.norm.ppf(0.5 + level / 2)
        return math.exp(self.mu - z * self.sigma), math.exp(self.mu + z * self.sigma)

    def prob_hr_lt(self, hr: float) -> float:
        """Probability that the HR is below ``hr``."""
        return float(stats.norm.cdf((math.log(hr) - self.mu) / self.sigma))


@dataclass(frozen=True)
class PriorSpec(_NormalOnLogHR):
    """A normal prior on the (mean) log hazard ratio.

    Attributes
    ----------
    name : str
        Identifier (``reference``, ``sceptical``, ... or a custom name).
    mu, sigma : float
        Mean and standard deviation of the log HR.
    description : str
        One line for reports.
    """

    name: str
    mu: float
    sigma: float
    description: str = ""

    def __post_init__(self):
        if not (math.isfinite(self.mu) and math.isfinite(self.sigma)) or self.sigma <= 0:
            raise InputError(f"priors.{self.name}", f"need finite mu and sigma > 0, got {self.mu}, {self.sigma}")

    def logpdf(self, log_hr):
        """Log density of the prior at ``log_hr`` (array-friendly)."""
        return stats.norm.logpdf(log_hr, self.mu, self.sigma)

    def as_dict(self) -> dict:
        return asdict(self)


def _z(tail: float) -> float:
    if not 0 < tail < 0.5:
        raise InputError("priors.tail", f"tail probability must be in (0, 0.5), got {tail}")
    return float(stats.norm.ppf(1 - tail))


def _check_hr(hr: float, fld: str) -> float:
    if isinstance(hr, bool) or not isinstance(hr, (int, float)) or not math.isfinite(hr) or hr <= 0:
        raise InputError(fld, f"must be a positive number, got {hr!r}")
    return float(hr)


def from_center(
    name: str, center_hr: float, tail_prob: float, threshold_hr: float = 1.0, description: str = ""
) -> PriorSpec:
    """Normal prior on log HR centred at ``center_hr`` with ``tail_prob`` beyond ``threshold_hr``.

    sigma = |log(center) - log(threshold)| / z_{1 - tail}.
    """
    center_hr = _check_hr(center_hr, f"priors.custom.{name}.center_hr")
    threshold_hr = _check_hr(threshold_hr, f"priors.custom.{name}.threshold_hr")
    if center_hr == threshold_hr:
        raise InputError(f"priors.custom.{name}.threshold_hr", "must differ from center_hr")
    sigma = abs(math.log(center_hr) - math.log(threshold_hr)) / _z(tail_prob)
    return PriorSpec(name, math.log(center_hr), sigma, description)


def reference(sigma: float = REFERENCE_SIGMA) -> PriorSpec:
    """Vague Normal(0, 10) on the log HR: the posterior is the likelihood."""
    return PriorSpec("reference", 0.0, sigma, f"Normal(0, {sigma:g}) on log HR (vague)")


def sceptical(mcid_hr: float = DEFAULT_MCID_HR, tail: float = DEFAULT_TAIL) -> PriorSpec:
    """Centred on HR 1 with P(HR < MCID) = ``tail``."""
    p = from_center("sceptical", 1.0, tail, mcid_hr)
    return PriorSpec(
        "sceptical", 0.0, p.sigma, f"Normal(0, {p.sigma:.4f}): P(HR<{mcid_hr:g}) = {tail:g}"
    )


def enthusiastic(mcid_hr: float = DEFAULT_MCID_HR, tail: float = DEFAULT_TAIL) -> PriorSpec:
    """Centred on the MCID with P(HR > 1) = ``tail``."""
    p = from_center("enthusiastic", mcid_hr, tail, 1.0)
    return PriorSpec(
        "enthusiastic", p.mu, p.sigma, f"Normal(log {mcid_hr:g}, {p.sigma:.4f}): P(HR>1) = {tail:g}"
    )


def pessimistic(mcid_hr: float = DEFAULT_MCID_HR, tail: float = DEFAULT_TAIL) -> PriorSpec:
    """Centred on HR 1/MCID with P(HR < 1) = ``tail``."""
    p = from_center("pessimistic", 1.0 / mcid_hr, tail, 1.0)
    return PriorSpec(
        "pessimistic", p.mu, p.sigma, f"Normal(-log {mcid_hr:g}, {p.sigma:.4f}): P(HR<1) = {tail:g}"
    )


def standard(name: str, mcid_hr: float = DEFAULT_MCID_HR, tail: float = DEFAULT_TAIL) -> PriorSpec:
    """One of the four standard priors by name."""
    if name == "reference":
        return reference()
    makers = {"sceptical": sceptical, "enthusiastic": enthusiastic, "pessimistic": pessimistic}
    if name not in makers:
        raise InputError("priors.ids", f"unknown prior {name!r} (standard: {', '.join(STANDARD_IDS)})")
    return makers[name](mcid_hr, tail)


def custom(name: str, tbl: dict) -> PriorSpec:
    """A custom prior from a config table.

    Either ``mu`` and ``sigma`` (log-HR scale) or ``center_hr`` and
    ``tail_prob`` (+ optional ``threshold_hr``, default 1; for a centre of 1
    the threshold is required).
    """
    fld = f"priors.custom.{name}"
    if not isinstance(tbl, dict):
        raise InputError(fld, "expected a table")
    if "mu" in tbl or "sigma" in tbl:
        for k in ("mu", "sigma"):
            if k not in tbl:
                raise InputError(f"{fld}.{k}", "missing (required with mu/sigma)")
            v = tbl[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"{fld}.{k}", f"expected a number, got {v!r}")
        if tbl["sigma"] <= 0:
            raise InputError(f"{fld}.sigma", f"must be > 0, got {tbl['sigma']}")
        return PriorSpec(name, float(tbl["mu"]), float(tbl["sigma"]), tbl.get("description", ""))
    for k in ("center_hr", "tail_prob"):
        if k not in tbl:
            raise InputError(f"{fld}.{k}", "missing (give center_hr + tail_prob, or mu + sigma)")
    tail = tbl["tail_prob"]
    if isinstance(tail, bool) or not isinstance(tail, (int, float)) or not 0 < tail < 0.5:
        raise InputError(f"{fld}.tail_prob", f"must be in (0, 0.5), got {tail!r}")
    return from_center(
        name, tbl["center_hr"], float(tail), tbl.get("threshold_hr", 1.0), tbl.get("description", "")
    )


def prior_set(
    ids, mcid_hr: float = DEFAULT_MCID_HR, tail: float = DEFAULT_TAIL, customs: dict | None = None
) -> dict[str, PriorSpec]:
    """Priors by id, in the order given (standard names or keys of ``customs``)."""
    customs = customs or {}
    out = {}
    for pid in ids:
        out[pid] = custom(pid, customs[pid]) if pid in customs else standard(pid, mcid_hr, tail)
    return out


# --------------------------------------------------------------------------- conjugate


@dataclass(frozen=True)
class NormalPosterior(_NormalOnLogHR):
    """A normal distribution on the log HR (conjugate posterior or likelihood)."""

    mu: float
    sigma: float


def normal_likelihood_from_ci(
    hr: float, lower: float, upper: float, level: float = 0.95
) -> tuple[float, float]:
    """Log HR and its SE from a published HR and CI.

    The SE is the CI width on the log scale over 2 z (Spiegelhalter et al.
    2004, sec. 2.4); the point estimate's log is kept as the centre. For
    0.58 (0.38-0.88): log HR -0.545, SE 0.214.
    """
    z = stats.norm.ppf(0.5 + level / 2)
    return math.log(hr), (math.log(upper) - math.log(lower)) / (2 * z)


def conjugate_posterior(prior: PriorSpec, log_hr: float, se: float) -> NormalPosterior:
    """Normal prior x normal likelihood -> normal posterior (precision-weighted)."""
    w0, w1 = 1 / prior.sigma**2, 1 / se**2
    return NormalPosterior((w0 * prior.mu + w1 * log_hr) / (w0 + w1), (w0 + w1) ** -0.5)


def tipping_point_conjugate(
    log_hr: float, se: float, threshold_prob: float = 0.95, hr: float = 1.0
) -> float:
    """Smallest sigma of a prior Normal(0, sigma) with P(HR < ``hr``) >= ``threshold_prob``.

    With precisions a = 1/se^2 and b = 1/sigma^2 the posterior P(HR < 1) is
    Phi(-a y / sqrt(a + b)) (y = log HR), increasing in sigma, so the tipping
    point solves a y / sqrt(a + b) = -z: b = (a y / z)^2 - a. Returns ``inf``
    if even the flat prior does not reach ``threshold_prob`` (``hr`` other
    than 1 uses a root find).
    """
    z = stats.norm.ppf(threshold_prob)
    a = 1 / se**2
    if hr == 1.0:
        b = (a * log_hr / z) ** 2 - a
        if log_hr >= 0 or b <= 0:
            return math.inf
        return b**-0.5

    def f(log_sigma):
        p = conjugate_posterior(PriorSpec("tp", 0.0, math.exp(log_sigma)), log_hr, se)
        return p.prob_hr_lt(hr) - threshold_prob

    if f(math.log(1e3)) < 0:
        return math.inf
    return math.exp(optimize.brentq(f, math.log(1e-4), math.log(1e3)))
