"""SIGKILL ``kmbayes fit`` at random moments, rerun it, and compare with a clean run.

Usage::

    PYTHONPATH=src python benchmarks/kill_rerun.py --kills 5

A small grid (Weibull x {reference, sceptical}, fast profile, no pooling) is
fitted once cleanly. Then, for each kill, a fresh output root is fitted, the
process SIGKILLed after a random delay, ``fit`` rerun to completion, and
every posterior, manifest digest and table compared with the clean run; no
temp file or journal may remain. Prints one line per kill; exits 1 on any
difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = f"""extends = "{ROOT / 'configs' / 'clocc.toml'}"
[run]
pool_replicates = false
[models]
ids = ["weibull_ph"]
[priors]
ids = ["reference", "sceptical"]
"""


def fit(spec: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kmbayes", "fit", "--config", str(spec), "--output", str(out),
                             "--fast"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def digest(out: Path) -> dict[str, str]:
    """SHA-256 of every posterior and table; manifests without their (timestamped) provenance."""
    d = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file() or p.name == ".kmbayes.lock":
            continue
        rel = str(p.relative_to(out))
        if p.suffix == ".json":
            doc = json.loads(p.read_text())
            d[rel] = doc.get("posterior_sha256") or doc.get("cache_key") or "json"
        else:
            d[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return d


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="kmkill-") as td:
        td = Path(td)
        spec = td / "spec.toml"
        spec.write_text(SPEC)
        t = time.time()
        p = fit(spec, td / "clean")
        assert p.wait() == 0, p.stderr.read()
        clean_secs = time.time() - t
        clean = digest(td / "clean")
        for k in range(a.kills):
            out = td / f"k{k}"
            delay = rng.uniform(0.3, clean_secs)
            p = fit(spec, out)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
            leftovers_before = [str(q.relative_to(out)) for q in out.rglob("*")
                                if q.name.endswith(".tmp") or q.name.startswith((".tmp-", ".kmbayes-journal"))]
            r = fit(spec, out)
            rc = r.wait()
            now = digest(out)
            leftovers = [str(q.relative_to(out)) for q in out.rglob("*")
                         if q.name.endswith(".tmp") or q.name.startswith((".tmp-", ".kmbayes-journal"))]
            same = now == clean
            bad += (not same) or bool(leftovers) or rc != 0
            diff = sorted(set(now.items()) ^ set(clean.items()))[:3]
            print(f"kill {k}: after {delay:.1f} s; leftovers at kill: {len(leftovers_before)}; rerun exit {rc}; "
                  f"identical to clean: {same}; leftovers after: {leftovers}{'' if same else f'; diff {diff}'}")
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
