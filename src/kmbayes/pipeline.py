"""The whole reanalysis: reconstruct -> fit -> diagnostics -> figures -> report.

``kmbayes run`` (what ``make run`` calls), ``kmbayes fit`` and ``kmbayes report``
are thin wrappers over the functions here, so a notebook can run any step.
Paths in a run spec are resolved against the repository root, so the commands
work from any working directory; ``--output DIR`` moves every output under DIR.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import FitFailedError, InputError
from .io import check_output_path, output_lock, write_text_atomic
from .limits import LIMITS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "clocc.toml"
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


def fast_profile() -> bool:
    """True when ``KMBAYES_FAST`` is set: notebooks and smoke tests use few draws."""
    return os.environ.get("KMBAYES_FAST", "") not in ("", "0")


def _say(msg: str) -> None:
    print(msg, flush=True)


def resolve_config(path: Path | None) -> Path:
    """The run spec to use: ``path`` (relative to the cwd) or the CLOCC default."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.is_file():
        raise InputError("--config", f"run spec not found: {p}")
    return p.resolve()


@dataclass(frozen=True)
class Layout:
    """Where a run writes: ``root/data/processed``, ``root/models``, ``root/reports``."""

    root: Path

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def figures(self) -> Path:
        return self.reports / "figures"

    def ipd(self, stem: str) -> Path:
        return self.processed / f"{stem}_ipd.csv"

    def replicates(self, stem: str) -> Path:
        return self.processed / f"{stem}_ipd_replicates.csv"

    def existing(self, name: str) -> Path:
        """``processed/name`` here if it exists, else the repository's (shared by sensitivity runs)."""
        own = self.processed / name
        return own if own.exists() else REPO_ROOT / "data" / "processed" / name


def layout_for(output: Path | None, spec=None, trial_path: Path | None = None) -> Layout:
    """Where a run writes.

    ``--output`` wins. Otherwise the default CLOCC spec writes into the
    repository (``data/processed``, ``models``, ``reports``), and any other
    spec or trial file writes under ``runs/<name>/``, so a scripted
    sensitivity analysis never overwrites the main results.
    """
    if output is not None:
        return Layout(check_output_path(output, "--output", is_dir=True))
    if trial_path is not None and spec is not None and Path(trial_path).resolve() != Path(spec.trial).resolve():
        return Layout((REPO_ROOT / "runs" / Path(trial_path).stem).resolve())
    spec_path = getattr(spec, "path", None)
    if spec_path is not None and Path(spec_path).resolve() != DEFAULT_CONFIG.resolve():
        return Layout((REPO_ROOT / "runs" / Path(spec_path).stem).resolve())
    return Layout(REPO_ROOT.resolve())


# --------------------------------------------------------------------------- steps


def reconstruct_step(trial_path: Path, layout: Layout, *, seed: int, replicates: int) -> tuple[Path, Path, Path]:
    """Reconstruct once with ``replicates`` replicates; write the point IPD (replicate 1) and all replicates."""
    from .io import write_many_atomic
    from .reconstruct import check_path, reconstruct
    from .reconstruct.check import check_rows, format_check, rows_to_csv
    from .trial import load_trial

    trial = load_trial(trial_path)
    stem = trial_path.stem
    rec = reconstruct(trial, seed=seed, replicates=max(1, replicates))
    point = type(rec)(trial=trial, engine=rec.engine, replicates=rec.replicates[:1], seed=seed)
    ipd, reps = layout.ipd(stem), layout.replicates(stem)
    rows = check_rows(trial, rec.replicates[:1])
    rows_k = check_rows(trial, rec.replicates)
    write_many_atomic(
        {
            ipd: point.csv_text(with_replicate=False),
            check_path(ipd): rows_to_csv(rows),
            reps: rec.csv_text(with_replicate=True),
            check_path(reps): rows_to_csv(rows_k),
        }
    )
    _say(format_check(trial, rows_k, engine=rec.engine, replicates=len(rec.replicates)))
    from .reconstruct.check import misses

    # The same warnings as `kmbayes reconstruct`: input warnings, then every published
    # number the point reconstruction misses beyond its tolerance.
    for w in [*rec.warnings, *(r.warning() for r in misses(rows))]:
        _say(f"  warning: {w}")
    return ipd, reps, check_path(reps)


