"""How fast is ``kmbayes reconstruct`` on CLOCC? Budgets: 1 s and 10 s wall.

Runs, side by side in one process tree and on the same machine load:

* the CLI, 1 replicate (budget 1 s wall, interpreter start included);
* the CLI, ``--replicates 100`` (budget 10 s wall);
* ``python -c "import numpy"`` (the floor any numpy CLI pays);
* in-process: the summary engine vs a naive reconstruction (log-linear
  interpolation of S between the published points, uniform censoring), the
  "straightforward" approach the engine replaces.

Each is repeated and the median wall time is printed with its ratio to the
budget. Usage::

    .venv/bin/python benchmarks/reconstruct_speed.py [--repeat 5]

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRIAL = ROOT / "data" / "raw" / "clocc_os.toml"
KMBAYES = Path(sys.executable).with_name("kmbayes")


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def naive(trial, n_grid: int = 400):
    """Log-linear interpolation of S through (0, 1), landmarks and median."""
    out = {}
    for arm_id, arm in trial.arms.items():
        pts = [(0.0, 1.0)] + [(lm.time, lm.estimate) for lm in arm.survival]
        if arm.median is not None:
            pts.append((arm.median.estimate, 0.5))
        pts.sort()
        t, s = np.array(pts).T
        tmax = (trial.followup_median or t[-1]) * 1.5
        g = np.linspace(0, tmax, n_grid)
        slope = np.log(max(s[-1], 1e-3)) / max(t[-1], 1e-9)
        logs = np.where(g <= t[-1], np.interp(g, t, np.log(np.maximum(s, 1e-3))), slope * g)
        cdf = 1 - np.exp(logs)
        te = np.interp((np.arange(arm.events) + 0.5) / arm.events * cdf[-1], cdf, g)
        tc = np.linspace(0.3 * tmax, tmax, arm.n - arm.events)
        out[arm_id] = (np.concatenate((te, tc)), np.r_[np.ones(arm.events), np.zeros(arm.n - arm.events)])
    return out


def in_process(repeat: int) -> tuple[float, float]:
    from kmbayes.reconstruct.summary import reconstruct_summary
    from kmbayes.trial import load_trial

    trial = load_trial(TRIAL)
    eng, nai = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        reconstruct_summary(trial, seed=20170, replicates=1)
        eng.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive(trial)
        nai.append(time.perf_counter() - t0)
    return statistics.median(eng), statistics.median(nai)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "x.csv")
        floor = wall([sys.executable, "-c", "import numpy"], a.repeat)
        one = wall([str(KMBAYES), "reconstruct", str(TRIAL), "--out", out, "-q"], a.repeat)
        hundred = wall(
            [str(KMBAYES), "reconstruct", str(TRIAL), "--out", out, "-q", "--replicates", "100"],
            max(1, a.repeat // 2),
        )
    eng, nai = in_process(a.repeat)
    print(f"{'what':44s} {'wall s':>8s} {'budget':>7s} {'ratio':>6s}")
    print(f"{'python -c import numpy (floor)':44s} {floor:8.3f} {'':>7s} {'':>6s}")
    print(f"{'kmbayes reconstruct clocc (1 replicate)':44s} {one:8.3f} {1.0:7.1f} {one / 1.0:6.2f}")
    print(f"{'kmbayes reconstruct clocc --replicates 100':44s} {hundred:8.3f} {10.0:7.1f} {hundred / 10.0:6.2f}")
    print(f"{'in-process: summary engine (1 replicate)':44s} {eng:8.3f}")
    print(f"{'in-process: naive log-linear interpolation':44s} {nai:8.4f}   engine/naive = {eng / nai:.0f}x")
    print(f"per extra replicate (CLI): {(hundred - one) / 99 * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
