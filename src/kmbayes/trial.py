"""The trial file: what a publication reports, as TOML.

This module is the contract other tools write to. It parses and validates a
trial file and returns a frozen :class:`Trial`. Every problem raises
:class:`~kmbayes.errors.InputError` naming the offending field, so the CLI can
print one line and exit with code 2.

Layout (times in ``trial.time_unit``)::

    [trial]
    name = "CLOCC (EORTC 40004)"
    endpoint = "overall survival"          # optional
    time_unit = "months"
    reference_arm = "systemic"             # HRs are <other arm> vs this arm
    citation = "..."                       # optional
    phase = "II"                           # optional: I, I/II, II, II/III, III or IV
    design = "randomized, open-label"      # optional: stated in the report as given
    ci = "log-log"                         # optional: CI type of every arm (see below)

    [followup]                             # optional
    median = 116.4                         # reverse Kaplan-Meier, all arms
    max = 150.0                            # optional: longest follow-up (assumption)
    accrual = 60.0                         # optional: accrual duration (assumption)

    [arms.combined]
    label = "..."                          # optional
    n = 60
    events = 39
    median = { estimate = 45.6, lower = 30.3, upper = 67.8 }   # bounds optional
    survival = [ { time = 36, estimate = 0.569, lower = 0.433, upper = 0.685 } ]
    at_risk = [ { time = 0, n = 60 }, { time = 12, n = 52 } ]   # optional
    curve = "curve.csv"                    # optional: digitized time,survival
    ci = "log-log"                         # optional: this arm's CI type (overrides [trial])

    [reported]                             # optional; NEVER used to reconstruct
    hazard_ratio = { estimate = 0.58, lower = 0.38, upper = 0.88 }
    p_value = 0.01

Survival CIs are 95% Greenwood intervals on the scale named by ``ci``
(per arm, else ``[trial]``, else ``"log-log"``):

* ``"log-log"`` (default) symmetric in ``log(-log S)`` (Kalbfleisch-Prentice;
  lifelines, SAS, Stata, R ``conf.type = "log-log"``);
* ``"log"`` symmetric in ``log S`` (R ``survival``'s default);
* ``"plain"`` symmetric in ``S`` (linear Greenwood interval);
* ``"arcsine"`` symmetric in ``asin(sqrt(S))``.

Median CIs are read as Brookmeyer-Crowley intervals built on the same
pointwise intervals. A landmark whose published bounds are not symmetric on
the declared scale (beyond what rounding of the three numbers explains) while
another scale fits gives a warning naming it (a symmetric interval declared
log-log, say): the reconstruction reads CIs as declared.

Checks made before reconstructing (:func:`reconstruction_checks`), each an
error naming the field unless said otherwise:

* an arm with events must publish something that times them (landmark
  survival, a median, an at-risk table or a curve): ``n`` and ``events``
  alone would put every death at an arbitrary time;
* numbers at risk cannot exceed the patients the published survival leaves
  alive (``n * S`` at a strictly earlier landmark, ``n / 2`` past the
  median);
* no published time (landmark, median, at-risk time, curve) may lie beyond
  ``followup.max``; reconstructed times never exceed it;
* a curve cannot fall by less than ``events / n`` (each death lowers a
  Kaplan-Meier curve by at least ``1 / n``): refused when it falls by less
  than half that (a curve flat at 1 with many events), warned below that.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, short
from .limits import LIMITS

PHASES = ("I", "I/II", "II", "II/III", "III", "IV")
ARM_ID = re.compile(r"[A-Za-z0-9_]{1,40}")  # used with fullmatch; ids name columns and files
CI_KINDS = ("log-log", "log", "plain", "arcsine")
# Rounded published values: a landmark estimate may sit this far on the "wrong"
# side of 0.5 relative to the median before we call the two inconsistent.
_ROUNDING = 0.006


@dataclass(frozen=True)
class Interval:
    """A point estimate with optional 95% bounds."""

    estimate: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class Landmark:
    """Kaplan-Meier survival at a landmark time, with optional 95% CI."""

    time: float
    estimate: float
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class AtRisk:
    """Number at risk at a time (from a figure's at-risk table)."""

    time: float
    n: int


@dataclass(frozen=True)
class Arm:
    """One arm's published summaries."""

    id: str
    n: int
    events: int
    label: str = ""
    median: Interval | None = None
    survival: tuple[Landmark, ...] = ()
    at_risk: tuple[AtRisk, ...] = ()
    curve: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)
    curve_path: str | None = None
    ci: str = "log-log"

    @property
    def name(self) -> str:
        """Label for display (falls back to the id)."""
        return self.label or self.id


