"""Fuzz campaign of issue 13: mutated trial files, run specs and CLI arguments.

Usage::

    PYTHONPATH=src python benchmarks/fuzz_campaign.py --trials 2500 --specs 240 --sample-fits 40

Runs the generators of ``tests/test_fuzz_inputs.py``:

* every trial mutant through ``kmbayes reconstruct`` in this process (a
  traceback is any exception escaping ``cli.main``; a hang is 60 s);
* every run-spec mutant through ``kmbayes fit`` up to sampling, in this
  process; then ``--sample-fits`` of the specs that pass validation are
  fitted for real (``fit --fast`` on one model x prior) in a subprocess, so
  a signal (segfault, abort) or a hang (300 s) is seen.

Prints one line per failure and a summary; exits 1 if anything broke the
promise (traceback, signal, hang, output outside the case directory, or a
refusal that is not one line under 300 characters).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import test_fuzz_inputs as fz  # noqa: E402


def campaign(kind: str, n: int, start: int, counts: collections.Counter, failures: list, valid: list) -> None:
    check = fz.check_trial_case if kind == "trial" else fz.check_spec_case
    for seed in range(start, start + n):
        with tempfile.TemporaryDirectory(prefix=f"kmfz-{kind}-") as td:
            try:
                rc = check(seed, Path(td))
                counts[f"{kind} exit {rc}"] += 1
                if kind == "spec" and rc == 2:
                    # stopped at --data: the spec itself was accepted
                    spec_text = (Path(td) / "spec.toml").read_text()
                    if "--data" in _last_err:
                        valid.append((seed, spec_text))
            except fz.Hang:
                counts[f"{kind} HANG"] += 1
                failures.append(f"{kind} seed {seed}: hang")
            except AssertionError as ex:
                counts[f"{kind} BROKEN PROMISE"] += 1
                failures.append(f"{kind} seed {seed}: {str(ex)[:300]!r}")
            except BaseException as ex:  # noqa: BLE001 - a traceback is what we count
                counts[f"{kind} TRACEBACK"] += 1
                tb = traceback.extract_tb(ex.__traceback__)[-1]
                failures.append(f"{kind} seed {seed}: {type(ex).__name__}: {str(ex)[:150]!r} at {tb.filename}:{tb.lineno}")


_last_err = ""
_orig_run = fz.run_inprocess


def _recording_run(argv, timeout=60, **kw):
    global _last_err
    rc, out, err = _orig_run(argv, timeout, **kw)
    _last_err = err
    return rc, out, err


fz.run_inprocess = _recording_run


def sample_fits(valid: list, k: int, counts: collections.Counter, failures: list) -> None:
    import tomllib

    for seed, text in valid[:k]:
        with tempfile.TemporaryDirectory(prefix="kmfz-fit-") as td:
            spec = Path(td) / "spec.toml"
            spec.write_text(text)
            doc = tomllib.loads(text)
            models = doc.get("models", {}).get("ids") or ["weibull_ph"]
            pri = doc.get("priors", {}).get("ids") or ["reference"]
            cmd = [sys.executable, "-m", "kmbayes", "fit", "--config", str(spec), "--output", str(Path(td) / "o"),
                   "--fast", "--models", str(models[0]), "--priors", str(pri[0])]
            t = time.time()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            except subprocess.TimeoutExpired:
                counts["fit HANG"] += 1
                failures.append(f"fit seed {seed}: hang")
                continue
            secs = time.time() - t
            if r.returncode < 0 or r.returncode > 128:
                counts["fit SIGNAL"] += 1
                failures.append(f"fit seed {seed}: signal/exit {r.returncode} {r.stderr[-200:]!r}")
            elif "Traceback" in r.stderr:
                counts["fit TRACEBACK"] += 1
                failures.append(f"fit seed {seed}: {r.stderr.strip().splitlines()[-1][:200]!r}")
            else:
                lines = r.stderr.strip().splitlines()
                # A refusal (2) is exactly one line; a fit that ran and failed its gate (3) may
                # have logged sampler progress first, and ends with one short line.
                bad2 = r.returncode == 2 and (len(lines) != 1 or len(lines[0]) >= 300)
                bad3 = r.returncode == 3 and not (lines and lines[-1].startswith("kmbayes: fit failed")
                                                  and len(lines[-1]) < 300)
                if bad2 or bad3:
                    counts["fit BROKEN PROMISE"] += 1
                    failures.append(f"fit seed {seed}: message {r.stderr[:300]!r}")
                counts[f"fit exit {r.returncode}"] += 1
            counts["fit seconds (max)"] = max(counts["fit seconds (max)"], int(secs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2500)
    ap.add_argument("--specs", type=int, default=240)
    ap.add_argument("--cli", type=int, default=300, help="CLI argument cases (hypothesis)")
    ap.add_argument("--sample-fits", type=int, default=20)
    ap.add_argument("--start", type=int, default=0, help="first seed")
    a = ap.parse_args()
    counts: collections.Counter = collections.Counter()
    failures: list[str] = []
    valid: list = []
    t0 = time.time()
    campaign("trial", a.trials, a.start, counts, failures, valid)
    campaign("spec", a.specs, a.start, counts, failures, valid)
    if a.cli:
        import random

        for seed in range(a.start, a.start + a.cli):
            rng = random.Random(seed)
            cmd = rng.choice(["reconstruct", "fit", "report", "run"])
            opts = [(rng.choice(fz.CLI_OPTS), rng.choice(fz.ARG_VALUES)) for _ in range(rng.randint(0, 3))]
            with tempfile.TemporaryDirectory(prefix="kmfz-cli-") as td:
                try:
                    counts[f"cli exit {fz.check_cli_case(cmd, opts, Path(td))}"] += 1
                except fz.Hang:
                    counts["cli HANG"] += 1
                    failures.append(f"cli {cmd} {opts!r}: hang")
                except AssertionError as ex:
                    counts["cli BROKEN PROMISE"] += 1
                    failures.append(f"cli {cmd} {opts!r}: {str(ex)[:300]!r}")
                except BaseException as ex:  # noqa: BLE001
                    counts["cli TRACEBACK"] += 1
                    failures.append(f"cli {cmd} {opts!r}: {type(ex).__name__}: {str(ex)[:150]!r}")
    if a.sample_fits:
        sample_fits(valid, a.sample_fits, counts, failures)
    for f in failures:
        print("FAIL", f)
    print(f"valid specs: {len(valid)}; elapsed {time.time() - t0:.0f} s")
    for k in sorted(counts):
        print(f"{k:>28}: {counts[k]}")
    bad = any(w in k for k in counts for w in ("HANG", "TRACEBACK", "SIGNAL", "BROKEN", "FAILED"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
