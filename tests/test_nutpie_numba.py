"""The numba path (:mod:`kmbayes._nutpie_numba`): same density as the model, cached, safe fallback.

The callbacks nutpie calls are generated code reading data through raw
pointers, so they are checked against an independent compilation of the same
PyMC model (PyTensor's C backend) at random points, after swapping in other
data and another prior -- a wrong pointer, shape or argument order shows up
as a different log density or gradient.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kmbayes import _nutpie_numba, families, fitting, priors
from kmbayes.data import simulate_trial
from kmbayes.families import BaselinePrior

CUTS = (0.0, 12.0, 36.0, np.inf)
BASE = BaselinePrior()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trials():
    a = simulate_trial(np.random.default_rng(11), n=(40, 40), hr=0.7)
    b = simulate_trial(np.random.default_rng(12), n=(50, 55), hr=0.5)
    return a, b


def _call_logp(cm, x):
    p = ctypes.POINTER(ctypes.c_double)
    grad, lp = np.zeros(len(x)), np.zeros(1)
    rc = cm.compiled_logp_func.ctypes(
        len(x), x.ctypes.data_as(p), grad.ctypes.data_as(p), lp.ctypes.data_as(p),
        cm.user_data.ctypes.data_as(ctypes.c_void_p))
    return rc, lp[0], grad


def _call_expand(cm, x):
    p = ctypes.POINTER(ctypes.c_double)
    out = np.zeros(cm.n_expanded)
    rc = cm.compiled_expand_func.ctypes(
        len(x), cm.n_expanded, x.ctypes.data_as(p), out.ctypes.data_as(p),
        cm.user_data.ctypes.data_as(ctypes.c_void_p))
    return rc, out


@pytest.mark.parametrize("model", list(families.FAMILIES))
def test_callbacks_equal_the_pymc_model_after_a_data_swap(model, trials):
    a, b = trials
    built_for_a = families.build(model, a, priors.sceptical(), cuts=CUTS, baseline=BASE)
    fn = _nutpie_numba.make_functions(built_for_a, fitting._initial_point_fn(built_for_a))
    nm = _nutpie_numba.build(fn, fitting.model_values(model, a, priors.sceptical(), CUTS, BASE),
                             fitting._flat_initial_point(fn))
    # Swap in trial b and the enthusiastic prior; compare with a model built for them.
    cm = nm.with_values(fitting.model_values(model, b, priors.enthusiastic(), CUTS, BASE))
    ref = fitting._c_functions(
        families.build(model, b, priors.enthusiastic(), cuts=CUTS, baseline=BASE))
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(scale=0.5, size=fn["n_dim"])
        rc, lp, grad = _call_logp(cm, x)
        want_lp, want_grad = ref["logp"](x)
        assert rc == 0
        np.testing.assert_allclose(lp, want_lp, rtol=1e-9)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-10)
        rc, expanded = _call_expand(cm, x)
        assert rc == 0
        want = np.concatenate([np.ravel(v) for v in ref["expand"](x)])
        np.testing.assert_allclose(expanded, want, rtol=1e-9)


def test_with_values_rejects_a_wrong_rank(trials):
    a, _ = trials
    m = families.build("piecewise_ph", a, priors.sceptical(), cuts=CUTS, baseline=BASE)
    fn = _nutpie_numba.make_functions(m, fitting._initial_point_fn(m))
    nm = _nutpie_numba.build(fn, fitting.model_values("piecewise_ph", a, priors.sceptical(), CUTS, BASE),
                             fitting._flat_initial_point(fn))
    vals = fitting.model_values("piecewise_ph", a, priors.sceptical(), CUTS, BASE)
    vals["D"] = vals["D"].ravel()
    with pytest.raises(ValueError, match="'D' must have rank 2"):
        nm.with_values(vals)


def test_numba_fit_is_reproducible_and_records_its_backend(trials):
    a, _ = trials
    settings = fitting.SamplerSettings(draws=200, tune=200, chains=2, compile="numba")
    gate = fitting.Gate(ess_min=0, rhat_max=10)
    fits = [fitting.fit_one("piecewise_ph", a, priors.sceptical(), cuts=CUTS, settings=settings,
                            gate=gate, seed=3, retry=False) for _ in range(2)]
    for v in fits[0].idata.posterior.data_vars:
        np.testing.assert_array_equal(fits[0].idata.posterior[v].values,
                                      fits[1].idata.posterior[v].values)
    assert fits[0].diagnostics["attempt_log"][0]["compile"] == "numba"
    assert fits[0].idata.posterior.sizes["chain"] == 2


def test_falls_back_to_the_c_backend(trials, monkeypatch):
    a, _ = trials

    def boom(*args, **kwargs):
        raise RuntimeError("no numba here")

    monkeypatch.setattr(_nutpie_numba, "build", boom)
    monkeypatch.setattr(fitting, "_NUMBA_BROKEN", None)
    monkeypatch.setattr(fitting, "_COMPILED", {})
    monkeypatch.setenv("KMBAYES_WORKERS", "0")
    settings = fitting.SamplerSettings(draws=150, tune=150, chains=2, compile="numba")
    with pytest.warns(RuntimeWarning, match="no numba here"):
        fit = fitting.fit_one("weibull_ph", a, priors.sceptical(), settings=settings,
                              gate=fitting.Gate(ess_min=0, rhat_max=10), seed=1, retry=False)
    assert fit.diagnostics["attempt_log"][0]["compile"] == "c"
    assert fit.idata.posterior.sizes["draw"] == 150


_CACHE_PROBE = textwrap.dedent("""
    import numpy as np
    from kmbayes import fitting, priors
    from kmbayes.data import simulate_trial
    d = simulate_trial(np.random.default_rng(1), n=(30, 30))
    c = fitting.compiled_model("piecewise_ph", d, priors.sceptical(), (0.0, 24.0, np.inf),
                               fitting.BaselinePrior(), "numba")
    t = c.nutpie_model.template
    print(t.compiled_logp_func.cache_hits, t.compiled_expand_func.cache_hits)
""")


def test_callbacks_come_from_the_disk_cache_in_a_new_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    runs = [subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True,
                           env=env, timeout=600) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    # The first process may have compiled and saved them; the second must load both.
    assert runs[1].stdout.split()[-2:] == ["1", "1"]