@dataclass(frozen=True)
class Trial:
    """A parsed, validated trial file."""

    name: str
    time_unit: str
    reference_arm: str
    arms: dict[str, Arm]
    endpoint: str = "survival"
    citation: str = ""
    followup_median: float | None = None
    followup_max: float | None = None
    accrual: float | None = None
    reported_hr: Interval | None = None
    reported_p: float | None = None
    path: Path | None = None
    #: optional design facts (``[trial] phase``, ``design``); the report states
    #: them only when given, never guesses them
    phase: str = ""
    design: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def arm_ids(self) -> list[str]:
        """Arm ids, reference arm first."""
        return [self.reference_arm] + [a for a in self.arms if a != self.reference_arm]

    @property
    def treatment_arm(self) -> str:
        """The (first) non-reference arm: HRs are this arm vs the reference."""
        return self.arm_ids[1]

    @property
    def has_curves(self) -> bool:
        return all(a.curve is not None and a.at_risk for a in self.arms.values())


# --------------------------------------------------------------------------- helpers


def _type_name(v: Any) -> str:
    return {str: "string", bool: "boolean", list: "array", dict: "table"}.get(type(v), type(v).__name__)


def _num(v: Any, fld: str, *, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(fld, f"expected a number, got {_type_name(v)} {short(v)}")
    x = float(v)
    if not math.isfinite(x):
        raise InputError(fld, f"must be finite, got {v!r}")
    # Limit: no published number (time, count-like, ratio) is near 1e6 in any
    # unit; 1e300 overflowed downstream arithmetic.
    if abs(x) > LIMITS["time_max"]:
        raise InputError(fld, f"{v!r} is beyond the limit of {LIMITS['time_max']:g}")
    if lo is not None and x < lo:
        raise InputError(fld, f"must be >= {lo:g}, got {v!r}")
    if hi is not None and x > hi:
        raise InputError(fld, f"must be <= {hi:g}, got {v!r}")
    return x


def _int(v: Any, fld: str, *, lo: int = 0, hi: int | None = None) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(fld, f"expected an integer, got {_type_name(v)} {short(v)}")
    if v < lo:
        raise InputError(fld, f"must be >= {lo}, got {short(v)}")
    if hi is not None and v > hi:
        raise InputError(fld, f"{short(v)} is above the limit of {hi}")
    return v


def _str(v: Any, fld: str) -> str:
    if not isinstance(v, str):
        raise InputError(fld, f"expected a string, got {_type_name(v)} {short(v)}")
    if len(v) > LIMITS["label_chars_max"]:
        raise InputError(fld, f"longer than {LIMITS['label_chars_max']} characters")
    return v


def _table(v: Any, fld: str) -> dict:
    if not isinstance(v, dict):
        raise InputError(fld, f"expected a table, got {_type_name(v)}")
    return v


def _require(tbl: dict, key: str, fld: str) -> Any:
    if key not in tbl:
        raise InputError(f"{fld}.{key}" if fld else key, "missing (required)")
    return tbl[key]


def _bounds(est: float, tbl: dict, fld: str, *, lo: float, hi: float | None) -> tuple:
    lower = _num(tbl["lower"], f"{fld}.lower", lo=lo, hi=hi) if "lower" in tbl else None
    upper = _num(tbl["upper"], f"{fld}.upper", lo=lo, hi=hi) if "upper" in tbl else None
    if lower is not None and lower > est:
        raise InputError(f"{fld}.lower", f"CI lower bound {lower:g} exceeds the estimate {est:g}")
    if upper is not None and upper < est:
        raise InputError(f"{fld}.upper", f"CI upper bound {upper:g} is below the estimate {est:g}")
    return lower, upper


# --------------------------------------------------------------------------- parsing


def _parse_interval(v: Any, fld: str, *, lo: float = 0.0, hi: float | None = None) -> Interval:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = {"estimate": v}
    tbl = _table(v, fld)
    est = _num(_require(tbl, "estimate", fld), f"{fld}.estimate", lo=lo, hi=hi)
    lower, upper = _bounds(est, tbl, fld, lo=lo, hi=hi)
    return Interval(est, lower, upper)


def _parse_survival(v: Any, fld: str) -> tuple[Landmark, ...]:
    if not isinstance(v, list):
        raise InputError(fld, f"expected an array of tables, got {_type_name(v)}")
    if len(v) > LIMITS["curve_points_max"]:
        raise InputError(fld, f"{len(v)} entries, above the limit of {LIMITS['curve_points_max']}")
    out = []
    for i, item in enumerate(v):
        f = f"{fld}[{i}]"
        tbl = _table(item, f)
        t = _num(_require(tbl, "time", f), f"{f}.time", lo=0.0)
        est = _num(_require(tbl, "estimate", f), f"{f}.estimate", lo=0.0, hi=1.0)
        lower, upper = _bounds(est, tbl, f, lo=0.0, hi=1.0)
        out.append(Landmark(t, est, lower, upper))
    out.sort(key=lambda lm: lm.time)
    for a, b in zip(out, out[1:]):
        if a.time == b.time and a.estimate != b.estimate:
            raise InputError(fld, f"two different estimates at time {a.time:g}")
        if b.estimate > a.estimate:
            raise InputError(
                fld,
                f"survival rises with time ({a.estimate:g} at {a.time:g}, {b.estimate:g} at {b.time:g})",
            )
    return tuple(out)


def _parse_at_risk(v: Any, fld: str, n: int) -> tuple[AtRisk, ...]:
    if not isinstance(v, list):
        raise InputError(fld, f"expected an array of tables, got {_type_name(v)}")
    if len(v) > LIMITS["curve_points_max"]:
        raise InputError(fld, f"{len(v)} entries, above the limit of {LIMITS['curve_points_max']}")
    out = []
    for i, item in enumerate(v):
        f = f"{fld}[{i}]"
        tbl = _table(item, f)
        t = _num(_require(tbl, "time", f), f"{f}.time", lo=0.0)
        k = _int(_require(tbl, "n", f), f"{f}.n", lo=0, hi=LIMITS["arm_n_max"])
        out.append(AtRisk(t, k))
    out.sort(key=lambda a: a.time)
    for i, (a, b) in enumerate(zip(out, out[1:])):
        if a.time == b.time:
            raise InputError(f"{fld}[{i + 1}].time", f"duplicate at-risk time {a.time:g}")
        if b.n > a.n:
            raise InputError(f"{fld}[{i + 1}].n", f"numbers at risk rise ({a.n} then {b.n})")
    if out and out[0].n > n:
        raise InputError(f"{fld}[0].n", f"{out[0].n} at risk exceeds the arm's n = {n}")
    if out and out[0].time == 0 and out[0].n != n:
        raise InputError(f"{fld}[0].n", f"at risk at time 0 is {out[0].n}, but n = {n}")
    return tuple(out)


def _curve_file(curve_path: str, base: Path | None, fld: str) -> Path:
    """Where a ``curve`` entry points, confined to the trial file's directory.

    A trial file names its curve files relative to itself; an absolute path,
    ``..`` or a symlink leaving that directory let a trial file make
    ``kmbayes`` read (and echo parts of) any file, so they are refused.
    """
    from .io import check_path_length

    check_path_length(curve_path, fld)
    p = Path(curve_path)
    if p.is_absolute() or ".." in p.parts:
        raise InputError(fld, "must be a path relative to the trial file, inside its directory")
    if base is None:
        return p
    try:
        full = (base / p).resolve()
        inside = full.is_relative_to(Path(base).resolve())
    except (OSError, RuntimeError):
        raise InputError(fld, "cannot resolve the curve path") from None
    if not inside:
        raise InputError(fld, "must not point outside the trial file's directory (symlink)")
    return full


def read_curve(path: Path, fld: str) -> tuple[np.ndarray, np.ndarray]:
    """Read digitized points: two numeric columns, time and survival.

    A header row is optional (``time,survival`` or e.g. ``T,S``). Survival given
    in percent (max above 1.5) is divided by 100. Clicks may be noisy and
    non-monotone; the curve engine deals with that, this only checks numbers.
    """
    try:
        if not path.is_file():
            raise InputError(fld, f"curve file not found: {path.name}")
        if path.stat().st_size > LIMITS["curve_bytes_max"]:
            raise InputError(fld, f"{path.name} is larger than the limit of {LIMITS['curve_bytes_max']} bytes")
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError, ValueError) as ex:
        raise InputError(fld, f"cannot read curve file {path.name}: {ex.__class__.__name__}") from None
    rows = [r for r in (line.strip() for line in text.splitlines()) if r]
    if len(rows) > LIMITS["curve_points_max"] + 1:
        raise InputError(fld, f"{path.name} has {len(rows)} rows, above the limit of {LIMITS['curve_points_max']} points")
    ts, ss = [], []
    for i, row in enumerate(rows):
        parts = [p.strip().strip('"') for p in re.split(r"[,;\t ]+", row) if p.strip()]
        if len(parts) < 2:
            raise InputError(fld, f"{path.name} line {i + 1}: expected two columns")
        try:
            t, s = float(parts[0]), float(parts[1])
        except ValueError:
            if i == 0:
                continue  # header
            raise InputError(fld, f"{path.name} line {i + 1}: not a number") from None
        if not (math.isfinite(t) and math.isfinite(s)) or max(abs(t), abs(s)) > LIMITS["time_max"]:
            raise InputError(fld, f"{path.name} line {i + 1}: non-finite or out-of-range value")
        ts.append(t)
        ss.append(s)
    if len(ts) < 2:
        raise InputError(fld, f"{path.name}: fewer than two points")
    t_arr, s_arr = np.asarray(ts), np.asarray(ss)
    if s_arr.max() > 1.5:
        s_arr = s_arr / 100.0
    if t_arr.min() < -1e-9 * max(1.0, t_arr.max()) - 1e-6:
        raise InputError(fld, f"{path.name}: negative time {t_arr.min():g}")
    if s_arr.min() < -0.05 or s_arr.max() > 1.05:
        raise InputError(fld, f"{path.name}: survival outside [0, 1]")
    return np.clip(t_arr, 0, None), np.clip(s_arr, 0.0, 1.0)


