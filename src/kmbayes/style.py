"""House style for the figures: sizes, fonts and one colour-blind-safe palette.

Every figure draws its colours from here so that an arm, a prior set or a
model has the same colour in every figure of the report, and one colour has
one meaning: arms are blues (light reference, dark treatment) and nothing
else is blue; prior sets get distinct non-blue hues; a treatment effect
(HR over time, RMST difference) is purple; greys are for references and
annotations. Colours come from the Okabe-Ito palette (Okabe & Ito 2008),
Paul Tol's schemes and ColorBrewer blues, which stay distinguishable under
the common colour-vision deficiencies and in greyscale print.

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

# One colour, one meaning: arms are blues (and only arms are blue), prior sets
# are distinct non-blue hues, and the treatment effect (HR over time, RMST
# difference) has its own colour. Reference arm light, treatment arm dark, so
# the arms stay apart in greyscale and under every colour-vision deficiency.
REFERENCE_ARM_COLOUR = "#6BAED6"
TREATMENT_ARM_COLOUR = "#08519C"

ARM_PALETTE = (REFERENCE_ARM_COLOUR, TREATMENT_ARM_COLOUR, "#2B8CBE", "#9ECAE1", "#084081",
               "#4292C6")
"""Arm colours in arm order (reference first); more than six arms cycle."""

PRIOR_COLOURS: dict[str, str] = {
    "reference": "#000000",
    "sceptical": "#009E73",
    "enthusiastic": "#E69F00",
    "pessimistic": "#CC79A7",
}
"""Named prior sets (Okabe-Ito). Black for the reference prior: it is the
default reading."""

# For prior sets outside the named four: Okabe-Ito vermillion and Tol hues,
# none of them blue, so no prior is ever mistaken for an arm.
_EXTRA_COLOURS = ("#D55E00", "#882255", "#999933", "#AA4499", "#DDCC77", "#661100")

PRIOR_PALETTE = (*PRIOR_COLOURS.values(), *_EXTRA_COLOURS)
"""Every colour a prior set can get."""

PRIOR_ORDER = ("reference", "sceptical", "enthusiastic", "pessimistic")

MODEL_LABELS: dict[str, str] = {
    "exponential_ph": "Exponential PH",
    "weibull_ph": "Weibull PH",
    "gompertz_ph": "Gompertz PH",
    "piecewise_ph": "Piecewise-exponential PH",
    "piecewise_tv": "Piecewise-exponential, time-varying HR",
    "smooth_tv": "Smooth time-varying HR",
    "cure": "Cure (uncured HR)",
    "spline_ph": "Royston-Parmar spline PH",
    "loglogistic_aft": "Log-logistic AFT",
    "lognormal_aft": "Log-normal AFT",
    "weibull_aft": "Weibull AFT",
}
"""Display names for model ids (as in the report); unknown ids are prettified."""

EFFECT_COLOUR = "#762A83"
"""Tol purple: a posterior treatment effect (the HR over time, the RMST
difference); neither an arm nor a prior."""

TIME_VARYING_COLOUR = EFFECT_COLOUR
"""The time-varying HR (an effect); kept for older notebooks."""

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
    # Labels come from trial files: "$" must print as "$", never start mathtext.
    "text.parse_math": False,
    # No timestamps or versions in the files: same inputs, same bytes.
    "svg.hashsalt": "kmbayes",
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
    return {a: ARM_PALETTE[i % len(ARM_PALETTE)] for i, a in enumerate(ids)}


def prior_colours(priors: Iterable[str]) -> dict[str, str]:
    """Colours for prior sets: the named four fixed, others from a spare pool."""
    out: dict[str, str] = {}
    spare = iter(_EXTRA_COLOURS * 8)
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
