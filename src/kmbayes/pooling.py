"""Pooling over reconstruction replicates: every replicate refitted under every prior, mixed.

Each replicate is a plausible reconstruction of the trial's patient-level
data. Mixing the posterior draws of all of them, in equal shares, integrates
over reconstruction uncertainty (as multiple imputation does, with each
replicate's posterior a draw of the complete-data posterior). Every
replicate is fitted under every prior on the same compiled model (new data
and prior values, no recompilation), so the pooled posterior is exact: no
importance reweighting between priors.

References
----------
Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of
survival data: reconstructing the data from published Kaplan-Meier survival
curves. BMC Med Res Methodol. 2012;12:9.
Zhou X, Reiter JP. A note on Bayesian inference after multiple imputation.
Am Stat. 2010;64(2):159-163 (mixing the completed-data posteriors).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .fitting import FitResult, make_tree


def pool_fits(fits: list[FitResult], primary: FitResult) -> FitResult:
    """Mix replicate fits into one: chains concatenated, an equal number of draws per replicate."""
    import xarray as xr

    # A retried member may have more draws; thin every member evenly to the
    # shortest so each replicate carries the same weight in the mixture.
    posts = [f.idata["posterior"].to_dataset() for f in fits]
    n = min(p.sizes["draw"] for p in posts)
    parts, stats_ = [], []
    for r, (f, p) in enumerate(zip(fits, posts)):
        idx = np.round(np.linspace(0, p.sizes["draw"] - 1, n)).astype(int)
        chain = np.arange(p.sizes["chain"]) + r * p.sizes["chain"]
        parts.append(p.isel(draw=idx).assign_coords(chain=chain, draw=np.arange(n)))
        ss = f.idata["sample_stats"].to_dataset()[["diverging"]]
        stats_.append(ss.isel(draw=idx).assign_coords(chain=chain, draw=np.arange(n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = xr.concat(parts, dim="chain", combine_attrs="override")
        ss = xr.concat(stats_, dim="chain")
    idata = make_tree(posterior=post, sample_stats=ss,
                      constant_data=primary.idata["constant_data"].to_dataset())
    rhats = [f.diagnostics.get("rhat_max", math.nan) for f in fits]
    d = {
        "sampler": ",".join(sorted({str(f.diagnostics.get("sampler")) for f in fits})),
        "attempts": int(np.sum([f.diagnostics.get("attempts", 1) for f in fits])),
        "replicates": len(fits),
        "rhat_max": float(np.nanmax(rhats)),
        "worst_rhat_var": "",
        "ess_bulk_min": float(np.sum([f.diagnostics.get("ess_bulk_min", 0) for f in fits])),
        "ess_tail_min": float(np.sum([f.diagnostics.get("ess_tail_min", 0) for f in fits])),
        "divergences": int(np.sum([f.diagnostics.get("divergences", 0) for f in fits])),
        "bfmi_min": float(np.nanmin([f.diagnostics.get("bfmi_min", math.nan) for f in fits])),
        "replicates_failed": [f.data.replicate for f in fits if not f.gate_passed],
    }
    d["failures"] = [f"replicate {r} failed the gate" for r in d["replicates_failed"]]
    return FitResult(primary.model, primary.prior, idata, d, not d["failures"], primary.data,
                     primary.ctx)


def width_ratios(single_rows: list[dict], pooled_rows: list[dict]) -> dict[str, float]:
    """Interval width pooled / single per quantity (HRs on the log scale)."""
    single = {r["quantity"]: r for r in single_rows}
    out = {}
    for r in pooled_rows:
        s = single.get(r["quantity"])
        if s is None or not (math.isfinite(r["lower"]) and math.isfinite(s["lower"])):
            continue
        if r["quantity"] == "hr" or r["quantity"].startswith("hr_"):
            if min(r["lower"], s["lower"]) <= 0:
                continue
            w_p = math.log(r["upper"]) - math.log(r["lower"])
            w_s = math.log(s["upper"]) - math.log(s["lower"])
        else:
            w_p, w_s = r["upper"] - r["lower"], s["upper"] - s["lower"]
        out[r["quantity"]] = w_p / w_s if w_s > 0 else math.nan
    return out