def _ci_kind(v: Any, fld: str) -> str:
    kind = _str(v, fld)
    if kind not in CI_KINDS:
        raise InputError(fld, f"unknown CI type {kind!r} (one of {', '.join(CI_KINDS)})")
    return kind


def _parse_arm(arm_id: str, v: Any, base: Path | None, ci: str = "log-log") -> Arm:
    fld = f"arms.{arm_id}"
    if not ARM_ID.fullmatch(arm_id):  # fullmatch: '$' would accept a trailing newline
        raise InputError(fld, "arm id must be 1-40 letters, digits or underscores")
    tbl = _table(v, fld)
    ci = _ci_kind(tbl["ci"], f"{fld}.ci") if "ci" in tbl else ci
    n = _int(_require(tbl, "n", fld), f"{fld}.n", lo=LIMITS["arm_n_min"], hi=LIMITS["arm_n_max"])
    events = _int(_require(tbl, "events", fld), f"{fld}.events", lo=0, hi=LIMITS["arm_n_max"])
    if events > n:
        raise InputError(f"{fld}.events", f"{events} events exceed n = {n}")
    label = _str(tbl.get("label", ""), f"{fld}.label")
    median = _parse_interval(tbl["median"], f"{fld}.median") if "median" in tbl else None
    survival = _parse_survival(tbl.get("survival", []), f"{fld}.survival")
    at_risk = _parse_at_risk(tbl.get("at_risk", []), f"{fld}.at_risk", n)
    curve = None
    curve_path = None
    if "curve" in tbl:
        curve_path = _str(tbl["curve"], f"{fld}.curve")
        curve = read_curve(_curve_file(curve_path, base, f"{fld}.curve"), f"{fld}.curve")
    if median is not None:
        # The printed median is rounded: the curve crossed 0.5 within half a
        # unit of its last decimal.
        q = half_unit(median.estimate)
        for lm in survival:
            if lm.time < median.estimate - q and lm.estimate < 0.5 - _ROUNDING:
                raise InputError(
                    f"{fld}.median",
                    f"median {median.estimate:g} is inconsistent with S({lm.time:g}) = {lm.estimate:g}",
                )
            if lm.time > median.estimate + q and lm.estimate > 0.5 + _ROUNDING:
                raise InputError(
                    f"{fld}.median",
                    f"median {median.estimate:g} is inconsistent with S({lm.time:g}) = {lm.estimate:g}",
                )
    if survival and events == 0 and survival[-1].estimate < 1.0:
        raise InputError(f"{fld}.events", "0 events but survival falls below 1")
    return Arm(
        id=arm_id,
        n=n,
        events=events,
        label=label,
        median=median,
        survival=survival,
        at_risk=at_risk,
        curve=curve,
        curve_path=curve_path,
        ci=ci,
    )


