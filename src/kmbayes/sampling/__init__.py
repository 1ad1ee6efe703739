"""Sample one model x prior x data set with NUTS, through a ladder of backends.

Each rung is a module with one job:

1. ``numba-cached`` (:mod:`.numba_cached`): PyTensor's numba-compiled log
   density behind C callbacks that nutpie calls without the GIL, with every
   compiled piece cached on disk. Fastest (chains run as parallel threads,
   ~0.02 s to load a family in a new process), but it relies on private
   nutpie and PyTensor APIs.
2. ``nutpie`` (:mod:`.nutpie_public`): nutpie's public
   ``compile_pymc_model`` and ``with_data``. No private API; about 6 s of
   numba compilation per family and process.
3. ``pymc`` (:mod:`.pymc_nuts`): PyMC's own NUTS. Slowest, always there.

A rung that cannot be built is skipped for the rest of the process, with one
line on stderr saying why; every fit records which rung ran. Priors,
replicates and retries swap new values into the compiled family
(:func:`model_values`): nothing is recompiled.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from .. import families

RUNGS = ("numba-cached", "nutpie", "pymc")

#: rung -> why it is off for the rest of the process
_BROKEN: dict[str, str] = {}


def model_values(model, data, prior, cuts, baseline) -> dict[str, np.ndarray]:
    """All ``pm.Data`` values of a fit (data, baseline constants, prior)."""
    fam = families.get(model)
    vals = dict(fam.data_values(data, cuts))
    vals.update(baseline.values())
    vals.update(fam.prior_values(prior))
    return {k: np.asarray(v, dtype=float) for k, v in vals.items()}


def nutpie_sample(compiled_model, settings, seed):
    """``nutpie.sample`` with a fit's settings; both nutpie rungs call it, so they
    differ only in how the model was compiled."""
    import warnings

    import nutpie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nutpie.sample(
            compiled_model, draws=settings.draws, tune=settings.tune, chains=settings.chains,
            cores=max(1, min(settings.chains, os.cpu_count() or 1)), seed=seed,
            progress_bar=False, save_warmup=False, target_accept=settings.target_accept,
        )


def _disabled() -> set[str]:
    """Rungs turned off by ``KMBAYES_SKIP_RUNGS`` (comma-separated; for tests and debugging)."""
    return {r.strip() for r in os.environ.get("KMBAYES_SKIP_RUNGS", "").split(",") if r.strip()}


def mark_broken(rung: str, ex: BaseException) -> None:
    """Skip ``rung`` for the rest of the process and say why, once, on one line."""
    if rung in _BROKEN:
        return
    why = " ".join(f"{type(ex).__name__}: {ex}".split())[:200]
    _BROKEN[rung] = why
    nxt = RUNGS[RUNGS.index(rung) + 1] if rung != RUNGS[-1] else "none"
    print(f"kmbayes: sampler rung {rung!r} unavailable ({why}); falling back to {nxt!r}",
          file=sys.stderr, flush=True)


def reset() -> None:
    """Forget compiled families and broken rungs (tests)."""
    from . import numba_cached, nutpie_public

    _BROKEN.clear()
    numba_cached.reset()
    nutpie_public.reset()


def sample(model, data, prior, cuts, baseline, settings, seed):
    """Draw from the posterior; returns ``(datatree, rung)``.

    ``settings.backend == "pymc"`` goes straight to PyMC's NUTS. Otherwise
    the rungs are tried in order; an exception in a rung marks it broken
    (one line on stderr) and the next rung runs.
    """
    from . import numba_cached, nutpie_public, pymc_nuts

    runners = {"numba-cached": numba_cached.sample, "nutpie": nutpie_public.sample,
               "pymc": pymc_nuts.sample}
    order = ["pymc"] if settings.backend == "pymc" else list(RUNGS)
    skip = _disabled()
    last = None
    for rung in order:
        if rung in _BROKEN or (rung in skip and rung != order[-1]):
            continue
        try:
            return runners[rung](model, data, prior, cuts, baseline, settings, seed), rung
        except Exception as ex:  # the next rung is the fallback
            last = ex
            if rung == order[-1]:
                raise
            mark_broken(rung, ex)
    raise RuntimeError(f"no sampler rung could run: {last}")
