"""Reconstruct patient-level data from published numbers.

Two engines, chosen by what the trial file holds:

* :mod:`~kmbayes.reconstruct.curve` when every arm has a digitized curve and
  an at-risk table (Guyot et al. 2012 and successors);
* :mod:`~kmbayes.reconstruct.summary` from abstract-level numbers only
  (landmark survival with CIs, medians with CIs, events, median follow-up).

Both return a list of replicates; replicate 1 is the engine's best
reconstruction and the others are plausible alternatives that vary where the
published numbers leave freedom.

Before reconstructing, :func:`kmbayes.trial.reconstruction_checks` refuses
trials no reconstruction can honour (``InputError`` naming the field) and
warns about doubtful ones; after, no time exceeds ``followup.max`` and the
check table (:mod:`~kmbayes.reconstruct.check`) gives every published number
a tolerance and a verdict. A miss is a warning naming the number, and an
error (:class:`ReconstructionMiss`, raised after the files are written) under
``strict``.

This package must stay free of PyMC, ArviZ, lifelines and pandas imports: it
is the fast path of the CLI.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import write_many_atomic
from ..trial import Trial, load_trial, reconstruction_checks

ArmData = tuple[np.ndarray, np.ndarray]  # (time, event) for one arm
Replicate = dict[str, ArmData]  # arm id -> (time, event)


@dataclass(frozen=True)
class Reconstruction:
    """Reconstructed IPD: ``replicates[k][arm] = (time, event)``."""

    trial: Trial
    engine: str
    replicates: list[Replicate]
    seed: int
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def csv_text(self, with_replicate: bool) -> str:
        """The IPD as CSV text, deterministic to the byte."""
        header = "time,event,arm,replicate" if with_replicate else "time,event,arm"
        lines = [header]
        for k, rep in enumerate(self.replicates, start=1):
            for arm in self.trial.arm_ids:
                t, e = rep[arm]
                order = np.lexsort((-np.asarray(e), np.asarray(t)))
                for i in order:
                    row = f"{_fmt(t[i])},{int(e[i])},{arm}"
                    lines.append(f"{row},{k}" if with_replicate else row)
        return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    # Enough digits to keep distinct event times distinct; fixed so output is byte-stable.
    s = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return s if s else "0"


def choose_engine(trial: Trial, engine: str = "auto") -> str:
    """Pick ``curve`` when every arm has a curve and an at-risk table."""
    if engine == "auto":
        return "curve" if trial.has_curves else "summary"
    if engine == "curve" and not trial.has_curves:
        missing = [a.id for a in trial.arms.values() if a.curve is None or not a.at_risk]
        raise InputError(f"arms.{missing[0]}.curve", "curve engine needs a curve and an at_risk table")
    return engine


def reconstruct(trial: Trial, *, seed: int = 20170, replicates: int = 1, engine: str = "auto") -> Reconstruction:
    """Reconstruct IPD from a validated trial.

    Parameters
    ----------
    trial : Trial
        Parsed trial file. ``trial.reported_*`` is never read here.
    seed : int
        Seed of the random generator; same trial and seed give identical output.
    replicates : int
        Number of plausible reconstructions (replicate 1 is the best one).
    engine : {"auto", "summary", "curve"}

    Returns
    -------
    Reconstruction
    """
    warns = list(trial.warnings) + reconstruction_checks(trial)
    engine = choose_engine(trial, engine)
    if engine == "curve":
        from .curve import reconstruct_curve as fn
    else:
        from .summary import reconstruct_summary as fn
    reps = fn(trial, seed=seed, replicates=replicates)
    for k, rep in enumerate(reps):
        for arm_id, arm in trial.arms.items():
            t, e = rep[arm_id]
            if len(t) != arm.n or len(e) != arm.n:  # engines must honour n exactly
                raise RuntimeError(f"engine {engine} returned {len(t)} rows for {arm_id} (n={arm.n}) in replicate {k + 1}")
            if trial.followup_max is not None and len(t) and float(np.max(t)) > trial.followup_max:
                # No one was followed longer than the stated maximum: whoever
                # the engine carried past it is censored (or dies) at it.
                rep[arm_id] = (np.minimum(np.asarray(t, dtype=float), trial.followup_max), e)
    return Reconstruction(trial=trial, engine=engine, replicates=reps, seed=seed, warnings=tuple(warns))


def check_path(out: Path) -> Path:
    """Where the check table of ``out`` is written (``<stem>.check.csv``)."""
    out = Path(out)
    return out.with_name(out.stem + ".check.csv")


class ReconstructionMiss(RuntimeError):
    """Under ``strict``: the reconstruction misses published numbers (files are written)."""


def _stderr(msg: str) -> None:
    print(f"kmbayes: warning: {msg}", file=sys.stderr)


def run_reconstruct(trial_path: Path, out: Path, *, seed: int = 20170, replicates: int = 1, engine: str = "auto",
                    strict: bool = False, warn: Callable[[str], None] = _stderr) -> str:
    """CLI body: load, reconstruct, write CSV and check table atomically.

    Input warnings and every missed published number go to ``warn`` (one
    line each). With ``strict``, a miss raises :class:`ReconstructionMiss`
    after the files are written (they show what was missed).

    Returns the printed check table.
    """
    out = Path(out)
    if out.exists() and out.is_dir():
        raise InputError("--out", f"is a directory: {out}")
    trial = load_trial(trial_path)
    from .check import check_rows, format_check, rows_to_csv
    rec = reconstruct(trial, seed=seed, replicates=replicates, engine=engine)
    rows = check_rows(trial, rec.replicates)
    write_many_atomic(
        {
            out: rec.csv_text(with_replicate=replicates > 1),
            check_path(out): rows_to_csv(rows),
        }
    )
    from .check import misses

    for w in rec.warnings:
        warn(w)
    missed = misses(rows)
    for r in missed:
        warn(r.warning())
    text = format_check(trial, rows, engine=rec.engine, replicates=replicates)
    if strict and missed:
        raise ReconstructionMiss(
            f"{len(missed)} published number{'s' if len(missed) > 1 else ''} missed "
            f"(first: {missed[0].warning()}); see {check_path(out).name}",
            text,
        )
    return text