def parse_trial(doc: dict, base: Path | None = None, path: Path | None = None) -> Trial:
    """Validate a parsed TOML document and return a :class:`Trial`."""
    trial_t = _table(_require(doc, "trial", ""), "trial")
    name = _str(_require(trial_t, "name", "trial"), "trial.name")
    time_unit = _str(_require(trial_t, "time_unit", "trial"), "trial.time_unit")
    reference = _str(_require(trial_t, "reference_arm", "trial"), "trial.reference_arm")
    endpoint = _str(trial_t.get("endpoint", "survival"), "trial.endpoint")
    citation = _str(trial_t.get("citation", ""), "trial.citation")
    phase = _str(trial_t.get("phase", ""), "trial.phase").strip()
    if phase and phase not in PHASES:
        raise InputError("trial.phase", f"expected one of {', '.join(PHASES)}, got {phase!r}")
    design = " ".join(_str(trial_t.get("design", ""), "trial.design").split())
    if len(design) > 200:
        raise InputError("trial.design", f"at most 200 characters, got {len(design)}")

    arms_t = _table(_require(doc, "arms", ""), "arms")
    if len(arms_t) < 2:
        raise InputError("arms", f"need at least two arms, found {len(arms_t)}")
    ci = _ci_kind(trial_t["ci"], "trial.ci") if "ci" in trial_t else "log-log"
    arms = {k: _parse_arm(k, v, base, ci) for k, v in arms_t.items()}
    if reference not in arms:
        raise InputError(
            "trial.reference_arm", f"{reference!r} is not an arm (arms: {', '.join(arms)})"
        )
    if len(arms) > 2:
        raise InputError("arms", f"exactly two arms are supported, found {len(arms)}")

    fu_med = fu_max = accrual = None
    if "followup" in doc:
        fu = _table(doc["followup"], "followup")
        if "median" in fu:
            fu_med = _num(fu["median"], "followup.median", lo=0.0)
        if "max" in fu:
            fu_max = _num(fu["max"], "followup.max", lo=0.0)
        if "accrual" in fu:
            accrual = _num(fu["accrual"], "followup.accrual", lo=0.0)
        if fu_med is not None and fu_max is not None and fu_max < fu_med:
            raise InputError("followup.max", f"{fu_max:g} is below the median follow-up {fu_med:g}")

    hr = p = None
    if "reported" in doc:
        rep = _table(doc["reported"], "reported")
        if "hazard_ratio" in rep:
            hr = _parse_interval(rep["hazard_ratio"], "reported.hazard_ratio", lo=1e-12)
        if "p_value" in rep:
            p = _num(rep["p_value"], "reported.p_value", lo=0.0, hi=1.0)

    return Trial(
        name=name,
        time_unit=time_unit,
        reference_arm=reference,
        arms=arms,
        endpoint=endpoint,
        citation=citation,
        followup_median=fu_med,
        followup_max=fu_max,
        accrual=accrual,
        reported_hr=hr,
        reported_p=p,
        path=path,
        phase=phase,
        design=design,
        warnings=tuple(w for a in arms.values() for w in ci_fit_warnings(a)),
    )