def _progress(done: int, total: int, label: str, secs: float, ok: bool | None, cached: bool = False) -> None:
    state = "cached" if cached else ("ok" if ok else "FAILED GATE" if ok is False else "")
    _say(f"  [{done:>2}/{total}] {label:<34} {secs:6.1f} s  {state}")


def fit_step(spec, ipd: Path, replicates: Path | None, layout: Layout, *, fast: bool, force: bool, pool: bool | None):
    """Fit the model x prior grid; returns the grid result (fits, results, diagnostics)."""
    from .grid import fit_grid

    use_pool = spec.pool_replicates if pool is None else pool
    return fit_grid(
        spec,
        ipd,
        layout.root,
        fast=fast,
        force=force,
        pool_replicates=replicates if (use_pool and replicates is not None) else False,
        progress=_progress,
        say=lambda msg: _say(f"  {msg}"),
    )


def _cached_step(record: Path, key: str | None, root: Path) -> dict | None:
    """The record of a step's last outputs if made from ``key`` and still on disk unchanged."""
    import json

    from .provenance import outputs_verified

    if key is None:
        return None
    try:
        doc = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return doc if doc.get("key") == key and outputs_verified(doc.get("files", {}), root) else None


def _record_step(record: Path, key: str | None, root: Path, paths, **extra) -> None:
    import json

    from .provenance import file_sha

    if key is None:
        return
    files = {str(Path(p).relative_to(root)): file_sha(p) for p in paths}
    write_text_atomic(record, json.dumps({"key": key, "files": files, **extra}, indent=1, sort_keys=True))


def figures_step(grid, ipd: Path, trial, layout: Layout, *, mcid_hr: float | None = None) -> list[Path]:
    """Draw the report's figures and their single-column variants, one line per figure,
    unless the last run drew them from the same grid and they are unchanged on disk."""
    from .provenance import sha

    key = sha(f"figures:{grid.grid_key}:{mcid_hr}") if getattr(grid, "grid_key", None) else None
    record = layout.figures / ".figures.json"
    hit = _cached_step(record, key, layout.root)
    if hit is not None:
        _say("  figures verified in the cache; not redrawn")
        return [layout.root / f for f in hit["files"]]
    from .data import read_ipd
    from .figures import draw_all

    kw = {} if mcid_hr is None else {"mcid_hr": mcid_hr}
    paths = draw_all(grid, read_ipd(ipd, trial), trial, layout.figures, width="single",
                     progress=lambda stem, secs: _say(f"  {stem} {secs:.1f} s"), **kw)
    _record_step(record, key, layout.root, paths)
    return paths


def report_step(grid, spec, trial, check_csv: Path | None, layout: Layout, *, seed: int,
                adapted: bool | None = None) -> tuple[Path, str]:
    """Write ``reports/reanalysis.md`` and ``reports/reanalysis.html``; return the
    Markdown's path and the plain-language summary.

    ``adapted``: whether the spec was adapted to another trial file
    (``--trial``); None works it out (:func:`_spec_adapted`). The
    reproducibility block says so.
    """
    from .provenance import file_sha, sha

    if adapted is None:
        adapted = _spec_adapted(spec, trial)

    key = None
    if getattr(grid, "grid_key", None):
        chk = file_sha(check_csv) if check_csv and Path(check_csv).exists() else ""
        key = sha(f"report:{grid.grid_key}:{seed}:{chk}:{reproducibility(spec, seed, trial, adapted)}")
    record = layout.reports / ".report.json"
    hit = _cached_step(record, key, layout.root)
    if hit is not None:
        _say("  report verified in the cache; not rewritten")
        return layout.reports / "reanalysis.md", hit["summary"]
    path, summary = _write_report(grid, spec, trial, check_csv, layout, seed=seed, adapted=adapted)
    _record_step(record, key, layout.root,
                 [path, layout.reports / "reanalysis.html", layout.reports / "hr_intervals.csv"],
                 summary=summary)
    return path, summary


