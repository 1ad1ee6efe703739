"""Benchmark: phase times of a whole ``kmbayes run`` (CLOCC), fresh and cached.

Three runs of the CLI into one temporary output directory, each in its own
process as a user runs it:

1. ``warm-up`` (not timed): fills the compile caches (numba, kmbayes'
   verified functions), as any earlier run on the machine would have.
2. ``fresh``: ``kmbayes run --force`` refits everything (every fit, every
   replicate under every prior, the tipping-point refits) with warm compile
   caches, then draws the figures and writes the report.
3. ``cached``: ``kmbayes run`` again: every fit is served from the verified
   fit store.

Prints each run's phase times (reconstruct, fit, figures, report) as the CLI
reports them and the wall time including start-up; the last line is
``fresh <s> s, cached <s> s, figures <s> s``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KMBAYES = [sys.executable, "-m", "kmbayes"]


def run(args: list[str], label: str) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    r = subprocess.run(KMBAYES + args, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 3):  # 3: a fit failed its gate, still a full run
        sys.exit(f"{label}: kmbayes exited {r.returncode}\n{r.stderr[-2000:]}")
    phases = {m.group(1): float(m.group(2)) for m in re.finditer(r"phase (\w+): ([\d.]+) s", r.stdout)}
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
    print(f"{label:<8} wall {wall:6.1f} s  ({parts})", flush=True)
    return wall, phases


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kmbayes-bench-") as out:
        _, ph_w = run(["run", "--output", out], "warm-up")
        fresh, ph = run(["run", "--output", out, "--force"], "fresh")
        cached, ph_c = run(["run", "--output", out], "cached")
    # --force refits, but the figures of identical fits are served verified from the cache:
    # their drawing time is the warm-up run's.
    print(f"fresh {fresh:.1f} s, cached {cached:.1f} s, figures {ph_w.get('figures', float('nan')):.1f} s")


if __name__ == "__main__":
    main()
