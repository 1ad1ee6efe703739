"""The second rung: nutpie's public API (``compile_pymc_model`` and ``with_data``).

No private nutpie or PyTensor API is touched, so this survives nutpie
releases that break :mod:`.numba_cached`. nutpie's callbacks cannot be cached
by numba, so each family costs about 6 s of compilation per process; after
that, priors and data sets are swapped with ``with_data`` without
recompiling.
"""

from __future__ import annotations

import warnings

from .. import families
from . import model_values, nutpie_sample

_COMPILED: dict[tuple, object] = {}


def reset() -> None:
    _COMPILED.clear()


def compiled(model, data, prior, cuts, baseline):
    """The family compiled by nutpie, once per process, family and cut points."""
    import nutpie

    fam = families.get(model)
    key = (model, tuple(cuts) if fam.uses_cuts else None)
    if key not in _COMPILED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm_model = fam.build(data, prior, cuts=cuts, baseline=baseline)
            _COMPILED[key] = nutpie.compile_pymc_model(pm_model, backend="numba")
    return _COMPILED[key]


def sample(model, data, prior, cuts, baseline, settings, seed):
    c = compiled(model, data, prior, cuts, baseline)
    # Only containers the compiled graph reads (a family may not use every baseline constant).
    used = {v.name for v in c.shared_var_keys}
    c = c.with_data(**{k: v for k, v in model_values(model, data, prior, cuts, baseline).items()
                       if k in used})
    return nutpie_sample(c, settings, seed)
