"""Number formats shared by the report's prose and tables.

One precision per kind of number, so the same quantity reads the same way in
every sentence and table: hazard ratios and ratios 2 decimals, survival
probabilities and their differences 3, times (RMST, medians, follow-up) 1,
probabilities as percentages with 1 decimal. Missing values print as an em
dash (never ``nan``).
"""

from __future__ import annotations

import math

DASH = "—"


def missing(x) -> bool:
    """True for None, NaN, empty strings and anything that is not a number."""
    if x is None:
        return True
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def blank(x) -> bool:
    """True for None, a NaN float, or an empty / ``nan`` string (text cells read by pandas)."""
    if x is None:
        return True
    if isinstance(x, float):
        return math.isnan(x)
    return str(x).strip().lower() in ("", "nan", "none")


def text(x) -> str:
    """A text cell: the dash when blank."""
    return DASH if blank(x) else str(x)


def num(x, nd: int = 2) -> str:
    """``x`` with ``nd`` decimals; a dash when missing; ``∞`` for infinity."""
    if missing(x):
        return DASH
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    s = f"{x:.{nd}f}"
    return "0" + s[2:] if s.startswith("-0") and float(s) == 0 else s.replace("-", "−")


def pct(x) -> str:
    """A probability as a percentage (1 decimal; ``>99.9%`` and ``<0.1%`` at the ends)."""
    if missing(x):
        return DASH
    x = float(x)
    if x > 0.999:
        return ">99.9%"
    if x < 0.001:
        return "<0.1%"
    return f"{100 * x:.1f}%"


def eq_pct(x) -> str:
    """``= 95.3%``, or ``> 99.9%`` / ``< 0.1%`` at the ends (so no ``= >99.9%``)."""
    p = pct(x)
    return p[0] + " " + p[1:] if p[0] in "<>" else ("= " + p if p != DASH else "not estimable")


def interval(est, lo, hi, nd: int = 2, label: str = "") -> str:
    """``est (label lo to hi)``; just ``est`` when the bounds are missing."""
    if missing(lo) or missing(hi):
        return num(est, nd)
    return f"{num(est, nd)} ({label + ' ' if label else ''}{num(lo, nd)} to {num(hi, nd)})"


def decimals_for(quantity: str) -> int:
    """Decimals of a quantity by its kind (see module docstring)."""
    q = quantity.lower()
    if q.startswith(("surv", "delta_s", "s(", "cure_frac", "cure_diff")):
        return 3
    if q.startswith(("rmst", "delta_rmst", "median")):
        return 1
    return 2


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown pipe table (cells must not contain ``|``)."""
    clean = [[str(c).replace("|", "/") for c in r] for r in rows]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in clean]
    return "\n".join(out)


def join_words(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
