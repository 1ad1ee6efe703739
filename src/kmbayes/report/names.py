"""Human names for the internal ids of models, quantities and tables.

The report never prints an internal id (``piecewise_ph``, ``surv_diff_96``):
every id in a table goes through :func:`model_name` or :func:`quantity_name`.
Prior ids are the run spec's own names (a custom prior is called what its
author called it), so they are printed as given.
"""

from __future__ import annotations

import re

MODEL_NAMES = {
    "weibull_ph": "Weibull PH",
    "piecewise_ph": "Piecewise-exponential PH",
    "piecewise_tv": "Piecewise-exponential, HR per interval",
    "smooth_tv": "Smooth time-varying HR",
    "cure": "Mixture cure",
}
STANDARD_PRIORS = ("reference", "sceptical", "enthusiastic", "pessimistic")
MODEL_ORDER = ("weibull_ph", "piecewise_ph", "piecewise_tv", "smooth_tv", "cure")


def model_name(model: str) -> str:
    """Short display name of a model family id (the id itself if unknown)."""
    return MODEL_NAMES.get(str(model), str(model).replace("_", " "))


def model_phrase(model: str) -> str:
    """The model as named in a sentence (lower case, spelled out; :data:`kmbayes.headline.MODEL_NAMES`)."""
    from ..headline import MODEL_NAMES as PHRASES

    return PHRASES.get(str(model), str(model).replace("_", " "))


def label_arms(text: str, trial) -> str:
    """``text`` with every arm id (a whole word) replaced by the arm's label."""
    for arm_id, arm in (getattr(trial, "arms", {}) or {}).items():
        text = re.sub(rf"\b{re.escape(arm_id)}\b", arm.name, text)
    return text


def arm_name(trial, arm_id: str) -> str:
    """The arm's label from the trial file (its id if it has none)."""
    arm = trial.arms.get(arm_id) if trial is not None else None
    return arm.name if arm is not None else arm_id


def _t(x: str, unit: str) -> str:
    return "∞" if x == "inf" else f"{x} {unit}".strip()


def quantity_name(q: str, trial=None) -> str:
    """Display name of a ``results.csv`` quantity, with arm labels and time units.

    Examples: ``hr`` -> ``HR``; ``p_hr_lt_0.8`` -> ``P(HR < 0.8)``;
    ``surv_diff_96`` -> ``ΔS(96 months)``; ``rmst_combined_60`` -> ``RMST(60
    months), <arm label>``; ``hr_12_24`` -> ``HR 12–24 months``.
    """
    unit = getattr(trial, "time_unit", "") if trial is not None else ""
    arms = sorted(getattr(trial, "arms", {}) or {}, key=len, reverse=True)
    fixed = {
        "hr": "HR", "hr_early": "HR, early", "hr_late": "HR, late",
        "hr_ratio_late_early": "Ratio of late to early HR",
        "p_hr_ratio_late_early_lt_1": "P(late/early HR ratio < 1)",
        "hr_avg_event_weighted": "Event-weighted average HR", "hr_uncured": "HR among the uncured",
        "cure_difference": "Difference in cure fraction", "cure_odds_ratio": "Odds ratio of cure",
        "p_cure_difference_gt_0": "P(cure difference > 0)",
    }
    if q in fixed:
        return fixed[q]
    if q.startswith("pooled_"):
        return quantity_name(q[len("pooled_"):], trial) + " (pooled)"
    if q.endswith("_width_ratio"):
        return "Interval width ratio, " + quantity_name(q[: -len("_width_ratio")], trial)
    if m := re.fullmatch(r"p_hr_lt_(.+)", q):
        return f"P(HR < {m.group(1)})"
    if m := re.fullmatch(r"hr_([0-9.]+)_([0-9.]+|inf)", q):
        a, b = m.groups()
        return f"HR {a}–{b} {unit}".strip() if b != "inf" else f"HR after {a} {unit}".strip()
    if m := re.fullmatch(r"(surv|rmst|delta_s|delta_rmst)_diff_([0-9.]+)", q) or re.fullmatch(
            r"(delta_s|delta_rmst)_()([0-9.]+)", q):
        kind = m.group(1)
        t = m.groups()[-1]
        return ("ΔS" if kind in ("surv", "delta_s") else "ΔRMST") + f"({_t(t, unit)})"
    if m := re.fullmatch(r"cure_(reference|treatment)", q):
        which = m.group(1)
        arm = (trial.reference_arm if which == "reference" else trial.treatment_arm) if trial else which
        return f"Cure fraction, {arm_name(trial, arm)}"
    for kind, label in (("surv", "S"), ("rmst", "RMST")):
        for a in arms:
            if q.startswith(f"{kind}_{a}_"):
                t = q[len(kind) + len(a) + 2:]
                return f"{label}({_t(t, unit)}), {arm_name(trial, a)}"
    for a in arms:
        if q == f"median_{a}":
            return f"Median ({unit}), {arm_name(trial, a)}" if unit else f"Median, {arm_name(trial, a)}"
    return q.replace("_", " ")


def model_sort_key(model: str) -> int:
    """Position of a model family in tables (simplest first; unknown families last)."""
    return MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
