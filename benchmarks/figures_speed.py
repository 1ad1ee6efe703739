"""How long the report's figures take: per-figure draw and save times, and the total.

Loads the fitted grid of a run (default: the repository root; any output tree
of ``kmbayes run --output DIR`` works) and times :func:`kmbayes.figures.draw_all`
writing PNG + PDF of every figure into a temporary directory. Not a test: run
it by hand.

    python benchmarks/figures_speed.py [RUN_DIR] [--config configs/clocc.toml]
                                       [--single] [--workers N] [--dpi D] [--repeat K]

The draw and save columns (wall clock) and the cpu column (CPU seconds of
both) are measured inside the process that drew the figure; with two workers
they overlap, so the total (wall clock of ``draw_all``) is less than their
sum. On a shared machine the wall clock follows the load (printed with the
total); the CPU seconds much less. Loading the grid is timed separately and
not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default=str(ROOT), help="run output tree (default: repo root)")
    ap.add_argument("--config", default=None, help="run spec (default: the pipeline's default)")
    ap.add_argument("--single", action="store_true", help="also draw the single-column variants")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: draw_all's)")
    ap.add_argument("--dpi", type=int, default=None, help="PNG resolution (default: draw_all's, 300)")
    ap.add_argument("--repeat", type=int, default=1, help="time draw_all this many times; report each")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    from kmbayes import figures
    from kmbayes.data import read_ipd
    from kmbayes.grid import load_grid
    from kmbayes.pipeline import DEFAULT_CONFIG
    from kmbayes.runspec import load_spec
    from kmbayes.trial import load_trial

    spec = load_spec(args.config or DEFAULT_CONFIG)
    run = Path(args.run_dir)
    grid = load_grid(run, spec)
    trial = load_trial(spec.trial)
    stem = Path(spec.trial).stem
    ipd_path = run / "data" / "processed" / f"{stem}_ipd.csv"
    ipd = read_ipd(ipd_path, trial)
    print(f"load {time.perf_counter() - t0:.2f} s ({len(grid.fits)} fits from {run})")

    for rep in range(args.repeat):
        timings: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            paths = figures.draw_all(grid, ipd, trial, tmp, mcid_hr=spec.mcid_hr,
                                     width="single" if args.single else "double",
                                     workers=args.workers, timings=timings,
                                     **({"dpi": args.dpi} if args.dpi else {}))
            total = time.perf_counter() - t
        print(f"\nrun {rep + 1}: {len(paths)} files")
        print(f"  {'figure':28s} {'draw s':>7s} {'save s':>7s} {'cpu s':>7s}")
        for s in figures.FIGURE_STEMS:
            d = timings[s]
            print(f"  {s:28s} {d['draw']:7.2f} {d['save']:7.2f} {d['cpu']:7.2f}")
        sums = {k: sum(d[k] for d in timings.values()) for k in ("draw", "save", "cpu")}
        print(f"  {'sum':28s} {sums['draw']:7.2f} {sums['save']:7.2f} {sums['cpu']:7.2f}")
        print(f"  total (wall) {total:.2f} s; load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
