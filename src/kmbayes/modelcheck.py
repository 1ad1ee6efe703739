"""Checks of the fitted grid against the data and the publication, and the model-free anchors.

Run after the grid is fitted; every table is written with the fits' tables:

* ``ppc.csv`` -- every model x prior against every published landmark and
  median (:mod:`kmbayes.ppc`): model-implied value, replicated-data
  predictive interval, verdict;
* ``anchors.csv`` -- Kaplan-Meier ΔS at each milestone and ΔRMST at each
  horizon with Wald and Bayesian-bootstrap intervals (:mod:`kmbayes.anchors`):
  what the reconstructed data say without a model;
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
