"""The frequentist companion of the time-varying-HR model: a test of
proportional hazards and Cox HRs within time windows.

* :func:`grambsch_therneau` -- the Grambsch-Therneau test on scaled
  Schoenfeld residuals for the treatment effect, from lifelines
  (``CoxPHFitter`` + ``lifelines.statistics.proportional_hazard_test``).
  ``transform="km"`` is R's ``cox.zph`` default time scale, ``"rank"``
  lifelines' default. lifelines implements the chi-square *approximation*
  of Grambsch and Therneau (1994) that R's survival package used before
  version 3.0 (2019); survival >= 3.0 computes the exact score test, so R's
  numbers differ somewhat. On the CLOCC IPD: lifelines chi2 5.75 (km) and
  5.77 (rank); R survival 3.5-3 ``cox.zph`` 5.99 (km) and 5.46 (rank).
* :func:`window_cox` -- a two-group Cox HR within each time window
  [a, b): patients still at risk at ``a`` enter there (left truncation) and
  are administratively censored at ``b``. Because every patient in a window
  enters at the same time ``a``, the risk sets are those of the shifted
  times ``min(t, b) - a``, so the fit is :func:`kmbayes.km.cox_two_group`
  (Efron ties, as lifelines) on the shifted data.

References
----------
Grambsch PM, Therneau TM. Proportional hazards tests and diagnostics based on
weighted residuals. Biometrika. 1994;81:515-526.
Therneau TM, Grambsch PM. Modeling Survival Data: Extending the Cox Model.
Springer; 2000. sec. 6.2.
Davidson-Pilon C. lifelines: survival analysis in Python. J Open Source Softw.
2019;4(40):1317.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .km import cox_two_group

TRANSFORMS = ("km", "rank", "identity", "log")


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


def grambsch_therneau(data, transform: str = "km") -> dict:
    """Grambsch-Therneau test of proportional hazards for the treatment effect.

    Parameters
    ----------
    data : kmbayes.data.SurvivalData
        Arm 1 (treatment) vs arm 0 (reference).
    transform : {"km", "rank", "identity", "log"}
        Time scale on which the scaled Schoenfeld residuals are regressed
        (``"km"`` = R ``cox.zph``'s default, ``"rank"`` = lifelines').

    Returns
    -------
    dict
        ``{"transform", "chi2", "df" (1), "p", "hr", "lower", "upper",
        "deaths"}``: the test statistic and p-value, with the Cox HR
        (Efron ties, Wald 95% CI) the residuals come from.

    References
    ----------
    Grambsch PM, Therneau TM. Biometrika. 1994;81:515-526.
    """
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    df = pd.DataFrame({"time": data.time, "event": data.event.astype(int),
                       "treatment": data.arm.astype(float)})
    cph = CoxPHFitter().fit(df, duration_col="time", event_col="event")
    with warnings.catch_warnings():
        # lifelines reminds that R changed its test in 2019; documented above.
        warnings.simplefilter("ignore")
        res = proportional_hazard_test(cph, df, time_transform=transform)
    summ = res.summary
    beta, se = float(cph.params_["treatment"]), float(cph.standard_errors_["treatment"])
    z = 1.959963984540054
    return {
        "transform": transform,
        "chi2": float(summ["test_statistic"].iloc[0]),
        "df": 1,
        "p": float(summ["p"].iloc[0]),
        "hr": math.exp(beta),
        "lower": math.exp(beta - z * se),
        "upper": math.exp(beta + z * se),
        "deaths": int(data.event.sum()),
    }


def window_cox(data, windows) -> list[dict]:
    """Cox HR (treatment vs reference) within each time window.

    Parameters
    ----------
    data : kmbayes.data.SurvivalData
    windows : sequence of (start, end)
        Windows [start, end); ``end`` may be ``inf``. E.g. the piecewise cut
        points ``[(0, 12), (12, 24), (24, 36), (36, 60), (60, 96), (96, inf)]``.

    Returns
    -------
    list of dict
        One row per window: ``{"window" ("0_12"), "start", "end", "hr",
        "lower", "upper" (Wald 95%), "p" (Wald), "deaths_ref", "deaths_trt",
        "at_risk_ref", "at_risk_trt", "at_risk_start" (both arms)}``. A
        window with no deaths in an arm gives a degenerate HR (0 or inf with
        an unbounded interval): read the death counts.

    Notes
    -----
    A window HR is conditional on surviving to the window's start, so under
    non-PH it is the period-specific HR the ``piecewise_tv`` model estimates
    per interval (without the random-walk smoothing). Identical (to 7
    digits) to R's ``coxph(Surv(tstart, time, event) ~ x)`` on
    ``survSplit`` data for the CLOCC IPD.

    References
    ----------
    Therneau TM, Grambsch PM. Modeling Survival Data: Extending the Cox Model.
    Springer; 2000. sec. 3.7 (left truncation, counting-process data).
    """
    t = np.asarray(data.time, float)
    e = np.asarray(data.event, float)
    g = np.asarray(data.arm, int)
    rows = []
    for a, b in windows:
        a, b = float(a), float(b)
        if not b > a:
            raise ValueError(f"window ({a:g}, {b:g}) is empty")
        # At risk at a: time > a (a death at exactly a belongs to the window before).
        m = t > a if a > 0 else np.ones(t.size, bool)
        tw = np.minimum(t[m], b) - a
        ew = e[m] * (t[m] <= b)
        gw = g[m]
        d_ref, d_trt = int(ew[gw == 0].sum()), int(ew[gw == 1].sum())
        row = {
            "window": f"{_fmt(a)}_{_fmt(b)}",
            "start": a,
            "end": b,
            "deaths_ref": d_ref,
            "deaths_trt": d_trt,
            "at_risk_ref": int(np.sum(gw == 0)),
            "at_risk_trt": int(np.sum(gw == 1)),
            "at_risk_start": int(m.sum()),
        }
        if d_ref + d_trt == 0 or min(np.sum(gw == 0), np.sum(gw == 1)) == 0:
            row.update(hr=math.nan, lower=math.nan, upper=math.nan, p=math.nan)
        else:
            c = cox_two_group(tw, ew, gw)
            row.update(hr=c.hr, lower=c.lower, upper=c.upper, p=c.p)
        rows.append(row)
    return rows
