"""Chains in worker processes: same draws as in-process, fallbacks, clean shutdown.

Same seed => same numbers wherever a chain runs: the pooled path (chain 1 in
a spawned worker) and the sequential path (``KMBAYES_WORKERS=0``) must give
identical draws, sample stats, log-likelihoods and diagnostics.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from kmbayes import fitting, priors
from kmbayes.data import simulate_trial

# The C backend: the numba backend runs chains as threads and never uses the pool.
SETTINGS = fitting.SamplerSettings(draws=150, tune=150, chains=2, compile="c")
GATE = fitting.Gate(ess_min=0, rhat_max=10)


@pytest.fixture(scope="module")
def sim():
    return simulate_trial(np.random.default_rng(5), hr=0.7)


@pytest.fixture
def pool_env(monkeypatch):
    """One worker, stealing off so chain 1 really runs in the worker; state restored after."""
    monkeypatch.setenv("KMBAYES_WORKERS", "1")
    monkeypatch.setattr(fitting, "_POOL_DISABLED", None)
    pool = fitting._chain_pool(2)
    assert pool is not None
    monkeypatch.setattr(pool, "steal", False)
    yield pool
    if fitting._POOL_DISABLED is not None:  # a test broke the pool on purpose
        fitting.shutdown_workers()


def _fit(sim, seed=7):
    return fitting.fit_one("weibull_ph", sim, priors.sceptical(), settings=SETTINGS, gate=GATE,
                           seed=seed, retry=False)


def _sequential(sim, monkeypatch, seed=7):
    with monkeypatch.context() as m:
        m.setenv("KMBAYES_WORKERS", "0")
        fit = _fit(sim, seed)
    assert fitting._LAST_CHAIN_HOSTS == ["main", "main"]
    return fit


def _assert_same(a, b):
    for group in ("posterior", "sample_stats", "log_likelihood"):
        ga, gb = getattr(a.idata, group), getattr(b.idata, group)
        assert list(ga.data_vars) == list(gb.data_vars)
        for v in ga.data_vars:
            np.testing.assert_array_equal(ga[v].values, gb[v].values, err_msg=f"{group}.{v}")
    keep = ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "elpd_loo")
    assert {k: a.diagnostics.get(k) for k in keep} == {k: b.diagnostics.get(k) for k in keep}
    strip = [{k: v for k, v in d.items() if k != "seconds"} for d in a.diagnostics["attempt_log"]]
    assert strip == [{k: v for k, v in d.items() if k != "seconds"}
                     for d in b.diagnostics["attempt_log"]]


def test_chain_seeds_are_distinct_and_stable():
    assert fitting.chain_seed(3, 0) == fitting.chain_seed(3, 0)
    assert len({fitting.chain_seed(3, c) for c in range(4)}) == 4


def test_pooled_and_sequential_give_identical_draws(sim, pool_env, monkeypatch):
    pooled = _fit(sim)
    assert fitting._LAST_CHAIN_HOSTS == ["main", "worker"]
    seq = _sequential(sim, monkeypatch)
    _assert_same(pooled, seq)
    post = pooled.idata.posterior
    assert list(post.chain.values) == [0, 1] and post.sizes["draw"] == SETTINGS.draws
    ss = pooled.idata.sample_stats
    assert {"diverging", "n_steps", "energy", "step_size"} <= set(ss.data_vars)
    assert not np.array_equal(post.log_hr.values[0], post.log_hr.values[1])  # chains differ


def test_trace_has_the_layout_of_a_nutpie_multichain_trace(sim):
    import nutpie

    args = ("weibull_ph", sim, priors.reference(), fitting.families.DEFAULT_CUTS,
            fitting.BaselinePrior())
    c = fitting.compiled_model(*args).with_values(fitting.model_values(*args))
    native = nutpie.sample(c, draws=50, tune=50, chains=2, cores=1, seed=1, progress_bar=False)
    ours = fitting._concat_chains([fitting._sample_chain(*args, SETTINGS, s) for s in (1, 2)])
    for group in ("posterior", "sample_stats"):
        gn, go = getattr(native, group), getattr(ours, group)
        assert list(gn.data_vars) == list(go.data_vars)
        assert {v: (gn[v].dims, gn[v].dtype) for v in gn.data_vars} == \
               {v: (go[v].dims, go[v].dtype) for v in go.data_vars}
        assert list(go.chain.values) == [0, 1]


class _ExitOnUnpickle:
    """Kills whichever process unpickles it (a worker dying mid-task)."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_worker_dying_mid_fit_runs_the_chain_here(sim, pool_env, monkeypatch):
    pool = pool_env
    jobs = pool.submit((_ExitOnUnpickle(),), {1: 123})
    with pytest.warns(RuntimeWarning, match="worker died"):
        out = pool.collect(jobs, lambda c: f"local {c}", 0.0)
    assert out == {1: ("local 1", "main")}
    assert fitting._POOL_DISABLED and fitting._POOL is None
    # The pool stays off for the process: later fits run both chains here.
    fit = _fit(sim)
    assert fitting._LAST_CHAIN_HOSTS == ["main", "main"]
    _assert_same(fit, _sequential(sim, monkeypatch))


def test_pool_that_cannot_start_falls_back(sim, monkeypatch):
    monkeypatch.setenv("KMBAYES_WORKERS", "1")
    monkeypatch.setattr(fitting, "_POOL_DISABLED", None)
    fitting.shutdown_workers()

    def boom(self, n):
        raise OSError("no processes today")

    monkeypatch.setattr(fitting._ChainPool, "grow", boom)
    with pytest.warns(RuntimeWarning, match="could not start chain workers"):
        fit = _fit(sim, seed=8)
    assert fitting._LAST_CHAIN_HOSTS == ["main", "main"]
    assert "no processes today" in fitting._POOL_DISABLED
    _assert_same(fit, _sequential(sim, monkeypatch, seed=8))


def test_shutdown_stops_the_workers(monkeypatch):
    monkeypatch.setenv("KMBAYES_WORKERS", "1")
    monkeypatch.setattr(fitting, "_POOL_DISABLED", None)
    pool = fitting._chain_pool(2)
    procs = [p for p, _ in pool._workers]
    assert procs and all(p.is_alive() for p in procs)
    fitting.shutdown_workers()
    assert fitting._POOL is None and not any(p.is_alive() for p in procs)


def test_workers_zero_means_no_pool(monkeypatch):
    monkeypatch.setenv("KMBAYES_WORKERS", "0")
    assert fitting._chain_pool(2) is None
    monkeypatch.setenv("KMBAYES_WORKERS", "1")
    assert fitting._chain_pool(1) is None  # one chain: nothing to hand out


def test_compiled_functions_cache_round_trip(sim, tmp_path, monkeypatch):
    path = tmp_path / "weibull.pkl"
    monkeypatch.setattr(fitting, "_functions_cache_file", lambda *a: path)
    monkeypatch.setenv("KMBAYES_WORKERS", "0")
    monkeypatch.setattr(fitting, "_COMPILED", {})
    fresh = _fit(sim, seed=9)  # compiles and writes the cache
    assert path.exists()
    monkeypatch.setattr(fitting, "_COMPILED", {})
    loaded = _fit(sim, seed=9)  # loads it
    _assert_same(fresh, loaded)
    path.write_bytes(b"not a pickle")  # a broken entry is dropped and recompiled
    monkeypatch.setattr(fitting, "_COMPILED", {})
    _assert_same(fresh, _fit(sim, seed=9))
