"""Synthetic run outputs for the report tests: a trial, results, headline and check tables.

Everything is built from a few numbers so each test can change one input and
see the sentence change (no fits, no files from ../shared).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from kmbayes.priors import PriorSpec, prior_set
from kmbayes.trial import parse_trial

TREAT, REF = "newdrug", "control"


def trial(ci: bool = True, hr_ci: bool = True, phase: str | None = None, design: str | None = None,
          reported_hr: float | None = 0.75):
    """A two-arm trial file (months) with landmarks at 12 and 24 and medians; CIs optional."""
    def lm(t, s):
        d = {"time": t, "estimate": s}
        if ci:
            d |= {"lower": s - 0.08, "upper": s + 0.08}
        return d

    def med(m):
        return {"estimate": m} | ({"lower": m - 2.0, "upper": m + 3.0} if ci else {})

    tr = {"name": "SYNTH-1", "endpoint": "overall survival", "time_unit": "months", "reference_arm": REF}
    if phase:
        tr["phase"] = phase
    if design:
        tr["design"] = design
    doc = {
        "trial": tr,
        "followup": {"median": 30.0},
        "arms": {
            TREAT: {"label": "New drug", "n": 200, "events": 120, "median": med(18.0),
                    "survival": [lm(12, 0.65), lm(24, 0.40)]},
            REF: {"label": "Standard care", "n": 200, "events": 140, "median": med(14.0),
                  "survival": [lm(12, 0.55), lm(24, 0.30)]},
        },
    }
    if reported_hr is not None:
        doc["reported"] = {"hazard_ratio": {"estimate": reported_hr}
                           | ({"lower": reported_hr - 0.15, "upper": reported_hr + 0.18} if hr_ci else {})}
    return parse_trial(doc)


def priors(ids=("reference", "sceptical", "enthusiastic", "pessimistic"), mcid=0.7, customs=None):
    return prior_set(list(ids), mcid, 0.05, customs or {})


def results(model: str, post: dict[str, tuple[float, float]], mcid: float = 0.7,
            extra: dict | None = None) -> pd.DataFrame:
    """``results.csv`` rows for one model: per prior a normal posterior of the log HR (mean, sd).

    P(HR < 1) and P(HR < mcid) follow from the normal; survival/RMST differences
    are made up but consistent in sign with the HR.
    """
    rows = []
    for prior, (m, s) in post.items():
        q = stats.norm
        hr = (math.exp(m), math.exp(m - 1.96 * s), math.exp(m + 1.96 * s))
        rows.append(dict(model=model, prior=prior, quantity="hr", estimate=hr[0], lower=hr[1], upper=hr[2]))
        for thr in (1.0, mcid):
            rows.append(dict(model=model, prior=prior, quantity=f"p_hr_lt_{thr:g}",
                             estimate=float(q.cdf((math.log(thr) - m) / s)), lower=np.nan, upper=np.nan))
        for t in (12, 24):
            d = -0.1 * m
            rows.append(dict(model=model, prior=prior, quantity=f"surv_diff_{t}", estimate=d, lower=d - 0.08,
                             upper=d + 0.08))
            rows.append(dict(model=model, prior=prior, quantity=f"rmst_diff_{t}", estimate=10 * d,
                             lower=10 * d - 1.5, upper=10 * d + 1.5))
        for q_, v in (extra or {}).get(prior, {}).items():
            rows.append(dict(model=model, prior=prior, quantity=q_, estimate=v[0], lower=v[1], upper=v[2]))
    df = pd.DataFrame(rows)
    df["mcse"] = np.nan
    df["flag"] = ""
    return df


def headline(model: str, prior: str, res: pd.DataFrame, *, conj_published: bool = True,
             extra_rows: list[dict] | None = None, none: bool = False) -> pd.DataFrame:
    """``headline.csv`` as :func:`kmbayes.headline.apply` writes it, from synthetic results."""
    rows = [dict(role="candidate", model=model, prior=prior, quantity="effect", estimate=np.nan, lower=np.nan,
                 upper=np.nan, note="hazard ratio (proportional hazards); headline: best PSIS-LOO among "
                                    "eligible models")]
    if none:
        rows[0]["note"] = "hazard ratio (proportional hazards); excluded: fails the diagnostic gate"
        rows.append(dict(role="headline", model="", prior=prior, quantity="none", estimate=np.nan,
                         lower=np.nan, upper=np.nan,
                         note="no model passes the gate and the check against the publication"))
    else:
        sel = res[(res.model == model) & (res.prior == prior)]
        for q in ("hr", "p_hr_lt_1", "hr_ratio_late_early", "p_hr_ratio_late_early_lt_1"):
            r = sel[sel.quantity == q]
            if len(r):
                r = r.iloc[0]
                rows.append(dict(role="headline", model=model, prior=prior, quantity=q, estimate=r.estimate,
                                 lower=r.lower, upper=r.upper, note="single reconstruction"))
    if conj_published:
        rows += [dict(role="conjugate", model="normal", prior=prior, quantity="hr", estimate=0.8, lower=0.65,
                      upper=0.98, note="likelihood: published HR"),
                 dict(role="conjugate", model="normal", prior=prior, quantity="p_hr_lt_1", estimate=0.985,
                      lower=np.nan, upper=np.nan, note="likelihood: published HR")]
    rows += [dict(role="conjugate", model="normal", prior=prior, quantity="hr", estimate=0.81, lower=0.66,
                  upper=0.99, note="likelihood: Cox fit to the reconstruction"),
             dict(role="conjugate", model="normal", prior=prior, quantity="p_hr_lt_1", estimate=0.98,
                  lower=np.nan, upper=np.nan, note="likelihood: Cox fit to the reconstruction")]
    rows += extra_rows or []
    return pd.DataFrame(rows)


def check(followup_reconstructed: str = "30.02", tolerance: bool = False) -> pd.DataFrame:
    """A reconstruction check table (strings, as read from check.csv)."""
    rows = [
        ["arm", TREAT, "n", "200", "200", "200", "200", ""],
        ["arm", TREAT, "events", "120", "120", "120", "120", ""],
        ["arm", TREAT, "S(12)", "0.65", "0.6502", "0.6498", "0.6504", ""],
        ["arm", REF, "S(12)", "0.55", "0.5501", "0.5499", "0.5503", ""],
        ["arm", REF, "median", "14.0", "14.01", "14.0", "14.03", ""],
        ["followup", "all", "median follow-up", "30.0", followup_reconstructed, followup_reconstructed,
         followup_reconstructed, "reverse KM"],
        ["held_out", f"{TREAT} vs {REF}", "HR", "0.75", "0.7512", "0.74", "0.76", "held out"],
    ]
    df = pd.DataFrame(rows, columns=["section", "arm", "statistic", "published", "replicate1", "min", "max",
                                     "note"])
    if tolerance:
        df["tolerance"] = ["0", "0", "0.01", "0.01", "0.5", "3", "0.05"]
        df["verdict"] = ["ok"] * 7
    return df


def anchors() -> pd.DataFrame:
    return pd.DataFrame([
        dict(quantity="delta_s_12", estimate=0.10, se=0.05, lower=0.002, upper=0.198, bb_median=0.1,
             bb_lower=0.0, bb_upper=0.2, p_gt_0=0.977),
        dict(quantity="delta_s_24", estimate=0.10, se=0.05, lower=0.01, upper=0.19, bb_median=0.1,
             bb_lower=0.01, bb_upper=0.19, p_gt_0=0.98),
        dict(quantity="delta_rmst_24", estimate=1.5, se=0.7, lower=0.13, upper=2.87, bb_median=1.5,
             bb_lower=0.1, bb_upper=2.9, p_gt_0=0.985),
    ])


def tipping(model="piecewise_ph", sigmas=((0.20, 0.962), (0.15, 0.948), (0.17, 0.951)), mcid=0.7,
            flat_inf=False) -> pd.DataFrame:
    from kmbayes.tipping import TIPPING_COLUMNS, prob_mcid

    rows = [dict(method="normal", model=model, source="reference fit", sigma=math.inf if flat_inf else 0.16,
                 prior_p_hr_lt_mcid=np.nan, p_hr_lt_1=np.nan if flat_inf else 0.95, mcse=np.nan,
                 pareto_k=np.nan, note="")]
    if not flat_inf:
        for s, p in sigmas:
            rows.append(dict(method="refit", model=model, source=f"N(0, {s}) fit", sigma=s,
                             prior_p_hr_lt_mcid=prob_mcid(s, mcid), p_hr_lt_1=p, mcse=0.005, pareto_k=np.nan,
                             note=""))
    return pd.DataFrame(rows, columns=TIPPING_COLUMNS)


def custom_priors():
    return {"strong_sceptic": PriorSpec("strong_sceptic", 0.0, math.log(0.8) / stats.norm.ppf(0.05)),
            "mild": PriorSpec("mild", math.log(0.9), 0.5)}