def _write_report(grid, spec, trial, check_csv, layout: Layout, *, seed: int,
                  adapted: bool = False) -> tuple[Path, str]:
    """Compose the report from the run's tables (:mod:`kmbayes.report`) and write it
    with its HTML copy in one all-or-nothing write."""
    import pandas as pd

    from .headline import sentences
    from .io import write_many_atomic
    from .report import compose, interval_frame, load_inputs, sampling_items, write_html

    intervals = interval_frame(grid.fits, trial=trial)
    write_text_atomic(layout.reports / "hr_intervals.csv", intervals.to_csv(index=False, float_format="%.6g"))
    results = pd.read_csv(layout.reports / "results.csv")
    single = results[~results.quantity.str.startswith("pooled_")]
    inp = load_inputs(layout.reports, trial, spec, check_csv, intervals=intervals,
                      repro=reproducibility(spec, seed, trial, adapted),
                      sampling=sampling_items(grid.fits, single), failed=list(grid.failed),
                      figures_dir=layout.figures)
    summary = " ".join(sentences(inp.head, trial))
    if grid.failed:
        summary += (" WARNING: " + ", ".join(f"{m}/{p}" for m, p in grid.failed)
                    + " failed the diagnostic gate (flagged in every table).")
    md_path = layout.reports / "reanalysis.md"
    text = compose(inp)
    page = write_html(text, md_path, f"Bayesian reanalysis: {trial.name}")
    write_many_atomic({md_path: text, layout.reports / "reanalysis.html": page})
    return md_path, summary


def _spec_adapted(spec, trial) -> bool:
    """True when the run's trial file is not the one its run spec names (``--trial``)."""
    from .runspec import load_spec

    spec_path, tpath = getattr(spec, "path", None), getattr(trial, "path", None)
    if not spec_path or not tpath:
        return False
    try:
        named = load_spec(spec_path).trial
    except Exception:  # the spec file changed or vanished since the run read it
        return False
    return named is None or Path(named).resolve() != Path(tpath).resolve()


def reproducibility(spec, seed: int, trial=None, adapted: bool = False) -> dict:
    """Versions, seed, commit, the trial file with its SHA-256 and the run spec used.

    ``adapted``: the run spec's time-scale choices (cut points, milestones,
    RMST horizons, reference time) were adapted to a trial file given with
    ``--trial``; the block then lists the values actually used.
    """
    import hashlib

    from .provenance import environment_info

    def shown(p) -> str:
        p = Path(p)
        try:
            return str(p.resolve().relative_to(REPO_ROOT))
        except ValueError:
            return str(p)

    info = dict(environment_info())
    info["seed"] = seed
    cfg = getattr(spec, "path", None)
    info["config"] = shown(cfg) if cfg else "(none)"
    tpath = getattr(trial, "path", None) or getattr(spec, "trial", None)
    if tpath and Path(tpath).is_file():
        info["trial_file"] = shown(tpath)
        info["trial_sha256"] = hashlib.sha256(Path(tpath).read_bytes()).hexdigest()
    if adapted:
        info["config_adapted"] = ("cut points, milestones, RMST horizons and reference time adapted to "
                                  "the trial file (kmbayes run --trial)")
        info["cuts"] = ", ".join(f"{c:g}" for c in spec.cuts)
        info["milestones"] = ", ".join(f"{m:g}" for m in spec.milestones)
        info["rmst_horizons"] = ", ".join(f"{h:g}" for h in spec.rmst_horizons)
    info["priors"] = "; ".join(f"{k} N({p.mu:.4g}, {p.sigma:.4g}^2)" for k, p in spec.priors.items())
    info["mcid_hr"] = f"{spec.mcid_hr:g}"
    return info


