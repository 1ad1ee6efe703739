"""Registry of the Bayesian survival model families.

Each family is a module with ``build(data, prior, *, cuts, baseline) ->
pm.Model`` and a ``FAMILY`` object (:class:`~kmbayes.families._common.Family`)
that also knows how to turn posterior draws into hazards, survival, medians
and per-patient log-likelihoods with NumPy.

Families
--------
weibull_ph
    Weibull proportional hazards.
piecewise_ph
    Piecewise-exponential PH (Poisson on sufficient statistics).
piecewise_tv
    Piecewise-exponential with interval-specific HRs (random walk around a common mean).
cure
    Mixture cure model: cure fractions per arm, Weibull PH among the uncured
    (cure-effect priors in :mod:`kmbayes.cure_priors`).
smooth_tv
    Smooth baseline and smooth log HR(t) (random walks on a fine grid); the
    prior set acts on the event-weighted average log HR.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._common import (
    DEFAULT_CUTS,
    BaselinePrior,
    Family,
    censored_loglik,
    check_cuts,
    interval_labels,
)
from .cure import FAMILY as _CURE
from .piecewise_ph import FAMILY as _PIECEWISE_PH
from .piecewise_tv import FAMILY as _PIECEWISE_TV
from .smooth_tv import FAMILY as _SMOOTH_TV
from .weibull_ph import FAMILY as _WEIBULL_PH

FAMILIES: dict[str, Family] = {
    f.name: f for f in (_WEIBULL_PH, _PIECEWISE_PH, _PIECEWISE_TV, _CURE, _SMOOTH_TV)
}

__all__ = [
    "DEFAULT_CUTS",
    "FAMILIES",
    "BaselinePrior",
    "Family",
    "build",
    "censored_loglik",
    "check_cuts",
    "get",
    "interval_labels",
    "prior_predictive_survival",
]


def get(name: str) -> Family:
    """The family called ``name`` (InputError naming ``models.ids`` if unknown)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise InputError("models.ids", f"unknown model {name!r} (known: {', '.join(FAMILIES)})") from None


def build(name: str, data, prior, *, cuts=DEFAULT_CUTS, baseline=None):
    """Build the PyMC model of family ``name``."""
    return get(name).build(data, prior, cuts=cuts, baseline=baseline)


def prior_predictive_survival(
    name: str,
    data,
    prior,
    times,
    *,
    cuts=DEFAULT_CUTS,
    baseline=None,
    draws: int = 2000,
    seed: int = 0,
    arm: int = 0,
) -> np.ndarray:
    """Prior predictive survival of one arm at ``times``, shape (draws, T).

    Draws the model's own priors (``pm.draw`` on the built model, so the check
    tests the priors actually used) and maps them to survival. The check for a
    weakly-informative baseline: e.g. reference-arm 5-year OS should spread
    over (0, 1) rather than pile up at 0 or 1.
    """
    import pymc as pm

    fam = get(name)
    baseline = baseline or BaselinePrior()
    cuts = check_cuts(cuts)
    model = fam.build(data, prior, cuts=cuts, baseline=baseline)
    # Families whose NumPy side reads deterministics (e.g. smooth_tv's grid
    # values, which depend on data-derived weights) name them.
    wanted = {"log_hr_interval", *getattr(fam, "predictive_deterministics", ())}
    names = [rv.name for rv in model.free_RVs] + [
        d.name for d in model.deterministics if d.name in wanted
    ]
    values = pm.draw([model[n] for n in names], draws=draws, random_seed=seed)
    post = {n: np.asarray(v) for n, v in zip(names, values)}
    ctx = {"t_ref": baseline.time_ref, "cuts": cuts}
    return np.exp(-fam.cumhaz(post, times, arm, ctx))
