"""K-fold cross-validation of the reconstruction's tuned constants on the dev figures.

Every constant of :mod:`kmbayes.reconstruct` that was chosen by looking at the
validation figures is reported here by cross-validation, never in-sample:
figures are split into 5 folds by ``zlib.crc32(name) % 5`` (stable across
runs and Python versions); for each fold the constant is chosen on the other
four and the figures of the fold are scored with that choice. The pooled
held-out scores are printed last, in the format of ``score.py``.

Two kinds of knob (``--knob module.NAME``, a constant of
``kmbayes.reconstruct.<module>``):

* a replicate scale (``replicates.SUMMARY_TILT`` in summary mode, the
  default there; ``replicates.CURVE_READ`` in curve mode): on the training
  folds the grid value whose central 90% of K replicates holds the original
  log HR closest to 90% of the time is chosen (ties: median |z| closest to
  0.67). Replicate 1 does not depend on it.
* any other constant (``--K 1``): the grid value with the smallest
  ``median + p90`` of |dlog HR| of replicate 1 on the training folds.

Needs the validation material (``../shared/validation``: kmdata figures,
``kmsummary.py``, and lifelines for the original HRs); without it the script
says so and exits 0.

    PYTHONPATH=src python benchmarks/cv_reconstruction.py --mode summary
    PYTHONPATH=src python benchmarks/cv_reconstruction.py --mode curve --digitize clicks

References
----------
Hastie T, Tibshirani R, Friedman J. The Elements of Statistical Learning.
2nd ed. New York: Springer; 2009. Section 7.10 (cross-validation).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "validation"
KNOBS = {"summary": "replicates.SUMMARY_TILT", "curve": "replicates.CURVE_READ",
         "trace": "replicates.TRACE_READ"}


def fold_of(name: str, k: int = 5) -> int:
    """Stable fold of a figure (not Python's salted ``hash``).

    A variant (``name~xI``, see :func:`variants`) falls in its source
    figure's fold, so no figure is ever on both sides of a split.
    """
    return zlib.crc32(name.split("~")[0].encode()) % k


VARIANT_SPREAD = 1.4  # variants stretch time by a factor in [1 / 1.4, 1.4]


def variants(shared: Path, cache: Path, mode: str, digitize: str, n: int, limit: int | None = None):
    """``n`` variants of every figure: new trials the engines were not tuned on.

    The dev figures are few, and the engines' choices were made on them: on
    the scorer's fixed landmark times and digitizing noise. A variant keeps
    a figure's patients but stretches every time by a factor drawn
    log-uniformly in ``[1 / VARIANT_SPREAD, VARIANT_SPREAD]`` (so the round
    landmark times, the at-risk table times and the rounding fall elsewhere
    on the curve) and, in curve mode, digitizes it with another noise seed.
    Both are drawn from ``crc32`` of the variant's name (reproducible).
    """
    def stretched(name, unit, df):
        for i in range(n):
            vname = f"{name}~x{i}"
            seed = zlib.crc32(vname.encode())
            span = math.log(VARIANT_SPREAD)
            factor = math.exp(np.random.default_rng(seed).uniform(-span, span))
            yield vname, unit, df.assign(time=df["time"] * factor), seed % 10_000

    return _write_cached(shared, cache, mode, digitize, limit, stretched)


def prepare(shared: Path, cache: Path, mode: str, digitize: str, limit: int | None):
    """Write every figure's trial file once; cache the original log HRs."""
    return _write_cached(shared, cache, mode, digitize, limit, lambda name, unit, df: [(name, unit, df, 0)])


def _write_cached(shared, cache, mode, digitize, limit, trials):
    """Trial files (written once) and original log HRs of ``trials(name, unit, df)``."""
    sys.path.insert(0, str(shared))
    import score  # noqa: PLC0415  (validation material, imported only here)
    from kmsummary import cox_hr, write_trial  # noqa: PLC0415

    cache.mkdir(parents=True, exist_ok=True)
    truth_file = cache / "truth.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    out = []
    for fig, unit, fig_df in score.figures(shared / "kmdata", "all", limit):
        for name, unit_, df, seed in trials(fig, unit, fig_df):
            d = cache / name.replace("(", "_").replace(")", "_").replace("~", "_")
            toml = d / "trial.toml"
            if not toml.exists() or name not in truth:
                toml, ref = write_trial(df, name, unit_, d, mode, seed=seed, digitize=digitize)
                truth[name] = math.log(cox_hr(df, ref)[0])
            out.append((name, toml, truth[name]))
    truth_file.write_text(json.dumps(truth, indent=0, sort_keys=True))
    return out


def log_hrs(trial, reps) -> np.ndarray:
    from kmbayes.km import cox_two_group

    out = []
    for rep in reps:
        t = np.concatenate([np.asarray(rep[a][0], float) for a in trial.arm_ids])
        e = np.concatenate([np.asarray(rep[a][1], int) for a in trial.arm_ids])
        g = np.concatenate([np.full(len(rep[a][0]), int(a == trial.treatment_arm)) for a in trial.arm_ids])
        keep = t > 0  # as the scorer does (lifelines rejects time 0)
        out.append(cox_two_group(t[keep], e[keep], g[keep]).beta)
    return np.asarray(out)


def score_one(lh: np.ndarray, truth: float) -> dict:
    """The scorer's replicate statistics for one figure."""
    q = np.quantile(lh, [0.05, 0.10, 0.90, 0.95])
    return dict(err=abs(lh[0] - truth), in80=bool(q[1] <= truth <= q[2]), in90=bool(q[0] <= truth <= q[3]),
                z=abs(truth - lh.mean()) / max(lh.std(ddof=1), 1e-12), width90=q[3] - q[0])


def summarise(rows: list[dict]) -> str:
    e = np.array([r["err"] for r in rows])
    return (f"figures {len(rows)}, |dlogHR| median {np.median(e):.4f} p90 {np.quantile(e, .9):.4f} "
            f"max {e.max():.4f}, coverage80 {np.mean([r['in80'] for r in rows]):.3f} "
            f"coverage90 {np.mean([r['in90'] for r in rows]):.3f}, width90 median "
            f"{np.median([r['width90'] for r in rows]):.4f}, |z| median {np.median([r['z'] for r in rows]):.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    ap.add_argument("--mode", choices=["summary", "curve"], default="summary")
    ap.add_argument("--digitize", choices=["corners", "clicks", "trace"], default="clicks")
    ap.add_argument("--knob", default=None, help="module.NAME of the constant (default: the replicate scale)")
    ap.add_argument("--grid", default=None, help="comma-separated knob values (default: a built-in grid)")
    ap.add_argument("--K", type=int, default=20, help="replicates per figure (default 20)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--cache", type=Path, default=None, help="where trial files are written (default /tmp)")
    ap.add_argument("--dump", type=Path, default=None, help="write per-figure results (JSON) here")
    ap.add_argument("--variants", type=int, default=0,
                    help="also choose on, and score, N stretched variants of each figure (see variants)")
    a = ap.parse_args()
    if not (a.shared / "score.py").exists():
        print(f"skipped: validation material not found at {a.shared}")
        return 0
    import importlib

    from kmbayes.reconstruct import reconstruct
    from kmbayes.trial import load_trial

    knob_path = a.knob or KNOBS["trace" if a.mode == "curve" and a.digitize == "trace" else a.mode]
    mod_name, knob = knob_path.rsplit(".", 1)
    R = importlib.import_module(f"kmbayes.reconstruct.{mod_name}")
    coverage_knob = knob_path in KNOBS.values()
    if not coverage_knob and a.grid is None:
        ap.error("--grid is needed for --knob")
    grid = [float(x) for x in a.grid.split(",")] if a.grid else (
        [0.0, 1.0, 2.0, 3.0, 4.0, 6.0] if a.mode == "summary" else [0.0, 1.0, 2.0, 3.0, 4.0])
    style = a.mode if a.mode == "summary" else f"curve_{a.digitize}"
    cache = a.cache or Path("/tmp") / f"kmbayes_cv_{style}"
    figs = prepare(a.shared, cache, a.mode, a.digitize, a.limit)
    if a.variants:
        figs += variants(a.shared, Path(f"{cache}_variants"), a.mode, a.digitize, a.variants, a.limit)
    default = getattr(R, knob)
    res: dict[float, dict[str, dict]] = {}
    t0 = time.time()
    for v in grid:
        setattr(R, knob, v)
        res[v] = {}
        for name, toml, truth in figs:
            trial = load_trial(toml)
            rec = reconstruct(trial, seed=20170, replicates=a.K)
            lh = log_hrs(trial, rec.replicates)
            res[v][name] = score_one(lh, truth) if len(lh) > 1 else dict(
                err=abs(lh[0] - truth), in80=False, in90=False, z=math.nan, width90=0.0)
        print(f"in-sample (all figures, NOT cross-validated) {knob}={v:g}: {summarise(list(res[v].values()))}",
              flush=True)
    setattr(R, knob, default)
    held: list[dict] = []
    names = [f[0] for f in figs]
    for k in range(a.folds):
        train = [n for n in names if fold_of(n, a.folds) != k]
        test = [n for n in names if fold_of(n, a.folds) == k]

        def loss(v, train=train):
            if not coverage_knob:
                e = np.array([res[v][n]["err"] for n in train])
                return (float(np.median(e) + np.quantile(e, 0.9)), 0.0)
            c90 = np.mean([res[v][n]["in90"] for n in train])
            z = np.median([res[v][n]["z"] for n in train])
            return (round(abs(c90 - 0.90), 3), abs(z - 0.67))

        best = min(grid, key=loss)
        print(f"fold {k}: {len(train)} train, {len(test)} test; chosen {knob}={best:g}")
        held += [dict(res[best][n], choice=best, name=n) for n in test]
    if a.dump:
        a.dump.write_text(json.dumps({str(v): res[v] for v in grid}, indent=0, sort_keys=True, default=float))
    print(f"seconds {time.time() - t0:.0f}")
    print(f"cross-validated ({a.folds}-fold, {style}, K={a.K}): {summarise(held)}")
    if a.variants:
        print(f"  of which the figures: {summarise([r for r in held if '~' not in r['name']])}")
        print(f"  of which the variants: {summarise([r for r in held if '~' in r['name']])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
