"""The last rung: PyMC's own NUTS sampler (always available, slowest)."""

from __future__ import annotations

import warnings

from .. import families


def sample(model, data, prior, cuts, baseline, settings, seed):
    """``pm.sample`` on a freshly built model; returns PyMC's DataTree."""
    import pymc as pm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = families.get(model).build(data, prior, cuts=cuts, baseline=baseline)
        with m:
            return pm.sample(
                draws=settings.draws, tune=settings.tune, chains=settings.chains,
                cores=1, target_accept=settings.target_accept, random_seed=seed,
                progressbar=False, compute_convergence_checks=False,
            )