def update_readme_results(reports: Path, trial, readme: Path = REPO_ROOT / "README.md") -> bool:
    """Replace the README's headline block with one generated from ``headline.csv`` and ``results.csv``.

    The block states the headline by the headline rule (:mod:`kmbayes.headline`)
    and lists every model under the headline prior with whether it passed the
    checks, so no README number comes from a model that fails its check
    without saying so.
    """
    import pandas as pd

    from .headline import MODEL_NAMES, pct, sentences
    from .report import _md_table

    if not readme.exists():
        return False
    text = readme.read_text(encoding="utf-8")
    if RESULTS_START not in text or RESULTS_END not in text:
        return False
    head = pd.read_csv(reports / "headline.csv")
    res = pd.read_csv(reports / "results.csv")
    pooled = reports / "results_pooled.csv"
    pres = pd.read_csv(pooled) if pooled.exists() else None
    rows = []
    for r in head[head.role == "candidate"].itertuples():
        src = pres if pres is not None else res
        sel = src[(src.model == r.model) & (src.prior == r.prior)].set_index("quantity")

        def cell(q, as_pct=False, sel=sel):
            if q not in sel.index:
                return ""
            x = sel.loc[q]
            if as_pct:
                return pct(x.estimate)
            return f"{x.estimate:.2f} ({x.lower:.2f} to {x.upper:.2f})"

        note = str(r.note).split("; ", 1)
        effect = cell("cure_difference") if r.model == "cure" else cell("hr")
        p = cell("p_cure_difference_gt_0", True) if r.model == "cure" else cell("p_hr_lt_1", True)
        label = "difference in cure fraction" if r.model == "cure" else note[0]
        rows.append([MODEL_NAMES.get(r.model, r.model), label, effect, p,
                     note[1] if len(note) > 1 else ""])
    table = _md_table(["Model", "Effect measure", "Estimate (95% CrI)", "P(benefit)", "Status"], rows)
    block = (" ".join(sentences(head, trial)) + "\n\n"
             + f"Every model under the headline prior ({head.prior.iloc[0]}), "
             + ("pooled over reconstruction replicates" if pres is not None else "single reconstruction")
             + "; P(benefit) is P(HR < 1), or P(cure difference > 0) for the cure model:\n\n" + table)
    head_, _, rest = text.partition(RESULTS_START)
    _, _, tail = rest.partition(RESULTS_END)
    new = f"{head_}{RESULTS_START}\n{block}\n{RESULTS_END}{tail}"
    if new != text:
        write_text_atomic(readme, new)
    return True


# --------------------------------------------------------------------------- commands


def _load_spec(args):
    from .runspec import load_spec

    spec = load_spec(resolve_config(getattr(args, "config", None)))
    return spec


def _spec_trial(spec) -> Path:
    """The spec's trial file; a spec without ``run.trial`` is refused here, not with a TypeError later."""
    if spec.trial is None:
        raise InputError("run.trial", "missing (required: the trial file this spec analyses)")
    return Path(spec.trial).resolve()


def _trial_path(spec, args) -> Path:
    p = getattr(args, "trial", None)
    if p is not None:
        from .io import check_path_length

        check_path_length(p, "--trial")
        p = Path(p)
        if not p.exists():
            raise InputError("--trial", f"trial file not found: {p}")
        return p.resolve()
    return _spec_trial(spec)


def check_seed(seed: int | None, fld: str = "--seed") -> None:
    """Seeds are 0..2**32-1 (numpy's range); -1 used to raise a ValueError traceback."""
    if seed is not None and not 0 <= seed <= LIMITS["seed_max"]:
        raise InputError(fld, f"must be in [0, {LIMITS['seed_max']}], got {seed}")


def check_workload(trial, replicates: int, fld: str) -> int:
    """Refuse a reconstruction past ``patient_rows_max``; announce one that takes a while.

    Reconstruction time grows with patients x replicates; past the limit it
    ran for minutes with no output, so it is refused, and below it a run
    expected to take more than a couple of seconds says so on stderr first
    (:func:`announce_workload`). Returns the number of rows.
    """
    n = sum(a.n for a in trial.arms.values())
    rows = n * max(1, replicates)
    if rows > LIMITS["patient_rows_max"]:
        raise InputError(fld, f"{replicates} replicates x {n} patients = {rows} rows, above the documented "
                         f"limit of {LIMITS['patient_rows_max']}")
    return rows


def announce_workload(rows: int) -> None:
    """Say on stderr that a reconstruction will take a while (called once nothing can be refused any more)."""
    import sys

    if rows > 20_000:
        print(f"kmbayes: reconstructing {rows} patient rows; this takes a few seconds", file=sys.stderr, flush=True)


