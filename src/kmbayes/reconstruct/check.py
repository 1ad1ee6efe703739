"""The check table: every published number against the reconstruction.

For each statistic the trial file publishes (n, events, landmark survival and
its CI bounds, median and its CI bounds, numbers at risk, median follow-up) the
table gives the published value, the same statistic recomputed from
replicate 1 and, with several replicates, the range over all of them. The
held-out hazard ratio (with CI) and log-rank p come last, marked as never
used to reconstruct.

Recomputation uses :mod:`kmbayes.km` (the lifelines conventions), so the table
shows what a reader running standard KM and Cox code on the CSV would get.
Survival CIs are recomputed on each arm's declared scale (``ci``).

Verdicts
--------
Every published row carries a tolerance and a verdict on replicate 1
(``ok`` or ``MISS``). A tolerance is what the publication's rounding and the
discreteness of a Kaplan-Meier curve from ``n`` patients allow, computed per
row:

* ``n``, ``events``: 0 (the engines honour them exactly);
* ``S(t)``: half a unit of the published last decimal plus half of one
  death's drop of the reconstructed curve at ``t`` (``S(t) / Y(t+)``), the
  closest a step function can be sure to come; CI bounds: the same with a
  whole drop (a death moves both the estimate and its Greenwood variance);
* median and median-CI bounds: half a unit of the published decimal plus
  the larger spacing of the reconstructed curve's jumps on either side (a
  discrete curve crosses 0.5 only at a death);
* numbers at risk: 0 with a curve (the curve engine makes them exact),
  else 2% (at least 1): the summary engine fits them as approximate;
* median follow-up: half a unit plus the spacing of the pooled censorings
  around it (the reverse Kaplan-Meier moves only at a censoring);
* for an arm reconstructed from a digitized curve, survival rows also allow
  two reading errors of the curve and median rows two reading errors of its
  time axis (:func:`~kmbayes.reconstruct.replicates.reading_error`,
  estimated from the points): within that, the figure and the printed
  number agree and the reconstruction cannot honour one without the other.

Held-out rows have no verdict.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..km import cox_two_group, km, logrank, reverse_km_median
from ..trial import Trial, half_unit

HELD_OUT = "held out (never used to reconstruct)"
COLUMNS = ("section", "arm", "statistic", "published", "replicate1", "min", "max", "note", "tolerance", "verdict")
OK, MISS = "ok", "MISS"


@dataclass(frozen=True)
class CheckRow:
    """One line of the check table (``published`` is None if not reported)."""

    section: str  # "arm", "followup" or "held_out"
    arm: str
    statistic: str
    published: float | None
    replicate1: float
    min: float
    max: float
    note: str = ""
    tolerance: float | None = None
    verdict: str = ""

    @property
    def missed(self) -> bool:
        return self.verdict == MISS

    def warning(self) -> str:
        """One line naming the missed number (for stderr)."""
        return (
            f"arms.{self.arm} {self.statistic}: reconstructed {_num(self.replicate1, self.statistic)}, "
            f"published {_num(self.published, self.statistic)} (tolerance {_num(self.tolerance, 'tol')})"
            if self.section == "arm"
            else f"{self.statistic}: reconstructed {_num(self.replicate1, self.statistic)}, published "
            f"{_num(self.published, self.statistic)} (tolerance {_num(self.tolerance, 'tol')})"
        )


def _jump_spacing(times: np.ndarray, q: float) -> float:
    """Larger gap between ``q`` and the nearest jump times on either side."""
    if not math.isfinite(q) or times.size == 0:
        return 0.0
    before = times[times <= q]
    after = times[times > q]
    gaps = [q - before.max() if before.size else 0.0, after.min() - q if after.size else 0.0]
    return float(max(gaps))


def _arm_tolerances(trial: Trial, rep) -> dict[tuple[str, str], float]:
    """Per published arm statistic, the tolerance of its verdict (see module docstring)."""
    from .replicates import reading_error

    out: dict[tuple[str, str], float] = {}
    for arm_id, arm in trial.arms.items():
        t, e = (np.asarray(x) for x in rep[arm_id])
        f = km(t, e)
        # A curve-mode reconstruction follows the digitized curve: where it and
        # the printed numbers disagree by up to two reading errors, both are right.
        read_s, read_t = reading_error(*arm.curve) if arm.curve is not None else (0.0, 0.0)
        out[(arm_id, "n")] = 0.0
        out[(arm_id, "events")] = 0.0
        for lm in arm.survival:
            s = f.survival(lm.time)
            y_after = max(int(np.sum(t > lm.time)), 1)
            step = float(s) / y_after
            key = f"S({lm.time:g})"
            out[(arm_id, key)] = half_unit(lm.estimate, 3) + 0.5 * step + 2 * read_s
            for b, v in (("lower", lm.lower), ("upper", lm.upper)):
                if v is not None:
                    out[(arm_id, f"{key} {b}")] = half_unit(v, 3) + step + 2 * read_s
        if arm.median is not None:
            jumps = f.time[f.d > 0]
            lo, hi = f.median_ci(kind=arm.ci)
            for key, v, rec in (("median", arm.median.estimate, f.median()),
                                ("median lower", arm.median.lower, lo),
                                ("median upper", arm.median.upper, hi)):
                if v is not None:
                    # The CI curves jump where the estimate does.
                    out[(arm_id, key)] = half_unit(v) + _jump_spacing(jumps, rec) + 2 * read_t
        for ar in arm.at_risk:
            out[(arm_id, f"at risk({ar.time:g})")] = 0.0 if trial.has_curves else max(1.0, math.ceil(0.02 * ar.n))
    return out


def _arm_stats(trial: Trial, rep) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for arm_id, arm in trial.arms.items():
        t, e = rep[arm_id]
        f = km(t, e)
        out[(arm_id, "n")] = float(len(t))
        out[(arm_id, "events")] = float(np.sum(e))
        for lm in arm.survival:
            s, lo, hi = f.ci_at(lm.time, kind=arm.ci)
            out[(arm_id, f"S({lm.time:g})")] = s
            out[(arm_id, f"S({lm.time:g}) lower")] = lo
            out[(arm_id, f"S({lm.time:g}) upper")] = hi
        if arm.median is not None:
            lo, hi = f.median_ci(kind=arm.ci)
            out[(arm_id, "median")] = f.median()
            out[(arm_id, "median lower")] = lo
            out[(arm_id, "median upper")] = hi
        for ar in arm.at_risk:
            out[(arm_id, f"at risk({ar.time:g})")] = float(np.sum(np.asarray(t) >= ar.time))
    return out


def _pooled(trial: Trial, rep):
    ts, es, gs = [], [], []
    for arm_id in trial.arm_ids:
        t, e = rep[arm_id]
        ts.append(np.asarray(t, dtype=float))
        es.append(np.asarray(e, dtype=int))
        gs.append(np.full(len(t), int(arm_id == trial.treatment_arm)))
    return np.concatenate(ts), np.concatenate(es), np.concatenate(gs)


def _effect_stats(trial: Trial, rep) -> dict[str, float]:
    t, e, g = _pooled(trial, rep)
    out = {"median follow-up": reverse_km_median(t, e)}
    keep = t > 0  # as lifelines users do: Cox fitters reject non-positive times
    c = cox_two_group(t[keep], e[keep], g[keep])
    out["HR"] = c.hr
    out["HR lower"] = c.lower
    out["HR upper"] = c.upper
    out["log-rank p"] = logrank(t, e, g).p
    return out


def check_rows(trial: Trial, replicates) -> list[CheckRow]:
    """Published vs recomputed statistics; held-out HR and p last.

    Parameters
    ----------
    trial : Trial
    replicates : list of dict
        ``[{arm_id: (time, event)}, ...]``; the first is the best one.

    Returns
    -------
    list of CheckRow
    """
    arm_vals = [_arm_stats(trial, r) for r in replicates]
    eff_vals = [_effect_stats(trial, r) for r in replicates]
    tols = _arm_tolerances(trial, replicates[0])

    def rng(vals, key):
        xs = [v[key] for v in vals]
        return xs[0], min(xs), max(xs)

    rows: list[CheckRow] = []
    for arm_id in trial.arm_ids:
        arm = trial.arms[arm_id]
        pub: list[tuple[str, float | None]] = [("n", arm.n), ("events", arm.events)]
        for lm in arm.survival:
            pub += [
                (f"S({lm.time:g})", lm.estimate),
                (f"S({lm.time:g}) lower", lm.lower),
                (f"S({lm.time:g}) upper", lm.upper),
            ]
        if arm.median is not None:
            pub += [
                ("median", arm.median.estimate),
                ("median lower", arm.median.lower),
                ("median upper", arm.median.upper),
            ]
        for ar in arm.at_risk:
            pub.append((f"at risk({ar.time:g})", ar.n))
        for stat, value in pub:
            r1, lo, hi = rng(arm_vals, (arm_id, stat))
            pv = None if value is None else float(value)
            tol = tols.get((arm_id, stat))
            rows.append(CheckRow("arm", arm_id, stat, pv, r1, lo, hi, "", tol, _verdict(pv, r1, tol)))
    if trial.followup_median is not None:
        r1, lo, hi = rng(eff_vals, "median follow-up")
        t, e, _ = _pooled(trial, replicates[0])
        tol = half_unit(trial.followup_median) + _jump_spacing(np.unique(t[e == 0]), r1)
        rows.append(CheckRow("followup", "all", "median follow-up", trial.followup_median, r1, lo, hi,
                             "reverse KM", tol, _verdict(trial.followup_median, r1, tol)))
    hr = trial.reported_hr
    label = f"{trial.treatment_arm} vs {trial.reference_arm}"
    for stat, value in (
        ("HR", None if hr is None else hr.estimate),
        ("HR lower", None if hr is None else hr.lower),
        ("HR upper", None if hr is None else hr.upper),
        ("log-rank p", trial.reported_p),
    ):
        r1, lo, hi = rng(eff_vals, stat)
        rows.append(CheckRow("held_out", label, stat, value, r1, lo, hi, HELD_OUT))
    return rows


def _verdict(published: float | None, rec: float, tol: float | None) -> str:
    if published is None or tol is None:
        return ""
    if not math.isfinite(rec):
        return MISS
    # A hair of slack for binary floating point (0.1 + 0.05 is not 0.15).
    return OK if abs(rec - published) <= tol + 1e-9 * max(1.0, abs(published)) else MISS


def misses(rows: list[CheckRow]) -> list[CheckRow]:
    """The rows whose published number the reconstruction misses."""
    return [r for r in rows if r.missed]


def _num(x: float | None, stat: str = "") -> str:
    if x is None:
        return ""
    if not math.isfinite(x):
        return "inf" if x > 0 else "nan"
    if stat in ("n", "events") or stat.startswith("at risk"):
        return f"{x:.0f}"
    if stat == "tol":
        return f"{x:.4g}"
    return f"{x:.6g}" if stat == "log-rank p" else f"{x:.4f}".rstrip("0").rstrip(".")


def rows_to_csv(rows: list[CheckRow]) -> str:
    """The check table as CSV text (fixed columns, byte-stable)."""
    lines = [",".join(COLUMNS)]
    for r in rows:
        note = f'"{r.note}"' if "," in r.note else r.note
        lines.append(
            ",".join(
                [
                    r.section,
                    r.arm,
                    r.statistic,
                    _num(r.published, r.statistic),
                    _num(r.replicate1, r.statistic),
                    _num(r.min, r.statistic),
                    _num(r.max, r.statistic),
                    note,
                    _num(r.tolerance, "tol"),
                    r.verdict,
                ]
            )
        )
    return "\n".join(lines) + "\n"


def format_check(trial: Trial, rows: list[CheckRow], engine: str, replicates: int) -> str:
    """Human-readable table (what ``kmbayes reconstruct`` prints)."""
    head = f"{trial.name}: {engine} engine, {replicates} replicate{'s' if replicates != 1 else ''}"
    multi = replicates > 1
    cols = ["arm", "statistic", "published", "reconstructed", "tolerance", "verdict"] + (
        ["min-max (replicates)"] if multi else [])
    body = []
    held = False
    for r in rows:
        if r.section == "held_out" and not held:
            body.append(None)
            held = True
        rng_txt = f"{_num(r.min, r.statistic)}-{_num(r.max, r.statistic)}"
        line = [r.arm, r.statistic, _num(r.published, r.statistic) or "-", _num(r.replicate1, r.statistic),
                _num(r.tolerance, "tol"), r.verdict]
        if multi:
            line.append(rng_txt)
        body.append(line)
    widths = [max(len(c), *(len(x[i]) for x in body if x)) for i, c in enumerate(cols)]

    def fmt(xs):
        return "  ".join(x.ljust(w) for x, w in zip(xs, widths)).rstrip()

    out = [head, fmt(cols), fmt(["-" * w for w in widths])]
    for line in body:
        if line is None:
            out.append(f"-- {HELD_OUT}:")
        else:
            out.append(fmt(line))
    return "\n".join(out)
