"""Nested 5-fold cross-validation of the reconstruction engines' constants, jointly.

``cv_reconstruction.py`` cross-validates one constant at a time. This script
cross-validates the whole procedure by which the engines' constants were
chosen, so the score it reports is honest for the constants as shipped:

1. every candidate value of every constant (``--knobs``) is scored on every
   dev figure, for every digitizing style given (``--styles``; one value of
   a constant serves all styles, so the choice sums their losses), with the
   other constants at their shipped values;
2. for each fold (``zlib.crc32(name) % 5``, as in ``cv_reconstruction.py``),
   each constant is chosen on the other four folds: the value with the
   smallest ``median + p90`` of |dlog HR| of replicate 1, summed over the
   styles (a tie keeps the shipped value);
3. that fold's combination of choices is run, and the fold's figures are
   scored with it. The pooled held-out scores are printed per style, with
   the combination chosen on all figures (what should ship).

Needs the validation material (``../shared/validation``); without it the
script says so and exits 0. Uses ``--jobs`` processes.

    PYTHONPATH=src python benchmarks/cv_engine_constants.py --mode curve \\
        --styles clicks,trace,corners \\
        --knobs 'curve._SIGMA=0.0025,0.01;curve._TIME_ERROR=0.0015,0.006'

References
----------
Varma S, Simon R. Bias in error estimation when using cross-validation for
model selection. BMC Bioinformatics. 2006;7:91 (why the selection is nested).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cv_reconstruction as cvr  # noqa: E402


def _set(config: dict[str, float]) -> None:
    for path, value in config.items():
        mod, name = path.rsplit(".", 1)
        m = importlib.import_module(f"kmbayes.reconstruct.{mod}")
        setattr(m, name, type(getattr(m, name))(value))


def _score(job) -> tuple[str, float]:
    """|dlog HR| of replicate 1 on one figure under one configuration."""
    config, name, toml, truth = job
    _set(config)
    from kmbayes.reconstruct import reconstruct
    from kmbayes.trial import load_trial

    trial = load_trial(toml)
    rec = reconstruct(trial, seed=20170, replicates=1)
    return name, float(abs(cvr.log_hrs(trial, rec.replicates)[0] - truth))


def _run(pool, config, figs, shipped) -> dict[str, float]:
    # Every constant is set on every job: pool workers are reused across
    # configurations and must not keep an earlier one's values.
    full = {**shipped, **config}
    return dict(pool.map(_score, [(full, n, t, tr) for n, t, tr in figs], chunksize=1))


def _loss(errs: dict[str, dict[str, float]], names) -> float:
    tot = 0.0
    for by_name in errs.values():
        e = np.array([by_name[n] for n in names])
        tot += float(np.median(e) + np.quantile(e, 0.9))
    return round(tot, 6)


def _line(e: np.ndarray) -> str:
    return f"median {np.median(e):.4f} p90 {np.quantile(e, 0.9):.4f} max {e.max():.4f}"


def _lines(by_name: dict[str, float]) -> str:
    """Scores of the figures, and separately of their variants when there are any."""
    orig = np.array([v for n, v in by_name.items() if "~" not in n])
    var = np.array([v for n, v in by_name.items() if "~" in n])
    return _line(orig) + (f" [variants: {_line(var)}]" if var.size else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=cvr.DEFAULT_SHARED)
    ap.add_argument("--mode", choices=["summary", "curve"], default="curve")
    ap.add_argument("--styles", default="clicks,trace,corners", help="digitizing styles (curve mode)")
    ap.add_argument("--knobs", required=True, help="'module.NAME=v1,v2;module.NAME2=...' (shipped value added)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--dump", type=Path, default=None, help="write every score (JSON) here")
    ap.add_argument("--variants", type=int, default=0,
                    help="also choose on, and score, N stretched variants of each figure (cv_reconstruction.variants)")
    a = ap.parse_args()
    if not (a.shared / "score.py").exists():
        print(f"skipped: validation material not found at {a.shared}")
        return 0
    styles = ["summary"] if a.mode == "summary" else a.styles.split(",")
    grid: dict[str, list[float]] = {}
    shipped: dict[str, float] = {}
    for spec in a.knobs.split(";"):
        path, values = spec.split("=")
        mod, name = path.strip().rsplit(".", 1)
        shipped[path.strip()] = float(getattr(importlib.import_module(f"kmbayes.reconstruct.{mod}"), name))
        grid[path.strip()] = sorted({shipped[path.strip()], *(float(v) for v in values.split(","))})
    figs = {st: cvr.prepare(a.shared, Path("/tmp") / f"kmbayes_cv_{'summary' if st == 'summary' else 'curve_' + st}",
                            a.mode, "corners" if st == "summary" else st, a.limit) for st in styles}
    if a.variants:
        for st in styles:
            figs[st] += cvr.variants(a.shared, Path("/tmp") / f"kmbayes_cv_variants_{st}", a.mode,
                                     "corners" if st == "summary" else st, a.variants, a.limit)
    names = [n for n, _, _ in figs[styles[0]]]
    t0 = time.time()
    scores: dict[str, dict[float, dict[str, dict[str, float]]]] = {}
    with Pool(a.jobs) as pool:
        base = {st: _run(pool, {}, figs[st], shipped) for st in styles}
        for knob, values in grid.items():
            scores[knob] = {}
            for v in values:
                scores[knob][v] = base if v == shipped[knob] else {st: _run(pool, {knob: v}, figs[st], shipped) for st in styles}
                print(f"one at a time {knob}={v:g}: " + "; ".join(
                    f"{st} {_lines(scores[knob][v][st])}" for st in styles), flush=True)

        def choose(train) -> dict[str, float]:
            return {k: min(vals, key=lambda v, k=k: (_loss(scores[k][v], train), v != shipped[k]))
                    for k, vals in grid.items()}

        held: dict[str, dict[str, float]] = {st: {} for st in styles}
        for k in range(a.folds):
            train = [n for n in names if cvr.fold_of(n, a.folds) != k]
            test = [n for n in names if cvr.fold_of(n, a.folds) == k]
            cfg = choose(train)
            print(f"fold {k}: chosen " + ", ".join(f"{p}={v:g}" for p, v in cfg.items()), flush=True)
            for st in styles:
                sub = [f for f in figs[st] if f[0] in set(test)]
                held[st].update(_run(pool, cfg, sub, shipped))
        final = choose(names)
        final_scores = {st: _run(pool, final, figs[st], shipped) for st in styles}
    print(f"seconds {time.time() - t0:.0f}")
    print("chosen on all figures (ship these): " + ", ".join(f"{p}={v:g}" for p, v in final.items()))
    for st in styles:
        print(f"{st}: nested cross-validated {_lines(held[st])}; "
              f"in-sample with the final choice {_lines(final_scores[st])}")
    if a.dump:
        a.dump.write_text(json.dumps({"scores": {k: {str(v): s for v, s in d.items()} for k, d in scores.items()},
                                      "final": final}, default=float))
    return 0 if all(math.isfinite(x) for st in styles for x in held[st].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
