"""House style for the figures: sizes, fonts and one colour-blind-safe palette.

Every figure draws its colours from here so that an arm, a prior set or a
model has the same colour in every figure of the report. Colours come from the
Okabe-Ito palette (Okabe & Ito 2008) and Paul Tol's qualitative schemes, which
stay distinguishable under the common colour-vision deficiencies and in
greyscale print.

Sizes are journal sizes: a single column is 3.5 in wide and a double column
7.2 in; text is 7-8 pt at that size, so figures are drawn at print size and
never scaled down.

This module imports nothing heavy, so the trial-level code may use the names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SINGLE_COLUMN = 3.5
"""Width of a single journal column, inches."""

DOUBLE_COLUMN = 7.2
"""Width of a double (full-page) journal column, inches."""

DPI = 300
"""Raster resolution of saved PNGs."""

# Okabe-Ito. Blue/vermillion for the two arms: the pair most robust to every
# colour-vision deficiency and still distinct in greyscale (dark vs mid).
REFERENCE_ARM_COLOUR = "#0072B2"
TREATMENT_ARM_COLOUR = "#D55E00"

PRIOR_COLOURS: dict[str, str] = {
    "reference": "#000000",
    "sceptical": "#009E73",
    "enthusiastic": "#E69F00",
    "pessimistic": "#CC79A7",
}
"""Named prior sets. Black for the reference prior: it is the default reading."""

# For prior sets outside the named four; none of these clash with arm colours.
_EXTRA_COLOURS = ("#56B4E9", "#882255", "#999933", "#44AA99", "#AA4499", "#DDCC77")

PRIOR_ORDER = ("reference", "sceptical", "enthusiastic", "pessimistic")

MODEL_LABELS: dict[str, str] = {
    "exponential_ph": "Exponential PH",
    "weibull_ph": "Weibull PH",
    "gompertz_ph": "Gompertz PH",
    "piecewise_ph": "Piecewise-exponential PH",
    "piecewise_tv": "Piecewise-exponential, time-varying HR",
    "spline_ph": "Royston-Parmar spline PH",
    "loglogistic_aft": "Log-logistic AFT",
    "lognormal_aft": "Log-normal AFT",
    "weibull_aft": "Weibull AFT",
}
"""Display names for model ids (as in the report); unknown ids are prettified."""

TIME_VARYING_COLOUR = "#332288"
"""Tol indigo: the time-varying HR, distinct from both arm colours."""

NEUTRAL = "#4D4D4D"
LIGHT = "#BBBBBB"
LIKELIHOOD_COLOUR = "#777777"

RC: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3,
    "ytick.major.size": 3,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "lines.linewidth": 1.2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlelocation": "left",
    "axes.titleweight": "bold",
    "legend.frameon": False,
    "legend.handlelength": 1.8,
    "savefig.dpi": DPI,
    "figure.dpi": 100,
    # Editable text in vector output: type 42 embeds TrueType, not outlines.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}
"""Matplotlib rc settings applied (as a context) while each figure is drawn."""


def arm_colours(arm_ids: Iterable[str]) -> dict[str, str]:
    """Colours for a trial's arms, reference arm first.

    Parameters
    ----------
    arm_ids : iterable of str
        Arm ids in ``Trial.arm_ids`` order (reference first).

    Returns
    -------
    dict
        Arm id to hex colour.
    """
    ids = list(arm_ids)
    pool = [REFERENCE_ARM_COLOUR, TREATMENT_ARM_COLOUR, *_EXTRA_COLOURS]
    return {a: pool[i % len(pool)] for i, a in enumerate(ids)}


def prior_colours(priors: Iterable[str]) -> dict[str, str]:
    """Colours for prior sets: the named four fixed, others from a spare pool."""
    out: dict[str, str] = {}
    spare = iter(_EXTRA_COLOURS * 4)
    for p in priors:
        out[p] = PRIOR_COLOURS.get(p) or next(spare)
    return out


def prior_label(prior: str) -> str:
    """Display name of a prior set (``"sceptical"`` -> ``"Sceptical"``)."""
    return prior.replace("_", " ").capitalize()


def model_label(model: str) -> str:
    """Display name of a model id."""
    return MODEL_LABELS.get(model) or model.replace("_", " ").capitalize()


def wrap_label(text: str, max_chars: int) -> str:
    """Break a label into lines of at most ``max_chars`` where possible.

    Lines break after a comma first, then at spaces and after hyphens, so
    "Piecewise-exponential PH" can become "Piecewise-" / "exponential PH".
    """
    if len(text) <= max_chars:
        return text
    if ", " in text:
        head, tail = text.split(", ", 1)
        if len(head) < max_chars + 1:
            return f"{head},\n{wrap_label(tail, max_chars)}"
    words = re.findall(r"[^\s-]+-?", text)
    lines: list[str] = []
    for w in words:
        if lines and len(lines[-1]) + len(w) + (0 if lines[-1].endswith("-") else 1) <= max_chars:
            lines[-1] += w if lines[-1].endswith("-") else f" {w}"
        else:
            lines.append(w)
    return "\n".join(lines)


def order_priors(priors: Iterable[str]) -> list[str]:
    """Named prior sets in their canonical order, then any others as given."""
    ps = list(dict.fromkeys(priors))
    known = [p for p in PRIOR_ORDER if p in ps]
    return known + [p for p in ps if p not in PRIOR_ORDER]


def order_models(models: Iterable[str]) -> list[str]:
    """Models in the order of :data:`MODEL_LABELS` (simple to flexible), then others."""
    ms = list(dict.fromkeys(models))
    known = [m for m in MODEL_LABELS if m in ms]
    return known + [m for m in ms if m not in MODEL_LABELS]


def lookup(mapping: Mapping[str, str], key: str, default: str = NEUTRAL) -> str:
    """``mapping[key]`` or a neutral grey."""
    return mapping.get(key, default)
