"""Checks of the fitted grid against the data and the publication, and the model-free anchors.

Run after the grid is fitted; every table is written with the fits' tables:

* ``ppc.csv`` -- every model x prior against every published landmark and
  median (:mod:`kmbayes.ppc`): model-implied value, replicated-data
  predictive interval, verdict;
* ``anchors.csv`` -- Kaplan-Meier ΔS at each milestone and ΔRMST at each
  horizon with Wald and Bayesian-bootstrap intervals (:mod:`kmbayes.anchors`):
  what the reconstructed data say without a model;
* ``cure_check.csv`` -- for the cure model: each prior's prior predictive
  distribution of the cure fractions and their difference (a prior
  predictive check, on the scale a clinician reads), and what the fitted
  cure fractions lean on (the length of each arm's final plateau and the
  patients still followed on it);
* ``ph_check.csv`` -- the Grambsch-Therneau test and window Cox HRs with
  deaths per window, each window marked ``pinned`` (published numbers at
  both ends) or ``interpolated`` (its shape is the reconstruction's
  assumption) (:mod:`kmbayes.ph_test`, :mod:`kmbayes.pinning`).

References
----------
Gelman A, Meng X-L, Stern H. Posterior predictive assessment of model fitness
via realized discrepancies. Stat Sin. 1996;6:733-807.
Grambsch PM, Therneau TM. Proportional hazards tests and diagnostics based
on weighted residuals. Biometrika. 1994;81:515-526.
Rubin DB. The Bayesian bootstrap. Ann Stat. 1981;9:130-134.
"""

from __future__ import annotations

import math

from . import anchors, ph_test, pinning, ppc
from .provenance import derive_seed

PPC_REPLICATES = 500


def ppc_rows(fits: dict, trial, seed: int) -> list[dict]:
    """PPC rows of every fit (``fits[(model, prior)]``), in grid order."""
    rows = []
    for (model, pname), fit in fits.items():
        rows += ppc.check_fit(fit, trial, replicates=PPC_REPLICATES,
                              seed=derive_seed(seed, "ppc", model, pname))
    return rows


def anchor_rows(data, milestones, horizons, seed: int) -> list[dict]:
    return anchors.km_anchors(data, milestones, horizons, seed=derive_seed(seed, "anchors"))


def ph_rows(data, cuts, trial) -> list[dict]:
    """One Grambsch-Therneau row, then a window Cox row per interval of ``cuts``."""
    rows = []
    try:
        gt = ph_test.grambsch_therneau(data, "km")
        rows.append({"test": "grambsch_therneau", "window": "all", "hr": gt["hr"], "lower": gt["lower"],
                     "upper": gt["upper"], "chi2": gt["chi2"], "p": gt["p"], "deaths_ref": math.nan,
                     "deaths_trt": math.nan, "at_risk_start": math.nan, "support": ""})
    except Exception as ex:  # a degenerate data set: say so in the table, do not sink the run
        rows.append({"test": "grambsch_therneau", "window": "all", "note": f"failed: {type(ex).__name__}"})
    windows = list(zip(cuts[:-1], cuts[1:]))
    support = pinning.interval_support(trial, cuts) if trial is not None else [""] * len(windows)
    for w, sup in zip(ph_test.window_cox(data, windows), support):
        rows.append({"test": "window_cox", "window": w["window"], "hr": w["hr"], "lower": w["lower"],
                     "upper": w["upper"], "chi2": math.nan, "p": w["p"], "deaths_ref": w["deaths_ref"],
                     "deaths_trt": w["deaths_trt"], "at_risk_start": w["at_risk_start"], "support": sup})
    return rows


PH_COLUMNS = ["test", "window", "hr", "lower", "upper", "chi2", "p", "deaths_ref", "deaths_trt",
              "at_risk_start", "support", "note"]


CURE_COLUMNS = ["kind", "prior", "arm", "quantity", "estimate", "lower", "upper", "note"]


def cure_rows(spec, data, seed: int) -> list[dict]:
    """Prior predictive summaries of the cure model per prior, and its plateau support per arm."""
    import numpy as np

    from .families import get
    from .families.cure import cure_support

    if "cure" not in spec.models:
        return []
    rows = []
    for pname, prior in spec.priors.items():
        # The cure model's own prior constants (the ones its pm.Data hold), drawn with
        # NumPy: logit pi_0 ~ N(cure0_mu, cure0_sd), delta ~ N(cure_mu, cure_sigma).
        v = get("cure").prior_values(prior)
        rng = np.random.default_rng(derive_seed(seed, "cure-prior", pname))
        l0 = rng.normal(v["cure0_mu"], v["cure0_sd"], 4000)
        l1 = l0 + rng.normal(v["cure_mu"], v["cure_sigma"], 4000)
        p0, p1 = 1 / (1 + np.exp(-l0)), 1 / (1 + np.exp(-l1))
        draws = {"cure_reference": p0, "cure_treatment": p1, "cure_difference": p1 - p0}
        for q in ("cure_reference", "cure_treatment", "cure_difference"):
            x = draws[q]
            lo, med, hi = np.quantile(x, [0.025, 0.5, 0.975])
            rows.append({"kind": "prior predictive", "prior": pname, "arm": "", "quantity": q,
                         "estimate": float(med), "lower": float(lo), "upper": float(hi), "note": ""})
        rows.append({"kind": "prior predictive", "prior": pname, "arm": "",
                     "quantity": "p_cure_difference_gt_0",
                     "estimate": float(np.mean(draws["cure_difference"] > 0)), "lower": math.nan,
                     "upper": math.nan, "note": ""})
    for arm_id, sup in cure_support(data).items():
        for q in ("plateau", "followed_after_last_event", "at_risk_last_event", "km_at_plateau"):
            rows.append({"kind": "support", "prior": "", "arm": arm_id, "quantity": q,
                         "estimate": float(sup[q]), "lower": math.nan, "upper": math.nan,
                         "note": "the cure fraction rests on the flat end of the Kaplan-Meier curve"})
    return rows
