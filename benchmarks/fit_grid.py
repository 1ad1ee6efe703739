"""Benchmark: the 3 models x 4 priors grid, kmbayes' way vs the straightforward way.

kmbayes' way (:mod:`kmbayes.fitting`): each family compiled once for nutpie's
numba backend, with kmbayes' cached C callbacks (:mod:`kmbayes.sampling.numba_cached`),
so the two chains run as threads in parallel without the GIL; every prior is a
data swap into the same compiled object; piecewise likelihoods on sufficient
statistics; per-patient log-likelihood, diagnostics (R-hat, ESS, E-BFMI,
PSIS-LOO) and the gate included. The timing starts cold in memory:
:func:`kmbayes.sampling.reset` drops compiled families, so loading
every family (and numba's start-up) is inside the measured time.

The straightforward way: build the PyMC model and call ``pm.sample()`` with
its default sampler for every fit (1000 draws, 1000 tune, 2 chains on 2
cores) -- sampling only, no LOO or diagnostics, so the comparison flatters it.

Same number of draws both ways: kmbayes' way draws 2 x 1000 too, except
piecewise_tv, which draws 2 x 2000 because its tail ESS needs them to pass the
gate (ESS >= 400) without a retry; tuning is the run's (300: nutpie's
adaptation needs fewer). The CLOCC run itself draws more, for a smaller Monte
Carlo error (``configs/clocc.toml``); a line before the last one times the
grid at those settings.

Both ways reuse compiled code from disk: PyTensor's caches (the naive way)
and numba's cache plus kmbayes' verified pickled functions (kmbayes' way). So that the
first run on a fresh machine measures the same thing as later runs, a child
process first fits each family once both ways with a few draws (printed as
``warm-up``, not timed); ``--no-warmup`` skips it.

Data: ``data/processed/clocc_os_ipd.csv`` if it exists, else a simulated
CLOCC-like trial (60 vs 59 patients, ~116-month follow-up).

The last line printed is exactly ``grid <s> s, naive <s> s, speedup <x>``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

warnings.simplefilter("ignore")


def _data():
    from kmbayes.data import load_for_trial, simulate_trial
    from kmbayes.trial import load_trial

    ipd = ROOT / "data" / "processed" / "clocc_os_ipd.csv"
    if ipd.exists():
        trial = load_trial(ROOT / "data" / "raw" / "clocc_os.toml")
        return load_for_trial(ipd, trial)[0], "CLOCC reconstruction"
    d = simulate_trial(
        np.random.default_rng(2017), cuts=[0, 36, np.inf], rates=[0.018, 0.03], hrs=[0.95, 0.45]
    )
    return d, "simulated CLOCC-like trial"


def warm_up() -> None:
    """Fill the on-disk compile caches of both ways (run in a child process)."""
    import dataclasses
    import logging

    import pymc as pm

    logging.getLogger("pymc").setLevel(logging.ERROR)
    from kmbayes import families, fitting, runspec
    from kmbayes.diagnostics import Gate

    spec = runspec.load_spec(ROOT / "configs" / "clocc.toml")
    data, _ = _data()
    prior = next(iter(spec.priors.values()))
    for model in spec.models:
        s = dataclasses.replace(spec.settings(False, model), draws=20, tune=20)
        fitting.fit_one(model, data, prior, cuts=spec.cuts, baseline=spec.baseline, settings=s,
                        gate=Gate(ess_min=0, rhat_max=100), retry=False, loo=False)
        with families.build(model, data, prior, cuts=spec.cuts, baseline=spec.baseline):
            pm.sample(draws=20, tune=20, chains=2, cores=2, progressbar=False,
                      compute_convergence_checks=False)


def main() -> None:
    import dataclasses
    import logging
    import subprocess

    if "--warm-up" in sys.argv:
        warm_up()
        return
    if "--no-warmup" not in sys.argv:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--warm-up"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"warm-up (child process, not timed): {time.perf_counter() - t0:.1f} s", flush=True)

    import pymc as pm

    # After the import: PyMC sets its logger's level when it is imported.
    logging.getLogger("pymc").setLevel(logging.ERROR)
    from kmbayes import families, fitting, runspec
    from kmbayes.provenance import derive_seed

    spec = runspec.load_spec(ROOT / "configs" / "clocc.toml")
    data, label = _data()
    print(f"data: {label}, n = {data.n}, events = {int(data.event.sum())}", flush=True)
    gate = spec.gate

    def run_grid(label, draws_of):
        t0 = time.perf_counter()
        for model in spec.models:
            for pname, prior in spec.priors.items():
                t1 = time.perf_counter()
                settings = dataclasses.replace(spec.settings(False, model), draws=draws_of(model))
                fit = fitting.fit_one(
                    model, data, prior, cuts=spec.cuts, baseline=spec.baseline, settings=settings,
                    gate=gate, seed=derive_seed(spec.seed, model, pname),
                )
                hr = float(np.median(np.exp(
                    fit.idata["posterior"][families.get(model).log_hr_var].values)))
                print(f"  {label} {model:<13} {pname:<13} {time.perf_counter() - t1:6.1f} s  "
                      f"HR {hr:.2f}  gate {'ok' if fit.gate_passed else 'FAILED'}  "
                      f"({fit.diagnostics['attempt_log'][-1].get('rung')}, "
                      f"2 x {settings.draws} draws)", flush=True)
        return time.perf_counter() - t0

    # ---------------------------------------------------------- kmbayes' way
    from kmbayes import sampling

    sampling.reset()  # cold in memory: loading the compiled families is timed
    grid = run_grid("grid ", lambda m: 2000 if m == "piecewise_tv" else 1000)
    run_draws = run_grid("run  ", lambda m: spec.settings(False, m).draws)

    # ---------------------------------------------------------- naive way
    t0 = time.perf_counter()
    for model in spec.models:
        for pname, prior in spec.priors.items():
            t1 = time.perf_counter()
            m = families.build(model, data, prior, cuts=spec.cuts, baseline=spec.baseline)
            with m:
                idata = pm.sample(
                    random_seed=derive_seed(spec.seed, model, pname), progressbar=False,
                    chains=2, cores=2,
                )
            hr = float(np.median(np.exp(idata["posterior"][families.get(model).log_hr_var].values)))
            print(f"  naive {model:<13} {pname:<13} {time.perf_counter() - t1:6.1f} s  HR {hr:.2f}",
                  flush=True)
    naive = time.perf_counter() - t0
    print(f"grid at the run's draws (configs/clocc.toml): {run_draws:.1f} s")
    print(f"grid {grid:.1f} s, naive {naive:.1f} s, speedup {naive / grid:.1f}")


if __name__ == "__main__":
    main()
