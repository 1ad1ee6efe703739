"""Benchmark: the 3 models x 4 priors grid, kmbayes' way vs the straightforward way.

kmbayes' way (:mod:`kmbayes.fitting`): each family compiled once with nutpie,
then every prior is a ``with_data`` swap; piecewise likelihoods on sufficient
statistics; the two chains of a fit run in two processes (this one and a
persistent spawned worker); per-patient log-likelihood, diagnostics and the
gate included. The timing starts cold in memory:
:func:`kmbayes.fitting.reset_compiled` drops compiled families and stops the
chain worker, so starting the worker and compiling (or loading) every family
in both processes is inside the measured time. Like PyTensor's compiled C
modules (which the naive way also reuses), kmbayes' compiled functions come
from an on-disk cache after the first run (``KMBAYES_COMPILE_CACHE=0`` to
compile them afresh; ``KMBAYES_WORKERS=0`` to sample both chains in this
process).

The straightforward way: build the PyMC model and call ``pm.sample()`` with
its default sampler for every fit (1000 draws, 1000 tune, 2 chains on 2
cores) -- sampling only, no LOO or diagnostics, so the comparison flatters it.

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


def main() -> None:
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    import pymc as pm

    from kmbayes import families, fitting

    spec = fitting.load_spec(ROOT / "configs" / "clocc.toml")
    data, label = _data()
    print(f"data: {label}, n = {data.n}, events = {int(data.event.sum())}", flush=True)
    gate = spec.gate

    # ---------------------------------------------------------- kmbayes' way
    fitting.reset_compiled()  # cold: compile and worker start-up are timed
    t0 = time.perf_counter()
    for model in spec.models:
        for pname, prior in spec.priors.items():
            t1 = time.perf_counter()
            fit = fitting.fit_one(
                model, data, prior, cuts=spec.cuts, baseline=spec.baseline,
                settings=spec.settings(False, model),
                gate=gate, seed=fitting.derive_seed(spec.seed, model, pname),
            )
            hr = float(np.median(np.exp(fit.idata.posterior[families.get(model).log_hr_var].values)))
            print(f"  grid  {model:<13} {pname:<13} {time.perf_counter() - t1:6.1f} s  "
                  f"HR {hr:.2f}  gate {'ok' if fit.gate_passed else 'FAILED'}", flush=True)
    grid = time.perf_counter() - t0

    # ---------------------------------------------------------- naive way
    t0 = time.perf_counter()
    for model in spec.models:
        for pname, prior in spec.priors.items():
            t1 = time.perf_counter()
            m = families.build(model, data, prior, cuts=spec.cuts, baseline=spec.baseline)
            with m:
                idata = pm.sample(
                    random_seed=fitting.derive_seed(spec.seed, model, pname), progressbar=False,
                    chains=2, cores=2,
                )
            hr = float(np.median(np.exp(idata.posterior[families.get(model).log_hr_var].values)))
            print(f"  naive {model:<13} {pname:<13} {time.perf_counter() - t1:6.1f} s  HR {hr:.2f}",
                  flush=True)
    naive = time.perf_counter() - t0
    print(f"grid {grid:.1f} s, naive {naive:.1f} s, speedup {naive / grid:.1f}")


if __name__ == "__main__":
    main()