def load_trial(path: str | Path) -> Trial:
    """Read and validate a trial file.

    Raises
    ------
    InputError
        If the file is missing, empty, binary, not TOML, or inconsistent.
    """
    from .io import read_toml

    path = Path(path)
    doc = read_toml(path, what="trial file", max_bytes=LIMITS["trial_bytes_max"])
    return parse_trial(doc, base=path.parent, path=path)


# --------------------------------------------------------------------------- CI types


def _ci_scale(kind: str):
    """The transform a CI type is symmetric on, and its derivative."""
    if kind == "log-log":
        return (lambda s: np.log(-np.log(s))), (lambda s: 1.0 / (s * np.log(s)))
    if kind == "log":
        return np.log, (lambda s: 1.0 / s)
    if kind == "plain":
        return (lambda s: s), (lambda s: np.ones_like(s))
    return (lambda s: np.arcsin(np.sqrt(s))), (lambda s: 0.5 / np.sqrt(s * (1.0 - s)))


def half_unit(x: float, min_dec: int = 0) -> float:
    """Half a unit of the last decimal ``x`` was printed with (at least ``min_dec``, at most 6).

    Trial-file numbers are decimal literals, so ``repr`` shows the printed
    digits, except trailing zeros (a parsed ``6.0`` is ``6``).
    """
    r = repr(float(x))
    dec = min_dec
    if "e" not in r and "." in r:
        dec = max(dec, len(r.split(".")[1].rstrip("0")))
    return 0.5 * 10.0 ** -min(dec, 6)


