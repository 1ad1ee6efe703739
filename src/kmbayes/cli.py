"""Command line: ``kmbayes reconstruct | fit | report | run``.

The CLI mirrors the pipeline. Each subcommand imports its heavy dependencies
only when it runs, so ``kmbayes reconstruct`` never loads PyMC, ArviZ,
lifelines or pandas and starts in a fraction of a second.

Bad input (:class:`~kmbayes.errors.InputError`) is reported as one line on
stderr naming the field, with exit code 2 and no output written. Bad
arguments get the same treatment (one line, exit 2; the usage is shown by
``--help``), and so do operating-system errors on the user's paths (a full
disk, a permission denied). All messages go through
:func:`kmbayes.errors.one_line`: one line, control characters replaced, at
most ~300 characters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import FitFailedError, InputError, one_line

EXIT_INPUT = 2
EXIT_FIT_FAILED = 3
EXIT_MISS = 4  # reconstruct --strict: a published number is missed


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from .io import check_output_path, output_lock
    from .limits import LIMITS
    from .pipeline import announce_workload, check_seed, check_workload
    from .reconstruct import ReconstructionMiss, check_path, run_reconstruct
    from .trial import load_trial

    if args.replicates < 1:
        raise InputError("--replicates", f"must be >= 1, got {args.replicates}")
    if args.replicates > LIMITS["replicates_max"]:
        raise InputError("--replicates", f"{args.replicates} is above the documented limit of {LIMITS['replicates_max']}")
    check_seed(args.seed)
    trial = load_trial(args.trial)  # validate first: a bad trial file writes nothing
    rows = check_workload(trial, args.replicates, "--replicates")
    # The outputs must not be the inputs: `--out trial.toml` overwrote the trial file.
    inputs = [Path(args.trial)] + [trial.path.parent / a.curve_path for a in trial.arms.values()
                                   if a.curve_path and trial.path is not None]
    out = check_output_path(args.out, "--out", is_dir=False, protect=tuple(inputs))
    check_output_path(check_path(out), "--out", is_dir=False, protect=tuple(inputs))
    with output_lock(out.parent, "--out", sweep=(f".{out.name}.", f".{check_path(out).name}.")):
        announce_workload(rows)
        try:
            text = run_reconstruct(
                args.trial, out, seed=args.seed, replicates=args.replicates, engine=args.engine,
                strict=args.strict,
            )
        except ReconstructionMiss as ex:
            if not args.quiet:
                print(ex.args[1])
            print(f"kmbayes: error: {one_line(ex.args[0])}", file=sys.stderr)
            return EXIT_MISS
    if not args.quiet:
        print(text)
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from .pipeline import fit_command

    return fit_command(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from .pipeline import report_command

    return report_command(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run_command

    return run_command(args)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other refusal."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message, 180)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for ``--help`` tests and docs)."""
    p = _Parser(
        prog="kmbayes",
        description="Bayesian reanalysis of a survival trial from its published numbers.",
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"kmbayes {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser(
        "reconstruct",
        help="published numbers (trial TOML) -> patient-level data (CSV)",
        description=(
            "Reconstruct patient-level data (time,event,arm) from a trial file. "
            "Uses the curve engine when every arm has a digitized curve and an "
            "at-risk table, else the summary engine. Prints, and writes next to "
            "the CSV, a table of every published statistic against the same "
            "statistic recomputed from the output; the held-out HR and p come last."
        ),
    )
    r.add_argument("trial", type=Path, help="trial file (TOML)")
    r.add_argument("--out", type=Path, required=True, help="output CSV")
    r.add_argument("--seed", type=int, default=20170, help="random seed (default 20170)")
    r.add_argument(
        "--replicates",
        type=int,
        default=1,
        help="write K plausible reconstructions with a replicate column (default 1: none)",
    )
    r.add_argument(
        "--engine", choices=["auto", "summary", "curve"], default="auto", help="force an engine"
    )
    r.add_argument("-q", "--quiet", action="store_true", help="do not print the check table")
    r.add_argument(
        "--strict",
        action="store_true",
        help="exit 4 when the reconstruction misses a published number (files are still written)",
    )
    r.set_defaults(func=_cmd_reconstruct)

    f = sub.add_parser(
        "fit",
        help="fit model x prior pairs from a run spec",
        description="Fit the model x prior grid of a run spec (configs/*.toml) to reconstructed data.",
    )
    f.add_argument("--config", type=Path, default=None, help="run spec (default configs/clocc.toml)")
    f.add_argument("--data", type=Path, default=None, help="IPD CSV (default: from the config)")
    f.add_argument("--models", default=None, help="comma-separated model ids (default: config)")
    f.add_argument("--priors", default=None, help="comma-separated prior ids (default: config)")
    f.add_argument("--output", type=Path, default=None, help="root for models/ and reports/")
    f.add_argument("--fast", action="store_true", help="few draws (smoke tests, notebooks)")
    f.add_argument("--force", action="store_true", help="refit even if a cached fit matches")
    f.add_argument("--pool-replicates", action="store_true", help="also fit every reconstruction replicate and pool the draws")
    f.set_defaults(func=_cmd_fit)

    rep = sub.add_parser(
        "report",
        help="figures and reports/reanalysis.md from fitted models",
        description="Draw the figures and write reports/reanalysis.md from existing fits.",
    )
    rep.add_argument("--config", type=Path, default=None, help="run spec (default configs/clocc.toml)")
    rep.add_argument("--output", type=Path, default=None, help="root holding models/ and reports/")
    rep.set_defaults(func=_cmd_report)

    run = sub.add_parser(
        "run",
        help="the whole reanalysis: reconstruct -> fit -> diagnostics -> figures -> report",
        description=(
            "Run the full reanalysis. With no arguments: CLOCC (configs/clocc.toml). "
            "With --trial FILE: any trial file, with the default model x prior grid."
        ),
    )
    run.add_argument("--config", type=Path, default=None, help="run spec (default configs/clocc.toml)")
    run.add_argument("--trial", type=Path, default=None, help="trial file; overrides the config's")
    run.add_argument("--output", type=Path, default=None, help="write everything under DIR")
    run.add_argument("--fast", action="store_true", help="few draws (smoke tests)")
    run.add_argument("--force", action="store_true", help="refit even if cached fits match")
    run.add_argument("--seed", type=int, default=None, help="override the config's seed")
    run.set_defaults(func=_cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kmbayes`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as ex:
        print(f"kmbayes: error: {one_line(str(ex))}", file=sys.stderr)
        return EXIT_INPUT
    except FitFailedError as ex:
        print(f"kmbayes: fit failed: {one_line(str(ex))}", file=sys.stderr)
        return EXIT_FIT_FAILED
    except OSError as ex:
        # A path the user gave cannot be read or written (permissions, a full
        # disk, a name too long): the user's to fix, so exit 2 in one line.
        where = f" ({Path(ex.filename).name})" if getattr(ex, "filename", None) else ""
        print(f"kmbayes: error: {one_line((ex.strerror or type(ex).__name__) + where)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("kmbayes: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
