"""Reconstructed patient-level data (IPD CSV) -> arrays the models use.

The CSV has columns ``time,event,arm`` and optionally ``replicate`` (1..K, one
plausible reconstruction each). Every problem raises
:class:`~kmbayes.errors.InputError` naming the column, so the CLI prints one
line and exits with code 2.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

REQUIRED = ("time", "event", "arm")


@dataclass(frozen=True, eq=False)
class SurvivalData:
    """Two-arm right-censored survival data.

    Attributes
    ----------
    time : ndarray of float, shape (n,)
        Follow-up time (event or censoring), > 0.
    event : ndarray of float, shape (n,)
        1 for an event (death), 0 for censoring.
    arm : ndarray of int, shape (n,)
        0 for the reference arm, 1 for the treatment arm.
    arm_ids : tuple of str
        ``(reference, treatment)`` as in the CSV.
    time_unit : str
        Unit of ``time`` (display only).
    replicate : int or None
        Reconstruction replicate this data set is, if any.
    """

    time: np.ndarray
    event: np.ndarray
    arm: np.ndarray
    arm_ids: tuple[str, str] = ("reference", "treatment")
    time_unit: str = "months"
    replicate: int | None = None
    arm_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        t = np.asarray(self.time, dtype=float)
        d = np.asarray(self.event, dtype=float)
        a = np.asarray(self.arm, dtype=np.int64)
        if not (t.shape == d.shape == a.shape) or t.ndim != 1:
            raise InputError("time", "time, event and arm must be 1-D arrays of equal length")
        if t.size == 0:
            raise InputError("time", "no patients")
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise InputError("time", "times must be finite and >= 0")
        if not np.all(np.isin(d, (0.0, 1.0))):
            raise InputError("event", "event must be 0 or 1")
        if not np.all(np.isin(a, (0, 1))):
            raise InputError("arm", "arm index must be 0 (reference) or 1 (treatment)")
        # An event at time 0 has log h(0) = -inf under a Weibull with shape > 1;
        # the reconstruction can round very early deaths to 0, so floor them at a
        # negligible fraction of follow-up (1e-4 x max time) instead of failing.
        floor = 1e-4 * max(float(t.max()), 1.0)
        t = np.maximum(t, floor)
        for name, v in (("time", t), ("event", d), ("arm", a)):
            v.flags.writeable = False
            object.__setattr__(self, name, v)

    # ------------------------------------------------------------------ summaries
    @property
    def n(self) -> int:
        return int(self.time.size)

    @property
    def reference(self) -> str:
        return self.arm_ids[0]

    @property
    def treatment(self) -> str:
        return self.arm_ids[1]

    def label(self, arm: str) -> str:
        """Display label of an arm (falls back to its id)."""
        return self.arm_labels.get(arm, arm)

    def counts(self) -> dict[str, tuple[int, int]]:
        """``{arm: (n, events)}``."""
        return {
            arm_id: (int(np.sum(self.arm == k)), int(self.event[self.arm == k].sum()))
            for k, arm_id in enumerate(self.arm_ids)
        }

    def digest(self) -> str:
        """SHA-256 of the arrays (the data part of a fit's cache key)."""
        h = hashlib.sha256()
        for v in (self.time, self.event, self.arm.astype(np.float64)):
            h.update(np.ascontiguousarray(v, dtype=np.float64).tobytes())
        h.update("|".join(self.arm_ids).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------ piecewise
    def exposure(self, cuts) -> np.ndarray:
        """Per-patient time at risk in each interval, shape (n, J).

        ``cuts`` are the interval boundaries ``0 = c_0 < c_1 < ... < c_J`` (the
        last may be ``inf``).
        """
        c = np.asarray(cuts, dtype=float)
        lo, hi = c[:-1], c[1:]
        return np.clip(np.minimum(self.time[:, None], hi[None, :]) - lo[None, :], 0.0, None)

    def event_matrix(self, cuts) -> np.ndarray:
        """Per-patient event indicator by interval, shape (n, J) (one 1 per event)."""
        c = np.asarray(cuts, dtype=float)
        j = np.searchsorted(c, self.time, side="left") - 1
        j = np.clip(j, 0, len(c) - 2)
        out = np.zeros((self.n, len(c) - 1))
        out[np.arange(self.n), j] = self.event
        return out

    def aggregate(self, cuts) -> tuple[np.ndarray, np.ndarray]:
        """Events and exposure per arm x interval, each shape (2, J).

        These are sufficient statistics of the piecewise-exponential
        likelihood: the Poisson form costs O(J), not O(n), per gradient.
        """
        e = self.exposure(cuts)
        d = self.event_matrix(cuts)
        onehot = np.stack([self.arm == 0, self.arm == 1]).astype(float)
        return onehot @ d, onehot @ e


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise InputError("file", f"IPD file not found: {path}")
    try:
        df = pd.read_csv(path)
    except Exception as ex:  # pandas raises a zoo of parser errors
        raise InputError("file", f"cannot parse {path.name} as CSV: {ex.__class__.__name__}") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    for col in REQUIRED:
        if col not in df.columns:
            raise InputError(col, f"column missing from {path.name} (found: {', '.join(df.columns)})")
    if len(df) == 0:
        raise InputError("time", f"{path.name} has no rows")
    t = pd.to_numeric(df["time"], errors="coerce")
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise InputError("time", f"row {i + 1}: not a number: {df['time'].iloc[i]!r}")
    if not np.all(np.isfinite(t)) or (t < 0).any():
        raise InputError("time", "times must be finite and >= 0")
    ev = pd.to_numeric(df["event"], errors="coerce")
    if ev.isna().any() or not ev.isin([0, 1]).all():
        bad = ~ev.isin([0, 1]) | ev.isna()
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError("event", f"row {i + 1}: must be 0 or 1, got {df['event'].iloc[i]!r}")
    arm = df["arm"].astype(str).str.strip()
    if (arm == "").any() or df["arm"].isna().any():
        raise InputError("arm", "empty arm id")
    rep = None
    if "replicate" in df.columns:
        rep = pd.to_numeric(df["replicate"], errors="coerce")
        if rep.isna().any() or (rep != np.round(rep)).any() or (rep < 1).any():
            raise InputError("replicate", "replicate must be an integer >= 1")
        rep = rep.astype(int).to_numpy()
    return t.to_numpy(float), ev.to_numpy(float), arm.to_numpy(), rep


def load_ipd(
    path: str | Path,
    reference_arm: str | None = None,
    treatment_arm: str | None = None,
    *,
    time_unit: str = "months",
    arm_labels: dict[str, str] | None = None,
) -> list[SurvivalData]:
    """Read an IPD CSV; one :class:`SurvivalData` per replicate.

    Parameters
    ----------
    path : path-like
        CSV with columns ``time,event,arm`` and optionally ``replicate``.
    reference_arm, treatment_arm : str, optional
        Arm ids. If omitted, the arms are taken in sorted order (and a trial
        file should really be used to say which is the reference).
    time_unit : str
        Unit of ``time``.
    arm_labels : dict, optional
        Display labels by arm id.

    Returns
    -------
    list of SurvivalData
        One element without a ``replicate`` column; else one per replicate in
        increasing replicate order.

    Raises
    ------
    InputError
        Naming the column (``time``, ``event``, ``arm``, ``replicate``) or
        ``file``.
    """
    path = Path(path)
    t, ev, arm, rep = _read_csv(path)
    found = sorted(set(arm))
    if len(found) != 2:
        raise InputError("arm", f"expected exactly two arms, found {len(found)}: {', '.join(found)}")
    if reference_arm is None:
        reference_arm = treatment_arm and next(a for a in found if a != treatment_arm) or found[0]
    if reference_arm not in found:
        raise InputError("arm", f"reference arm {reference_arm!r} not in the data ({', '.join(found)})")
    if treatment_arm is None:
        treatment_arm = next(a for a in found if a != reference_arm)
    if treatment_arm not in found or treatment_arm == reference_arm:
        raise InputError("arm", f"treatment arm {treatment_arm!r} not in the data ({', '.join(found)})")
    a = (arm == treatment_arm).astype(np.int64)
    ids = (reference_arm, treatment_arm)
    labels = dict(arm_labels or {})
    if rep is None:
        return [SurvivalData(t, ev, a, ids, time_unit, None, labels)]
    out = []
    for r in np.unique(rep):
        m = rep == r
        if len(set(arm[m])) != 2:
            raise InputError("replicate", f"replicate {r} does not contain both arms")
        out.append(SurvivalData(t[m], ev[m], a[m], ids, time_unit, int(r), labels))
    return out


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def simulate_trial(
    rng: np.random.Generator,
    *,
    n=(59, 60),
    hazard=None,
    shape: float = 1.0,
    scale: float = 40.0,
    hr: float = 0.6,
    cuts=None,
    rates=None,
    hrs=None,
    accrual: float = 60.0,
    min_followup: float = 90.0,
    arm_ids=("systemic", "combined"),
) -> SurvivalData:
    """Simulate a CLOCC-like two-arm trial (tests, benchmarks, recovery).

    Either Weibull PH (``shape``, ``scale`` of the reference arm in months,
    ``hr``) or piecewise exponential (``cuts``, reference ``rates`` per
    interval and per-interval ``hrs``). Uniform accrual over ``accrual``
    months and administrative censoring ``min_followup`` months after the last
    patient, so follow-up runs from ``min_followup`` to ``accrual +
    min_followup`` (about CLOCC's 116-month median with the defaults).
    """
    n0, n1 = n
    arm = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    u = rng.uniform(size=n0 + n1)
    if cuts is None:
        # S(t) = exp(-(t/scale)^k * HR^arm) -> invert.
        mult = np.where(arm == 1, hr, 1.0)
        t = scale * (-np.log(u) / mult) ** (1.0 / shape)
    else:
        c = np.asarray(cuts, float)
        rates = np.asarray(rates, float)
        hrs = np.ones_like(rates) if hrs is None else np.asarray(hrs, float)
        target = -np.log(u)
        t = np.empty_like(target)
        for i in range(t.size):
            lam = rates * (hrs if arm[i] == 1 else 1.0)
            acc = 0.0
            for j in range(len(lam)):
                width = c[j + 1] - c[j]
                if not math.isfinite(width) or acc + lam[j] * width >= target[i]:
                    t[i] = c[j] + (target[i] - acc) / lam[j]
                    break
                acc += lam[j] * width
    entry = rng.uniform(0, accrual, size=t.size)
    cens = accrual + min_followup - entry
    time = np.minimum(t, cens)
    event = (t <= cens).astype(float)
    return SurvivalData(np.round(time, 3), event, arm, tuple(arm_ids))


def read_ipd(path: str | Path, trial=None):
    """Validated IPD as a pandas DataFrame (``time, event, arm[, replicate]``).

    With a :class:`~kmbayes.trial.Trial`, the arms must be the trial's arms.
    For figures and reports; models use :func:`load_ipd`.
    """
    import pandas as pd

    t, ev, arm, rep = _read_csv(Path(path))
    if trial is not None:
        unknown = sorted(set(arm) - set(trial.arms))
        if unknown:
            raise InputError("arm", f"arm(s) {', '.join(unknown)} not in the trial ({', '.join(trial.arms)})")
    df = pd.DataFrame({"time": t, "event": ev.astype(int), "arm": arm})
    if rep is not None:
        df["replicate"] = rep
    return df


def load_for_trial(path: str | Path, trial) -> list[SurvivalData]:
    """:func:`load_ipd` with arm ids, labels and time unit from a trial file."""
    return load_ipd(
        path,
        trial.reference_arm,
        trial.treatment_arm,
        time_unit=trial.time_unit,
        arm_labels={k: a.name for k, a in trial.arms.items()},
    )
