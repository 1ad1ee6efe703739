"""The sampler ladder (:mod:`kmbayes.sampling`): same density as the model, cached, safe fallbacks.

The numba callbacks nutpie calls are generated code reading data through raw
pointers, so they are checked against the PyMC model's own compiled log
density and gradient at random points, after swapping in other data and
another prior -- a wrong pointer, shape or argument order shows up as a
different log density or gradient. Each rung of the ladder has a test, and
so has the verified compile cache.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kmbayes import families, fitting, priors, sampling
from kmbayes.data import simulate_trial
from kmbayes.diagnostics import Gate
from kmbayes.families import BaselinePrior
from kmbayes.runspec import SamplerSettings
from kmbayes.sampling import numba_cached

CUTS = (0.0, 12.0, 36.0, np.inf)
BASE = BaselinePrior()
ROOT = Path(__file__).resolve().parents[1]
GATE = Gate(ess_min=0, rhat_max=10)


@pytest.fixture(scope="module")
def trials():
    a = simulate_trial(np.random.default_rng(11), n=(40, 40), hr=0.7)
    b = simulate_trial(np.random.default_rng(12), n=(50, 55), hr=0.5)
    return a, b


@pytest.fixture
def fresh_ladder():
    sampling.reset()
    yield
    sampling.reset()


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


def _reference(model, data, prior):
    """The PyMC model's own logp and gradient, as functions of the flat unconstrained vector."""
    m = families.build(model, data, prior, cuts=CUTS, baseline=BASE)
    names = [m.rvs_to_values[v].name for v in m.free_RVs]
    shapes = [m.initial_point()[n].shape for n in names]
    logp, dlogp = m.compile_logp(), m.compile_dlogp()

    def unflat(x):
        out, i = {}, 0
        for n, sh in zip(names, shapes):
            k = int(np.prod(sh))
            out[n] = x[i:i + k].reshape(sh)
            i += k
        return out

    return lambda x: (float(logp(unflat(x))), np.asarray(dlogp(unflat(x))))


@pytest.mark.parametrize("model", list(families.FAMILIES))
def test_callbacks_equal_the_pymc_model_after_a_data_swap(model, trials):
    a, b = trials
    built_for_a = families.build(model, a, priors.sceptical(), cuts=CUTS, baseline=BASE)
    fn = numba_cached.make_functions(built_for_a, numba_cached.initial_point_fn(built_for_a))
    nm = numba_cached.build(fn, sampling.model_values(model, a, priors.sceptical(), CUTS, BASE),
                            numba_cached.flat_initial_point(fn))
    # Swap in trial b and the enthusiastic prior; compare with a model built for them.
    cm = nm.with_values(sampling.model_values(model, b, priors.enthusiastic(), CUTS, BASE))
    ref = _reference(model, b, priors.enthusiastic())
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.normal(scale=0.5, size=fn["n_dim"])
        rc, lp, grad = _call_logp(cm, x)
        want_lp, want_grad = ref(x)
        assert rc == 0
        np.testing.assert_allclose(lp, want_lp, rtol=1e-9)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-10)
        rc, expanded = _call_expand(cm, x)
        assert rc == 0 and np.all(np.isfinite(expanded))
        np.testing.assert_allclose(expanded[:fn["n_dim"]], x)


def test_with_values_rejects_a_wrong_rank(trials):
    a, _ = trials
    m = families.build("piecewise_ph", a, priors.sceptical(), cuts=CUTS, baseline=BASE)
    fn = numba_cached.make_functions(m, numba_cached.initial_point_fn(m))
    nm = numba_cached.build(fn, sampling.model_values("piecewise_ph", a, priors.sceptical(), CUTS, BASE),
                            numba_cached.flat_initial_point(fn))
    vals = sampling.model_values("piecewise_ph", a, priors.sceptical(), CUTS, BASE)
    vals["D"] = vals["D"].ravel()
    with pytest.raises(ValueError, match="'D' must have rank 2"):
        nm.with_values(vals)


def _fit(data, seed=3, **kw):
    settings = SamplerSettings(draws=150, tune=150, chains=2, **kw)
    return fitting.fit_one("piecewise_ph", data, priors.sceptical(), cuts=CUTS, settings=settings,
                           gate=GATE, seed=seed, retry=False)


def test_numba_rung_is_reproducible_and_recorded(trials, fresh_ladder):
    a, _ = trials
    fits = [_fit(a) for _ in range(2)]
    post = [f.idata["posterior"] for f in fits]
    for v in post[0].data_vars:
        np.testing.assert_array_equal(post[0][v].values, post[1][v].values)
    assert fits[0].diagnostics["attempt_log"][0]["rung"] == "numba-cached"
    assert post[0].sizes["chain"] == 2


@pytest.mark.parametrize("skip, rung", [("numba-cached", "nutpie"), ("numba-cached,nutpie", "pymc")])
def test_each_lower_rung_samples(trials, fresh_ladder, monkeypatch, skip, rung):
    a, _ = trials
    monkeypatch.setenv("KMBAYES_SKIP_RUNGS", skip)
    fit = _fit(a)
    assert fit.diagnostics["attempt_log"][0]["rung"] == rung
    assert fit.idata["posterior"].sizes["draw"] == 150
    # same posterior as the fast rung, to Monte Carlo error
    lh = fit.idata["posterior"]["log_hr"].values
    assert abs(np.mean(lh) - np.log(0.7)) < 0.6


def test_a_broken_rung_falls_back_with_one_line(trials, fresh_ladder, monkeypatch, capsys):
    a, _ = trials

    def boom(*args, **kwargs):
        raise RuntimeError("no numba\nhere")

    monkeypatch.setattr(numba_cached, "build", boom)
    fit = _fit(a)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'numba-cached' unavailable" in err[0] and "no numba here" in err[0]
    assert fit.diagnostics["attempt_log"][0]["rung"] == "nutpie"
    _fit(a)  # the broken rung is not retried, and not announced again
    assert capsys.readouterr().err == ""


def test_a_planted_pickle_is_never_loaded(tmp_path, trials, monkeypatch):
    a, _ = trials
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    vals = sampling.model_values("weibull_ph", a, priors.sceptical(), CUTS, BASE)
    path = tmp_path / "weibull_ph-planted.pkl"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path.write_bytes(pickle.dumps(Evil()))
    assert numba_cached.load_functions(path, vals) is None
    assert not marker.exists()
    # a file kmbayes wrote itself is loaded; altered afterwards, it is not
    m = families.build("weibull_ph", a, priors.sceptical(), baseline=BASE)
    numba_cached.save_functions(path, numba_cached.make_functions(m, numba_cached.initial_point_fn(m)))
    assert numba_cached.load_functions(path, vals) is not None
    path.write_bytes(path.read_bytes() + b"x")
    assert numba_cached.load_functions(path, vals) is None


_CACHE_PROBE = textwrap.dedent("""
    import numpy as np
    from kmbayes import priors
    from kmbayes.data import simulate_trial
    from kmbayes.families import BaselinePrior
    from kmbayes.sampling import numba_cached
    d = simulate_trial(np.random.default_rng(1), n=(30, 30))
    c = numba_cached.compiled("piecewise_ph", d, priors.sceptical(), (0.0, 24.0, np.inf),
                              BaselinePrior())
    t = c.template
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