def check_fittable(trial) -> None:
    """Refuse a trial whose data cannot identify a hazard ratio, before anything is written.

    An arm without events (or a handful of patients, see ``trial``) left the
    log HR unidentified: the posterior is the prior and the forest plot
    overflowed after 30-odd files had been written.
    """
    for arm in trial.arms.values():
        if arm.events < LIMITS["arm_events_min"]:
            raise InputError(f"arms.{arm.id}.events",
                             f"{arm.events} events: fitting needs at least {LIMITS['arm_events_min']} per arm")


def run_command(args) -> int:
    """``kmbayes run``: the full reanalysis, with a line per step and a summary."""
    from .trial import load_trial

    t0 = time.time()
    check_seed(args.seed)
    spec = _load_spec(args)
    trial_path = _trial_path(spec, args)
    trial = load_trial(trial_path)  # validate before writing anything
    check_fittable(trial)
    if spec.trial is None:
        from dataclasses import replace

        spec = replace(spec, trial=trial_path)
    layout = layout_for(args.output, spec, trial_path)  # before adapting: it compares with the spec's trial
    rows = check_workload(trial, spec.replicates, "run.replicates")
    with output_lock(layout.root):
        announce_workload(rows)
        return _run_locked(args, spec, trial_path, trial, layout, t0)


def _run_locked(args, spec, trial_path, trial, layout, t0) -> int:
    is_spec_trial = trial_path == Path(spec.trial).resolve()
    if not is_spec_trial:
        from .runspec import adapt_spec_to_trial

        spec = adapt_spec_to_trial(spec, trial)
    seed = args.seed if args.seed is not None else spec.seed
    _say(f"kmbayes run: {trial.name} ({trial.endpoint}); outputs under {layout.root}")

    phases: dict[str, float] = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        phases[name] = time.perf_counter() - t
        _say(f"  phase {name}: {phases[name]:.1f} s")
        return out

    _say(f"[1/4] reconstruct: {trial_path.name} -> {layout.processed}")
    ipd, reps, check_csv = timed("reconstruct", lambda: reconstruct_step(
        trial_path, layout, seed=seed, replicates=spec.replicates))

    _say(f"[2/4] fit: {len(spec.models)} models x {len(spec.priors)} priors")
    grid = timed("fit", lambda: fit_step(spec, ipd, reps, layout, fast=args.fast, force=args.force,
                                         pool=None))

    _say(f"[3/4] figures -> {layout.figures}")
    figs = timed("figures", lambda: figures_step(grid, ipd, trial, layout, mcid_hr=spec.mcid_hr))
    _say(f"  wrote {len(figs)} files")

    _say(f"[4/4] report -> {layout.reports / 'reanalysis.md'}")
    report, summary = timed("report", lambda: report_step(grid, spec, trial, check_csv, layout, seed=seed))
    if layout.root == REPO_ROOT.resolve() and is_spec_trial:
        update_readme_results(layout.reports, trial)

    _say("")
    _say(summary)
    _say(f"(done in {time.time() - t0:.0f} s; report: {report})")
    failed = grid.failed  # primary and replicate-pooled fits
    if failed:
        raise FitFailedError(
            f"{len(failed)} fit(s) failed the diagnostic gate: "
            + ", ".join(f"{m}/{p}" for m, p in failed)
            + " (flagged in results, diagnostics and the report)"
        )
    return 0


