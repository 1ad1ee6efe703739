"""How fast is ``kmbayes reconstruct``? Budgets: 1 s and 10 s wall.

Runs, side by side in one process tree and on the same machine load:

* the CLI on CLOCC (summary engine), 1 replicate (budget 1 s wall,
  interpreter start included) and ``--replicates 100`` (budget 10 s wall);
* the same on a curve-mode trial (a vendored kmdata figure, both corners of
  every step clicked with small error, at-risk table, landmarks, follow-up),
  and on a simulated curve-mode trial as large as the largest dev figure
  (2 x 1136 patients: the engine's cost grows with the steps of the curve),
  and on the vendored figure digitized as a dense automatic trace (one
  point per pixel column);
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
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRIAL = ROOT / "data" / "raw" / "clocc_os.toml"
KMBAYES = [sys.executable, "-m", "kmbayes"]  # honours PYTHONPATH (a worktree's src)
FIGURE = ROOT / "tests" / "data" / "kmdata" / "OMEGA_3B.csv"


def large_ipd(n_per_arm: int = 1136, seed: int = 1) -> dict[str, np.ndarray]:
    """A simulated two-arm trial as large as the largest dev figure (MAGRIT, 2 x 1136).

    Weibull deaths (shape 1.2, medians 12 and 15 months), uniform accrual
    over 24 months and analysis at 60 months.
    """
    rng = np.random.default_rng(seed)
    t, e, arm = [], [], []
    for a, med in (("control", 12.0), ("treated", 15.0)):
        scale = med / math.log(2.0) ** (1 / 1.2)
        death = scale * rng.weibull(1.2, n_per_arm)
        cens = 60.0 - rng.uniform(0.0, 24.0, n_per_arm)
        t.append(np.minimum(death, cens))
        e.append((death <= cens).astype(int))
        arm += [a] * n_per_arm
    return {"time": np.round(np.concatenate(t), 3), "event": np.concatenate(e), "arm": np.array(arm)}


def curve_trial(d: Path, rows=None, name: str = "curve_trial", trace: bool = False) -> Path:
    """Write a curve-mode trial into ``d`` (corners read with small error).

    ``rows`` (``time``, ``event``, ``arm``) defaults to the vendored ``FIGURE``.
    ``trace``: digitize as an automatic extractor does instead, one point per
    pixel column of a 1000 x 600 plot at the curve's pixel row, jittered by
    up to a row (the scorer's ``--digitize trace``).
    """
    from kmbayes.km import km, reverse_km_median

    if rows is None:
        rows = np.genfromtxt(FIGURE, delimiter=",", names=True, dtype=None, encoding="utf-8")
    rng = np.random.default_rng(0)
    arms = sorted({str(a) for a in rows["arm"]})
    ids = ["arm_" + "".join(c if c.isalnum() else "_" for c in a) for a in arms]
    t_all, e_all = rows["time"].astype(float), rows["event"].astype(int)
    tmax = float(t_all.max())
    lines = ["[trial]", 'name = "speed"', 'time_unit = "months"', f'reference_arm = "{ids[0]}"', "",
             "[followup]", f"median = {round(reverse_km_median(t_all, e_all), 1)}", ""]
    for a, i in zip(arms, ids):
        m = rows["arm"].astype(str) == a
        t, e = t_all[m], e_all[m]
        f = km(t, e)
        pts_t, pts_s, s = [0.0], [1.0], 1.0
        for x, y in zip(f.time[f.d > 0], f.surv[f.d > 0]):
            pts_t += [x, x]
            pts_s += [s, y]
            s = y
        pts_t.append(float(t.max()))
        pts_s.append(s)
        ct = np.clip(np.array(pts_t) + rng.normal(0, 0.004 * tmax, len(pts_t)), 0, None)
        cs = np.clip(np.array(pts_s) + rng.normal(0, 0.003, len(pts_s)), 0, 1)
        ct[0], cs[0] = 0.0, 1.0
        if trace:
            cols = (np.arange(1000) + 0.5) / 1000 * float(t.max())
            rows_px = np.round(f.survival(cols) * 599 + rng.uniform(-1, 1, cols.size))
            ct, cs = np.r_[0.0, cols], np.r_[1.0, np.clip(rows_px / 599, 0, 1)]
        (d / f"{name}_{i}.csv").write_text("time,survival\n" + "".join(f"{x:.4f},{y:.4f}\n" for x, y in zip(ct, cs)))
        ar = ", ".join(f"{{ time = {x:g}, n = {int((t >= x).sum())} }}" for x in np.arange(0, 0.9 * tmax, tmax / 8))
        lm = f.ci_at(0.5 * tmax)
        lines += [f"[arms.{i}]", f"n = {len(t)}", f"events = {int(e.sum())}", f"at_risk = [ {ar} ]",
                  f"survival = [ {{ time = {0.5 * tmax:g}, estimate = {lm[0]:.3f}, lower = {lm[1]:.3f}, "
                  f"upper = {lm[2]:.3f} }} ]", f'curve = "{name}_{i}.csv"', ""]
    p = d / f"{name}.toml"
    p.write_text("\n".join(lines))
    return p


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
        one = wall([*KMBAYES, "reconstruct", str(TRIAL), "--out", out, "-q"], a.repeat)
        hundred = wall(
            [*KMBAYES, "reconstruct", str(TRIAL), "--out", out, "-q", "--replicates", "100"],
            max(1, a.repeat // 2),
        )
        ctrial = str(curve_trial(Path(d)))
        c_one = wall([*KMBAYES, "reconstruct", ctrial, "--out", out, "-q"], a.repeat)
        c_hundred = wall(
            [*KMBAYES, "reconstruct", ctrial, "--out", out, "-q", "--replicates", "100"],
            max(1, a.repeat // 2),
        )
        ttrial = str(curve_trial(Path(d), None, "trace_trial", trace=True))
        t_one = wall([*KMBAYES, "reconstruct", ttrial, "--out", out, "-q"], a.repeat)
        t_hundred = wall(
            [*KMBAYES, "reconstruct", ttrial, "--out", out, "-q", "--replicates", "100"],
            max(1, a.repeat // 2),
        )
        ltrial = str(curve_trial(Path(d), large_ipd(), "large_trial"))
        l_one = wall([*KMBAYES, "reconstruct", ltrial, "--out", out, "-q"], a.repeat)
        l_hundred = wall(
            [*KMBAYES, "reconstruct", ltrial, "--out", out, "-q", "--replicates", "100"],
            max(1, a.repeat // 2),
        )
    eng, nai = in_process(a.repeat)
    print(f"{'what':44s} {'wall s':>8s} {'budget':>7s} {'ratio':>6s}")
    print(f"{'python -c import numpy (floor)':44s} {floor:8.3f} {'':>7s} {'':>6s}")
    print(f"{'kmbayes reconstruct clocc (1 replicate)':44s} {one:8.3f} {1.0:7.1f} {one / 1.0:6.2f}")
    print(f"{'kmbayes reconstruct clocc --replicates 100':44s} {hundred:8.3f} {10.0:7.1f} {hundred / 10.0:6.2f}")
    print(f"{'kmbayes reconstruct curve trial (1 replicate)':44s} {c_one:8.3f} {1.0:7.1f} {c_one / 1.0:6.2f}")
    print(f"{'kmbayes reconstruct curve --replicates 100':44s} {c_hundred:8.3f} {10.0:7.1f} {c_hundred / 10.0:6.2f}")
    print(f"{'kmbayes reconstruct dense trace (1 replicate)':44s} {t_one:8.3f} {1.0:7.1f} {t_one / 1.0:6.2f}")
    print(f"{'kmbayes reconstruct trace --replicates 100':44s} {t_hundred:8.3f} {10.0:7.1f} {t_hundred / 10.0:6.2f}")
    print(f"{'kmbayes reconstruct large curve (2 x 1136)':44s} {l_one:8.3f} {1.0:7.1f} {l_one / 1.0:6.2f}")
    print(f"{'kmbayes reconstruct large --replicates 100':44s} {l_hundred:8.3f} {10.0:7.1f} {l_hundred / 10.0:6.2f}")
    print(f"{'in-process: summary engine (1 replicate)':44s} {eng:8.3f}")
    print(f"{'in-process: naive log-linear interpolation':44s} {nai:8.4f}   engine/naive = {eng / nai:.0f}x")
    print(f"per extra replicate (CLI): {(hundred - one) / 99 * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