def _half_unit(*xs: float) -> float:
    """Half a unit of the last decimal the numbers were printed with (>= 3 decimals)."""
    return min(half_unit(x, 3) for x in xs)


def ci_misfit(lm: Landmark, kind: str) -> float | None:
    """How far a landmark's CI is from symmetric on ``kind``'s scale, in rounding units.

    ``|g(upper) - g(S)| - |g(S) - g(lower)|`` divided by the most that
    rounding the three published numbers can change it (``r * (|g'(lo)| +
    2 |g'(S)| + |g'(hi)|)``, ``r`` half a unit of the last decimal). Values
    up to 1 are consistent with the type. ``None`` when a bound is missing
    or at 0 or 1 (clipped intervals say nothing about their scale).
    """
    lo, s, hi = lm.lower, lm.estimate, lm.upper
    if lo is None or hi is None or not (0.0 < lo < s < hi < 1.0):
        return None
    g, dg = _ci_scale(kind)
    x = np.array([lo, s, hi])
    gx, d = g(x), np.abs(dg(x))
    asym = abs(abs(gx[2] - gx[1]) - abs(gx[1] - gx[0]))
    r = _half_unit(lo, s, hi)
    return float(asym / (r * (d[0] + 2 * d[1] + d[2])))


def ci_fit_warnings(arm: Arm) -> list[str]:
    """Warnings for landmarks whose CI fits another type better than the declared one."""
    out = []
    for i, lm in enumerate(arm.survival):
        own = ci_misfit(lm, arm.ci)
        if own is None or own <= 1.0:
            continue
        fits = {k: ci_misfit(lm, k) for k in CI_KINDS if k != arm.ci}
        best = min(fits, key=lambda k: fits[k])
        if fits[best] <= 1.0:
            out.append(
                f"arms.{arm.id}.survival[{i}]: CI {lm.lower:g}-{lm.upper:g} around {lm.estimate:g} "
                f"is not a {arm.ci} interval (asymmetry {own:.1f} x rounding) but fits {best}; "
                f'set ci = "{best}" if that is how it was computed'
            )
    return out