def fit_command(args) -> int:
    """``kmbayes fit --config SPEC``: fit the spec's grid (or a subset) to the IPD."""
    spec = _load_spec(args)
    if args.models or args.priors:
        from .runspec import subset_spec

        spec = subset_spec(
            spec,
            models=args.models.split(",") if args.models else None,
            priors=args.priors.split(",") if args.priors else None,
        )
    layout = layout_for(args.output, spec)
    stem = _spec_trial(spec).stem
    # --data wins, then the spec's run.data, then the reconstruction under the output root.
    if args.data:
        from .io import check_path_length

        check_path_length(args.data, "--data")
        ipd, fld = Path(args.data).resolve(), "--data"
    elif spec.data is not None:
        ipd, fld = Path(spec.data).resolve(), "run.data"
    else:
        ipd, fld = layout.existing(f"{stem}_ipd.csv"), "--data"
    if not ipd.is_file():
        raise InputError(fld, f"IPD not found: {ipd} (run `kmbayes reconstruct` or `kmbayes run` first)")
    _check_ipd_size(ipd, fld)
    reps = layout.existing(f"{stem}_ipd_replicates.csv")
    pool = True if args.pool_replicates else None
    _say(f"kmbayes fit: {len(spec.models)} models x {len(spec.priors)} priors on {ipd.name}")
    with output_lock(layout.root):
        grid = fit_step(spec, ipd, reps if reps.exists() else None, layout, fast=args.fast, force=args.force,
                        pool=pool)
    _say(f"wrote {layout.reports / 'results.csv'} and {layout.reports / 'diagnostics.csv'}")
    failed = grid.failed  # primary and replicate-pooled fits
    if failed:
        raise FitFailedError(", ".join(f"{m}/{p}" for m, p in failed) + " failed the diagnostic gate")
    return 0


def _check_ipd_size(ipd: Path, fld: str) -> None:
    """An IPD file of at most ``patient_rows_max`` rows (counted without parsing)."""
    rows = 0
    with open(ipd, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            rows += block.count(b"\n")
            if rows > LIMITS["patient_rows_max"] + 1:
                raise InputError(fld, f"{ipd.name} has more than {LIMITS['patient_rows_max']} rows "
                                 "(documented limit)")


def _check_tables(grid) -> None:
    """The tables a report reads must be there with their columns (else InputError)."""
    need = {"results": ("model", "prior", "quantity", "estimate", "lower", "upper"),
            "diagnostics": ("model", "prior", "gate_passed")}
    for name, cols in need.items():
        df = getattr(grid, name)
        if df is None:
            raise InputError("--output", f"reports/{name}.csv is missing; rerun `kmbayes fit`")
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise InputError("--output", f"reports/{name}.csv lacks column {missing[0]!r}; rerun `kmbayes fit`")
        if df.empty:
            raise InputError("--output", f"reports/{name}.csv is empty; rerun `kmbayes fit`")


def report_command(args) -> int:
    """``kmbayes report``: figures and report from existing fits."""
    from .grid import load_grid
    from .reconstruct import check_path
    from .trial import load_trial

    spec = _load_spec(args)
    layout = layout_for(args.output, spec)
    trial_path = _spec_trial(spec)
    trial = load_trial(trial_path)
    ipd = Path(spec.data).resolve() if spec.data is not None else layout.existing(f"{trial_path.stem}_ipd.csv")
    if not (layout.reports / "results.csv").exists():
        raise InputError("--output", f"no fits under {layout.root} (run `kmbayes fit` first)")
    with output_lock(layout.root):
        return _report_locked(spec, layout, trial_path, trial, ipd, load_grid, check_path)


def _report_locked(spec, layout, trial_path, trial, ipd, load_grid, check_path) -> int:
    from .data import file_digest

    try:
        grid = load_grid(layout.root, spec, data_hash=file_digest(ipd) if ipd.exists() else None)
        _check_tables(grid)
    except InputError:
        raise
    except Exception as ex:  # a hand-edited or truncated cache: refuse in one line, never a traceback
        raise InputError("--output", f"the stored fits or tables under {layout.root.name} are corrupt "
                         f"({type(ex).__name__}); rerun `kmbayes fit`") from None
    figs = figures_step(grid, ipd, trial, layout, mcid_hr=spec.mcid_hr)
    reps_check = check_path(layout.existing(f"{trial_path.stem}_ipd_replicates.csv"))
    report, summary = report_step(grid, spec, trial, reps_check if reps_check.exists() else check_path(ipd), layout,
                                  seed=spec.seed)
    _say(f"wrote {len(figs)} figure files and {report}")
    _say(summary)
    if grid.failed:
        raise FitFailedError(", ".join(f"{m}/{p}" for m, p in grid.failed) + " failed the diagnostic gate"
                             " (flagged in the report)")
    return 0
