"""Posterior predictive check of a fitted model against the publication.

The models are fitted to reconstructed IPD; the publication's own numbers --
Kaplan-Meier landmarks S(t) and medians per arm -- are the data that the
reconstruction was built to reproduce. This module asks whether a fitted
model could have produced them (Gelman, Meng and Stern 1996):

(a) *model-implied* value: posterior median and 95% interval of S_a(t)
    (``exp(-family.cumhaz)``) or of the median (``family.median``); this is
    the population quantity and ignores sampling noise;
(b) *replicated-data predictive* interval: for R posterior draws, simulate a
    replicated trial with the published number of patients per arm and the
    trial's censoring pattern, compute the same Kaplan-Meier statistic (KM
    S(t), KM median) and take the central 95% of the R values.

The verdict is ``ok`` if the published value lies in the predictive interval
and ``misfit`` otherwise. The interval is closed on the atoms of the discrete
KM statistic, and a published value stands for its rounding interval (0.089
for [0.0885, 0.0895]), so ``misfit`` means both predictive tail
probabilities P(rep <= published), P(rep >= published) -- the smaller is
``predictive_tail`` -- fall below 2.5%; ``in_implied`` says whether it lies in the
model-implied interval (a stricter check that ignores the noise in a
59-patient Kaplan-Meier estimate).

Replicated trials
-----------------
Event times: inverse CDF of each draw's cumulative hazard on a fine grid up
to the longest observed follow-up; ``E = -log U`` is located on the grid by
one ``searchsorted`` over all draws (rows are offset so that one sorted
array holds them all) and interpolated linearly. A time beyond the grid is
``inf``: it is censored anyway, because no censoring time exceeds the grid
(this also handles a cure model whose S(t) plateaus). Censoring times: drawn
from the reverse Kaplan-Meier of the IPD per arm (potential follow-up;
mass beyond its last time is put at the arm's longest follow-up). The
Kaplan-Meier statistics of all replicates are computed at once by sorting
each replicate.

References
----------
Gelman A, Meng X-L, Stern H. Posterior predictive assessment of model fitness
via realized discrepancies. Stat Sin. 1996;6:733-807.
Schemper M, Smith TL. A note on quantifying follow-up in studies of failure
time. Control Clin Trials. 1996;17:343-346 (reverse Kaplan-Meier).
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

from .io import write_text_atomic
from .km import km

LEVEL = 0.95
N_GRID = 4000
COLUMNS = (
    "model", "prior", "arm", "statistic", "published", "published_lower", "published_upper",
    "implied_median", "implied_lower", "implied_upper", "in_implied",
    "predictive_lower", "predictive_upper", "predictive_tail", "verdict",
)


# --------------------------------------------------------------------------- helpers


def _quantiles(x, level: float = LEVEL) -> tuple[float, float, float]:
    """(median, lower, upper); ``inverted_cdf`` when draws hold ``inf`` (median
    not reached), where linear interpolation would produce ``nan``."""
    x = np.asarray(x, float)
    a = (1.0 - level) / 2.0
    method = "linear" if np.all(np.isfinite(x)) else "inverted_cdf"
    q = np.quantile(x, [0.5, a, 1.0 - a], method=method)
    return float(q[0]), float(q[1]), float(q[2])


def _subset(post: dict, idx: np.ndarray) -> dict:
    return {k: np.asarray(v)[idx] for k, v in post.items()}


def _n_draws(post: dict) -> int:
    return min(np.shape(v)[0] for v in post.values())


# --------------------------------------------------------------------------- simulation


def sample_event_times(family, post, arm: int, ctx, n: int, rng, t_max: float,
                       n_grid: int = N_GRID) -> np.ndarray:
    """Event times, shape (S, n): n patients from each of the S draws in ``post``.

    Inverse CDF on a grid of ``n_grid`` points over [0, t_max] with linear
    interpolation of the cumulative hazard; times past ``t_max`` are ``inf``.
    """
    grid = np.linspace(0.0, float(t_max), n_grid)
    h = np.asarray(family.cumhaz(post, grid, arm, ctx), float)  # (S, G), non-decreasing
    h = np.nan_to_num(h, nan=0.0, posinf=1e300)
    h = np.maximum.accumulate(np.maximum(h, 0.0), axis=1)
    s = h.shape[0]
    target = rng.standard_exponential((s, n))  # -log U
    # One searchsorted for all draws: shift row r by r * span so the rows stay sorted.
    cap = float(np.max(target)) + 1.0
    hc = np.minimum(h, cap)
    span = cap + 1.0
    off = (np.arange(s) * span)[:, None]
    j = np.searchsorted((hc + off).ravel(), (target + off).ravel(), side="left")
    j = j.reshape(s, n) - (np.arange(s) * n_grid)[:, None]  # index of first H >= target
    beyond = j >= n_grid
    jc = np.clip(j, 1, n_grid - 1)
    rows = np.arange(s)[:, None]
    h0, h1 = hc[rows, jc - 1], hc[rows, jc]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(h1 > h0, (target - h0) / (h1 - h0), 0.0)
    t = grid[jc - 1] + np.clip(frac, 0.0, 1.0) * (grid[1] - grid[0])
    return np.where(beyond, np.inf, t)


def sample_censoring_times(time, event, shape, rng) -> np.ndarray:
    """Potential follow-up times from the reverse Kaplan-Meier of ``(time, event)``.

    Inverse CDF of the step function; the mass the reverse KM leaves beyond its
    last time goes to the longest observed follow-up.
    """
    rk = km(time, 1 - np.asarray(event).astype(int))
    v = rng.uniform(size=shape)
    # First timeline point where G(c) = P(C > c) <= v  (G non-increasing).
    i = np.searchsorted(-rk.surv, -v, side="left")
    return np.where(i < rk.time.size, rk.time[np.minimum(i, rk.time.size - 1)],
                    float(np.max(time)))


def replicate_km(times, events, landmarks=()) -> tuple[np.ndarray, np.ndarray]:
    """KM S(t) at ``landmarks`` and KM median for each row of (R, n) arrays.

    Returns ``(surv (R, L), median (R,))``; the median is ``inf`` when the
    curve stays above 0.5. Rows are sorted by time with events before
    censorings at tied times (the KM convention).
    """
    t = np.asarray(times, float)
    e = np.asarray(events, float)
    r, n = t.shape
    order = np.lexsort((-e, t), axis=-1)
    ts = np.take_along_axis(t, order, axis=1)
    es = np.take_along_axis(e, order, axis=1)
    # Position i has n - i at risk; tied deaths need no grouping because the
    # product (1 - 1/m)(1 - 1/(m-1)) = 1 - 2/m telescopes to the grouped KM step.
    at_risk = n - np.arange(n)
    surv = np.cumprod(1.0 - es / at_risk, axis=1)
    lm = np.asarray(landmarks, float)
    k = np.sum(ts[:, :, None] <= lm[None, None, :], axis=1)  # (R, L) points <= t
    s_at = np.where(k > 0, np.take_along_axis(surv, np.maximum(k - 1, 0), axis=1), 1.0)
    below = surv <= 0.5
    first = np.argmax(below, axis=1)
    med = np.where(below.any(axis=1), ts[np.arange(r), first], np.inf)
    return s_at, med


# --------------------------------------------------------------------------- the check


def check_against_publication(family, post, ctx, trial, data, *, model: str = "",
                              prior: str = "", replicates: int = 500, seed: int = 0,
                              level: float = LEVEL) -> list[dict]:
    """Posterior predictive check of one fit against the trial file's numbers.

    Parameters
    ----------
    family : kmbayes.families.Family
        Provides ``cumhaz(post, times, arm, ctx)`` and ``median(post, arm, ctx)``.
    post : dict of str -> ndarray
        Posterior draws flattened to shape (S, ...).
    ctx : dict
        ``{"t_ref": ..., "cuts": ...}`` as the family needs.
    trial : kmbayes.trial.Trial
        Published landmarks and medians per arm; arm sizes of the replicates.
    data : kmbayes.data.SurvivalData
        The (reconstructed) IPD: its per-arm reverse Kaplan-Meier is the
        censoring pattern and its longest follow-up the grid end. Arm 0 must
        be ``trial.reference_arm``.
    model, prior : str
        Labels copied into the rows.
    replicates : int
        Number of replicated trials (each from a different posterior draw,
        chosen without replacement when there are enough draws).
    seed : int
        Same seed, same rows.
    level : float
        Level of the implied and predictive intervals.

    Returns
    -------
    list of dict
        One row per published number with keys :data:`COLUMNS`: ``arm`` (trial
        arm id), ``statistic`` (``"S(36)"``, ``"median"``), ``published`` and
        its CI, ``implied_*`` (posterior of the population value),
        ``in_implied`` (bool), ``predictive_lower``/``upper`` (replicated KM
        statistic), ``predictive_tail`` (the smaller predictive tail
        probability of the published value, a posterior predictive p-value
        per side) and ``verdict`` (``"ok"`` / ``"misfit"``).

    Notes
    -----
    The posterior was fitted to IPD reconstructed to match these very
    numbers, so the check is conservative (data used twice): a ``misfit``
    is a real lack of fit, an ``ok`` is weak evidence of fit.

    References
    ----------
    Gelman A, Meng X-L, Stern H. Stat Sin. 1996;6:733-807.
    """
    if tuple(data.arm_ids) != tuple(trial.arm_ids):
        raise ValueError(f"data arms {data.arm_ids} do not match the trial's {tuple(trial.arm_ids)}")
    rng = np.random.default_rng(seed)
    s_total = _n_draws(post)
    idx = rng.choice(s_total, size=replicates, replace=replicates > s_total)
    sub = _subset(post, idx)
    t_max = float(np.max(data.time))
    rows = []
    for k, arm_id in enumerate(trial.arm_ids):
        arm = trial.arms[arm_id]
        m = data.arm == k
        lms = [lm.time for lm in arm.survival]
        # (b) replicated trials of the published size with this arm's censoring.
        t_ev = sample_event_times(family, sub, k, ctx, arm.n, rng, t_max)
        c = sample_censoring_times(data.time[m], data.event[m], t_ev.shape, rng)
        rep_s, rep_med = replicate_km(np.minimum(t_ev, c), (t_ev <= c).astype(float), lms)
        # (a) model-implied population values from all draws.
        if lms:
            implied_s = np.exp(-np.asarray(family.cumhaz(post, np.asarray(lms, float), k, ctx)))
        for j, lm in enumerate(arm.survival):
            rows.append(_row(model, prior, arm_id, f"S({lm.time:g})", lm.estimate, lm.lower,
                             lm.upper, implied_s[:, j], rep_s[:, j], level))
        if arm.median is not None:
            med = arm.median
            rows.append(_row(model, prior, arm_id, "median", med.estimate, med.lower, med.upper,
                             family.median(post, k, ctx), rep_med, level))
    return rows


def check_fit(fit, trial, *, replicates: int = 500, seed: int = 0, level: float = LEVEL) -> list[dict]:
    """:func:`check_against_publication` for a :class:`kmbayes.fitting.FitResult`
    (or anything with ``model``, ``prior.name``, ``data``, ``ctx`` and ``idata``)."""
    from . import families
    from .estimands import posterior_arrays

    return check_against_publication(
        families.get(fit.model), posterior_arrays(fit), fit.ctx, trial, fit.data,
        model=fit.model, prior=getattr(fit.prior, "name", str(fit.prior)),
        replicates=replicates, seed=seed, level=level,
    )


def _half_unit(x: float) -> float:
    """Half a unit in the last published decimal (0.089 -> 0.0005, 40.5 -> 0.05).

    Trial-file numbers are decimal literals, so ``repr`` shows the digits the
    publication printed; a value given to full float precision gets ~0.
    """
    text = repr(float(x))
    if "e" in text or "." not in text:
        return 0.0
    return 0.5 * 10.0 ** -len(text.split(".")[1])


def _predictive(x, level: float) -> tuple[float, float]:
    """Closed predictive interval of a discrete statistic.

    KM S(t) and KM medians of ~60 patients take few values (steps of ~1/60),
    so interpolated quantiles would cut through an atom. The lower end is the
    smallest replicate with P(rep <= lower) >= a, the upper the largest with
    P(rep >= upper) >= a: a published value is inside iff neither predictive
    tail probability is below a (a = (1 - level) / 2).
    """
    x = np.asarray(x, float)
    a = (1.0 - level) / 2.0
    lo = np.quantile(x, a, method="inverted_cdf")
    hi = -np.quantile(-x, a, method="inverted_cdf")
    return float(lo), float(hi)


def _row(model, prior, arm_id, stat, pub, pub_lo, pub_hi, implied, predictive, level) -> dict:
    im, ilo, ihi = _quantiles(implied, level)
    plo, phi = _predictive(predictive, level)
    # The published value is rounded: it stands for [pub - u, pub + u].
    u = _half_unit(pub)
    rep = np.asarray(predictive, float)
    tail = min(np.mean(rep <= pub + u), np.mean(rep >= pub - u))
    return {
        "model": model, "prior": prior, "arm": arm_id, "statistic": stat,
        "published": float(pub),
        "published_lower": math.nan if pub_lo is None else float(pub_lo),
        "published_upper": math.nan if pub_hi is None else float(pub_hi),
        "implied_median": im, "implied_lower": ilo, "implied_upper": ihi,
        "in_implied": bool(ilo <= pub + u and pub - u <= ihi),
        "predictive_lower": plo, "predictive_upper": phi,
        "predictive_tail": float(tail),
        "verdict": "ok" if plo <= pub + u and pub - u <= phi else "misfit",
    }


def misfitting(rows) -> set[tuple[str, str]]:
    """``{(model, prior)}`` with at least one ``misfit`` row."""
    return {(r["model"], r["prior"]) for r in rows if r["verdict"] == "misfit"}


def _cell(v, digits: int) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""  # missing (e.g. no published CI): an empty cell, never "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"  # a median not reached
        return f"{v:.{digits}f}"
    return str(v)


def format_ppc_csv(rows, digits: int = 3) -> str:
    """CSV text of :func:`check_against_publication` rows (columns :data:`COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(r[c], digits) for c in COLUMNS])
    return buf.getvalue()


def write_ppc_csv(rows, path, digits: int = 3) -> None:
    """Write the rows atomically (a reader never sees a half-written file)."""
    write_text_atomic(path, format_ppc_csv(rows, digits))