# --------------------------------------------------------------------------- reconstruction checks


def reconstruction_checks(trial: Trial) -> list[str]:
    """Refuse (or warn about) a trial no reconstruction can honour.

    See the module docstring for the list. Returns warnings (strings naming
    the field); raises :class:`~kmbayes.errors.InputError` for a refusal.
    """
    warns: list[str] = []
    fu_max = trial.followup_max
    for arm in trial.arms.values():
        fld = f"arms.{arm.id}"
        if arm.events > 0 and not (arm.survival or arm.median or arm.at_risk or arm.curve is not None):
            raise InputError(
                fld,
                "only n and events are given: add landmark survival, a median, an at-risk "
                "table or a curve (nothing says when the deaths happened)",
            )
        # Patients at risk at t are alive just before t: Y(t) <= n S(t-) for
        # a Kaplan-Meier curve (each step multiplies S by 1 - d / Y while Y
        # falls by at least d), so at most n S at any strictly earlier landmark
        # (deaths at t itself are still at risk at t).
        for j, ar in enumerate(arm.at_risk):
            for lm in arm.survival:
                if 0 < lm.time < ar.time:
                    cap = arm.n * (lm.estimate + _half_unit(lm.estimate)) + 1
                    if ar.n > cap:
                        raise InputError(
                            f"{fld}.at_risk[{j}].n",
                            f"{ar.n} at risk at {ar.time:g} but S({lm.time:g}) = {lm.estimate:g} "
                            f"leaves at most {math.floor(cap)} of n = {arm.n} alive",
                        )
            if arm.median is not None:
                # A printed median may be up to half a unit of its last decimal early.
                q = arm.median.estimate + half_unit(arm.median.estimate)
                if ar.time > q + 1e-9 and ar.n > 0.5 * arm.n + 1:
                    raise InputError(
                        f"{fld}.at_risk[{j}].n",
                        f"{ar.n} at risk at {ar.time:g}, past the median {arm.median.estimate:g}, "
                        f"exceeds half of n = {arm.n}",
                    )
        if fu_max is not None:
            times = [(f"{fld}.survival[{i}].time", lm.time) for i, lm in enumerate(arm.survival)]
            times += [(f"{fld}.at_risk[{i}].time", a.time) for i, a in enumerate(arm.at_risk)]
            if arm.median is not None:
                times += [(f"{fld}.median", arm.median.estimate)]
            if arm.curve is not None:
                times += [(f"{fld}.curve", float(np.max(arm.curve[0])))]
            for f, t in times:
                if t > fu_max * (1 + 1e-9):
                    raise InputError(
                        f, f"time {t:g} lies beyond followup.max = {fu_max:g} (no one was followed that long)"
                    )
        if arm.curve is not None and arm.events > 0:
            # Each death lowers a KM curve by S / Y >= 1 / n.
            fall = 1.0 - float(np.min(arm.curve[1]))
            need = arm.events / arm.n
            if fall < 0.5 * need - 0.02:
                raise InputError(
                    f"{fld}.curve",
                    f"falls by only {fall:.3f} but {arm.events} events among n = {arm.n} "
                    f"need a fall of at least {need:.3f}",
                )
            if fall < need - 0.02:
                warns.append(
                    f"{fld}.curve: falls by only {fall:.3f} but {arm.events} events among "
                    f"n = {arm.n} need at least {need:.3f} (curve cut short?)"
                )
        for j, ar in enumerate(arm.at_risk):
            if arm.curve is not None and ar.time > 0:
                ct, cs = arm.curve
                before = cs[ct < ar.time]
                s_prev = float(np.min(before)) if before.size else 1.0
                if ar.n > arm.n * (s_prev + 0.03) + 1:
                    warns.append(
                        f"{fld}.at_risk[{j}].n: {ar.n} at risk at {ar.time:g} but the curve "
                        f"is at {s_prev:.3f} before it (at most {arm.n * s_prev:.0f} alive)"
                    )
    return warns
