"""Run specs, IPD loading, and fit_grid end to end (fast profile) with caching and the gate."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kmbayes import fitstore, fitting, priors, runspec
from kmbayes.data import load_ipd, simulate_trial
from kmbayes.diagnostics import Gate
from kmbayes.errors import FitFailedError, InputError
from kmbayes.grid import fit_grid, load_grid
from kmbayes.provenance import derive_seed

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "clocc.toml"


# --------------------------------------------------------------------------- spec


def test_load_spec_clocc():
    spec = runspec.load_spec(CONFIG)
    assert spec.models == ("weibull_ph", "piecewise_ph", "piecewise_tv", "smooth_tv", "cure")
    assert list(spec.priors) == ["reference", "sceptical", "enthusiastic", "pessimistic"]
    assert spec.priors["sceptical"].sigma == pytest.approx(0.2168, abs=1e-4)
    assert spec.cuts == (0, 12, 24, 36, 60, 96, math.inf)
    assert spec.trial == (ROOT / "data" / "raw" / "clocc_os.toml").resolve()
    assert spec.milestones == (36, 60, 96) and spec.rmst_horizons == (60, 96)
    assert spec.gate.rhat_max == 1.01 and spec.gate.ess_min == 400
    assert spec.settings(True).draws < spec.settings(False).draws
    assert spec.settings(False, "piecewise_tv").draws == 2 * spec.sampler.draws  # [sampler.piecewise_tv]
    assert spec.settings(False, "weibull_ph") == spec.sampler


@pytest.mark.parametrize("name", ["sceptical_only", "weibull_only", "cuts_yearly"])
def test_sensitivity_configs_load(name):
    runspec.load_spec(ROOT / "configs" / f"{name}.toml")


def _spec_with(tmp_path, mutate) -> Path:
    doc = tomllib.loads(CONFIG.read_text())
    mutate(doc)
    lines = []

    def dump(tbl, prefix=""):
        scalars = {k: v for k, v in tbl.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {json.dumps(v)}")
        for k, v in tbl.items():
            if isinstance(v, dict):
                dump(v, f"{prefix}.{k}" if prefix else k)

    dump(doc)
    p = tmp_path / "spec.toml"
    p.write_text("\n".join(lines).replace("Infinity", "inf"))
    return p


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["priors"].update(tail=0.7), "priors.tail"),
        (lambda d: d["priors"].update(ids=["reference", "optimistic"]), "priors.ids"),
        (lambda d: d["models"].update(ids=["cox"]), "models.ids"),
        (lambda d: d["models"].update(cuts=[0, 24, 12]), "models.cuts"),
        (lambda d: d["sampler"].update(draws="many"), "sampler.draws"),
        (lambda d: d["sampler"].update(backend="stan"), "sampler.backend"),
        (lambda d: d["sampler"].update(cox={"draws": 10}), "sampler.cox"),
        (lambda d: d["sampler"]["piecewise_tv"].update(draws=1), "sampler.piecewise_tv.draws"),
        (lambda d: d["run"].update(seed=-1), "run.seed"),
        (lambda d: d["estimands"].update(milestones=[36, -1]), "estimands.milestones[1]"),
        (lambda d: d["models"]["baseline"].update(time_ref=0), "models.baseline.time_ref"),
        (lambda d: d["priors"].update(custom={"x": {"mu": 0.0}}, ids=["x"]), "priors.custom.x.sigma"),
    ],
)
def test_bad_spec_names_field(tmp_path, mutate, field):
    with pytest.raises(InputError) as ex:
        runspec.load_spec(_spec_with(tmp_path, mutate))
    assert ex.value.field == field


def test_bad_toml_and_missing(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[run\n")
    with pytest.raises(InputError) as ex:
        runspec.load_spec(p)
    assert ex.value.field == "file"
    with pytest.raises(InputError):
        runspec.load_spec(tmp_path / "missing.toml")


def test_subset_spec():
    spec = runspec.load_spec(CONFIG)
    sub = runspec.subset_spec(spec, models=["weibull_ph"], priors=["sceptical"])
    assert sub.models == ("weibull_ph",) and list(sub.priors) == ["sceptical"]
    with pytest.raises(InputError) as ex:
        runspec.subset_spec(spec, priors=["nope"])
    assert ex.value.field == "--priors"


# --------------------------------------------------------------------------- IPD


@pytest.mark.parametrize(
    "text, field",
    [
        ("time,arm\n1,a\n", "event"),
        ("event,arm\n1,a\n", "time"),
        ("time,event\n1,1\n", "arm"),
        ("time,event,arm\n1,2,a\n2,1,b\n", "event"),
        ("time,event,arm\n-1,1,a\n2,1,b\n", "time"),
        ("time,event,arm\nx,1,a\n2,1,b\n", "time"),
        ("time,event,arm\n1,1,a\n2,1,b\n3,0,c\n", "arm"),
        ("time,event,arm,replicate\n1,1,a,0\n2,1,b,0\n", "replicate"),
        ("time,event,arm\n", "time"),
    ],
)
def test_bad_ipd_names_column(tmp_path, text, field):
    p = tmp_path / "ipd.csv"
    p.write_text(text)
    with pytest.raises(InputError) as ex:
        load_ipd(p)
    assert ex.value.field == field


def test_load_ipd_replicates(tmp_path):
    p = tmp_path / "ipd.csv"
    p.write_text("time,event,arm,replicate\n1,1,sys,1\n2,0,comb,1\n0,1,sys,2\n3,1,comb,2\n")
    reps = load_ipd(p, "sys")
    assert [r.replicate for r in reps] == [1, 2]
    assert reps[0].arm_ids == ("sys", "comb") and reps[0].arm.tolist() == [0, 1]
    assert reps[1].time[0] > 0  # time 0 floored


# --------------------------------------------------------------------------- grid


def _write_sim(path: Path, reps: int = 1, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    frames = []
    for r in range(1, reps + 1):
        d = simulate_trial(rng, cuts=[0, 36, np.inf], rates=[0.018, 0.03], hrs=[0.95, 0.45])
        frames.append(pd.DataFrame({"time": d.time, "event": d.event.astype(int),
                                    "arm": np.where(d.arm == 1, "combined", "systemic"),
                                    "replicate": r}))
    df = pd.concat(frames)
    if reps == 1:
        df = df.drop(columns="replicate")
    df.to_csv(path, index=False)


@pytest.fixture(scope="module")
def grid_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    ipd, reps = tmp / "ipd.csv", tmp / "reps.csv"
    _write_sim(ipd)
    _write_sim(reps, reps=2, seed=8)
    spec = runspec.subset_spec(runspec.load_spec(CONFIG), priors=["reference", "sceptical"])
    calls = []
    grid = fit_grid(spec, ipd, tmp / "out", fast=True, pool_replicates=reps,
                            progress=lambda *a, **k: calls.append(a))
    return spec, ipd, reps, tmp / "out", grid, calls


def test_fit_grid_outputs(grid_setup):
    spec, ipd, reps, out, grid, calls = grid_setup
    n = len(spec.models) * len(spec.priors)
    assert len(grid.fits) == n and len(grid.pooled) == n and len(calls) == 2 * n
    for (m, p), fit in grid.fits.items():
        folder = out / "models" / f"{m}__{p}"
        assert (folder / "posterior.nc").exists()
        man = json.loads((folder / "manifest.json").read_text())
        for key in ("seed", "packages", "git_commit", "config_hash", "data_hash", "sampler",
                    "diagnostics", "gate_passed", "cache_key"):
            assert key in man, key
        assert man["gate_passed"] is fit.gate_passed
        assert "log_likelihood" in fit.idata.children
        assert fit.idata["log_likelihood"]["obs"].shape[-1] == fit.data.n
        assert (fit.prior.mu, fit.prior.sigma) == (spec.priors[p].mu, spec.priors[p].sigma)
    res = pd.read_csv(out / "reports" / "results.csv")
    assert list(res.columns) == ["model", "prior", "quantity", "estimate", "lower", "upper", "mcse", "flag"]
    q = set(res.quantity)
    # P(HR < x) at 1 and at the spec's MCID (0.7) only: the thresholds follow the MCID
    assert "p_hr_lt_0.8" not in q
    for name in ["hr", "p_hr_lt_1", "p_hr_lt_0.7", "surv_systemic_36",
                 "surv_combined_96", "surv_diff_60", "rmst_systemic_60", "rmst_diff_96",
                 "median_combined", "hr_0_12", "hr_96_inf", "pooled_hr", "pooled_hr_width_ratio"]:
        assert name in q, name
    # per-interval HRs only for the time-varying families; their early/late summary too
    assert res[res.quantity == "hr_0_12"].model.unique().tolist() == ["piecewise_tv", "smooth_tv"]
    for q in ("hr_ratio_late_early", "p_hr_ratio_late_early_lt_1"):
        assert res[res.quantity == q].model.unique().tolist() == ["piecewise_tv", "smooth_tv"]
    for q in ("cure_difference", "p_cure_difference_gt_0"):
        assert res[res.quantity == q].model.unique().tolist() == ["cure"]
    for name in ("ppc.csv", "anchors.csv", "ph_check.csv", "headline.csv"):
        assert (out / "reports" / name).exists(), name
    p1 = res[res.quantity == "p_hr_lt_1"]
    assert p1.lower.isna().all() and p1.estimate.between(0, 1).all()
    diag = pd.read_csv(out / "reports" / "diagnostics.csv")
    for col in ["model", "prior", "rhat_max", "ess_bulk_min", "ess_tail_min", "divergences",
                "bfmi_min", "pareto_k_max", "gate_passed"]:
        assert col in diag.columns
    loo = pd.read_csv(out / "reports" / "loo_compare.csv")
    assert set(loo.model) == set(spec.models) and set(loo.prior) == {"reference", "sceptical"}
    tp = pd.read_csv(out / "reports" / "tipping_point.csv")
    assert {"conjugate", "importance"} <= set(tp.method)
    # Refits confirm the headline model's tipping point, and exist only when
    # it has one: a headline already below the threshold under the reference
    # prior (P(HR < 1) near 0.95 on these simulated data, so it depends on
    # the sampler's draws) cannot be tipped.
    head = pd.read_csv(out / "reports" / "headline.csv")
    hm = set(head.loc[head.role == "headline", "model"]) - {"cure"}
    if hm:
        tippable = tp[tp.method.isin(["normal", "importance"]) & tp.model.isin(hm) & np.isfinite(tp.sigma)]
        assert set(tp.loc[tp.method == "refit", "model"]) == (hm if len(tippable) else set())
    assert (out / "reports" / "pooling.csv").exists()
    assert (out / "reports" / "results_pooled.csv").exists()
    assert grid.results.shape[0] == res.shape[0]


def test_fit_grid_cache_and_reload(grid_setup):
    spec, ipd, reps, out, grid, _ = grid_setup
    again = fit_grid(spec, ipd, out, fast=True, pool_replicates=reps)
    assert all(f.cached for f in again.fits.values())
    pd.testing.assert_frame_equal(again.results, grid.results)
    loaded = load_grid(out, spec)
    assert set(loaded.fits) == set(grid.fits) and set(loaded.pooled) == set(grid.pooled)
    f0 = loaded.fits[("weibull_ph", "sceptical")]
    assert f0.gate_passed == grid.fits[("weibull_ph", "sceptical")].gate_passed
    from kmbayes import estimands

    np.testing.assert_allclose(estimands.hr_draws(f0), estimands.hr_draws(grid.fits[("weibull_ph", "sceptical")]))
    # a config change (prior) invalidates only the affected fits
    spec2 = runspec.subset_spec(spec, models=["weibull_ph"], priors=["sceptical"])
    spec2.priors["sceptical"] = priors.PriorSpec("sceptical", 0.0, 0.3)
    third = fit_grid(spec2, ipd, out / "other", fast=True, pool_replicates=False)
    assert not third.fits[("weibull_ph", "sceptical")].cached


def test_reproducible_with_seed(tmp_path):
    d = simulate_trial(np.random.default_rng(1))
    s = runspec.SamplerSettings(draws=150, tune=150)
    g = Gate(ess_min=0, rhat_max=10)
    a = fitting.fit_one("weibull_ph", d, priors.sceptical(), settings=s, gate=g, seed=42, loo=False)
    b = fitting.fit_one("weibull_ph", d, priors.sceptical(), settings=s, gate=g, seed=42, loo=False)
    np.testing.assert_array_equal(a.idata["posterior"]["log_hr"].values,
                                  b.idata["posterior"]["log_hr"].values)
    # ... and the same bytes on disk (no creation stamps in the file), so a
    # refit of unchanged fits leaves models/ unchanged.
    fitstore.write_fit(a, tmp_path / "a", {"cache_key": "k"})
    fitstore.write_fit(b, tmp_path / "b", {"cache_key": "k"})
    assert (tmp_path / "a" / "posterior.nc").read_bytes() == (tmp_path / "b" / "posterior.nc").read_bytes()
    assert derive_seed(1, "a", "b") == derive_seed(1, "a", "b") != derive_seed(1, "a", "c")


def test_failed_gate_is_flagged_everywhere(tmp_path):
    ipd = tmp_path / "ipd.csv"
    _write_sim(ipd)

    def mutate(doc):
        doc["gate"]["ess_min"] = 1e9
        doc["fast"]["ess_min"] = 1e9
        doc["fast"]["retry"] = False
        doc["models"]["ids"] = ["piecewise_ph"]
        doc["priors"]["ids"] = ["reference"]
        doc["run"]["trial"] = str(ROOT / "data" / "raw" / "clocc_os.toml")

    spec = runspec.load_spec(_spec_with(tmp_path, mutate))
    out = tmp_path / "out"
    with pytest.raises(FitFailedError):
        fit_grid(spec, ipd, out, fast=True, pool_replicates=False, strict=True)
    # outputs were written before raising, and every one of them carries the flag
    man = json.loads((out / "models" / "piecewise_ph__reference" / "manifest.json").read_text())
    assert man["gate_passed"] is False and man["diagnostics"]["failures"]
    diag = pd.read_csv(out / "reports" / "diagnostics.csv")
    assert not diag.gate_passed.astype(bool).any()
    res = pd.read_csv(out / "reports" / "results.csv")
    assert res.flag.str.startswith("GATE FAILED").all()
    grid = fit_grid(spec, ipd, out, fast=True, pool_replicates=False)  # non-strict: returns
    assert grid.failed == [("piecewise_ph", "reference")] and not grid.gate_passed


def test_pooled_posterior_equals_pooling_independent_refits(grid_setup):
    """Exact pooling: the pooled fit is the mixture of each replicate refitted under that prior."""
    from kmbayes.data import load_for_trial
    from kmbayes.pooling import pool_fits
    from kmbayes.trial import load_trial

    spec, ipd, reps, out, grid, _ = grid_setup
    model, pname = "weibull_ph", "sceptical"
    members = [
        fitting.fit_one(model, d, spec.priors[pname], cuts=spec.cuts, baseline=spec.baseline,
                        settings=spec.fast_sampler, gate=spec.gate_for(True),
                        seed=derive_seed(spec.seed, model, pname, "replicate", d.replicate or i + 1),
                        loo=False, pymc_fallback=False)
        for i, d in enumerate(load_for_trial(reps, load_trial(spec.trial))[:2])
    ]
    mine = pool_fits(members, grid.fits[(model, pname)]).idata["posterior"]
    theirs = grid.pooled[(model, pname)].idata["posterior"]
    for v in ("log_hr", "alpha", "log_shape"):
        np.testing.assert_array_equal(mine[v].values, theirs[v].values)
    # and it is not the reference-prior mixture reweighted: the priors' pools differ
    other = grid.pooled[(model, "reference")].idata["posterior"]["log_hr"].values
    assert not np.array_equal(other, theirs["log_hr"].values)


def test_cached_grid_is_served_only_when_verified(grid_setup, tmp_path):
    import shutil

    spec, ipd, reps, out, grid, _ = grid_setup
    root = tmp_path / "copy"
    shutil.copytree(out, root)
    said = []
    again = fit_grid(spec, ipd, root, fast=True, pool_replicates=reps, say=said.append)
    assert any("verified in the cache" in s for s in said) and again.grid_key == grid.grid_key
    pd.testing.assert_frame_equal(again.results, grid.results)
    # a table edited by hand is not served: the grid is recomputed (fits still cached)
    res = root / "reports" / "results.csv"
    res.write_text(res.read_text().replace("weibull_ph", "weibull_pH", 1))
    said.clear()
    third = fit_grid(spec, ipd, root, fast=True, pool_replicates=reps, say=said.append)
    assert not any("verified in the cache" in s for s in said)
    assert all(f.cached for f in third.fits.values())
    pd.testing.assert_frame_equal(third.results, grid.results)
