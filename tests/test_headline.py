"""The headline rule (:mod:`kmbayes.headline`) on synthetic inputs where its answer must change."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from kmbayes import headline, priors
from kmbayes.trial import Interval

MODELS = ("weibull_ph", "piecewise_tv", "cure")


def _fit(elpd_shift: float, gate: bool = True, n: int = 80, seed: int = 0, model: str = "weibull_ph",
         jitter: float = 0.0):
    """A fit whose elpd is the common base's plus ``elpd_shift``, spread over patients
    with SD ``jitter`` (so the SE of a difference between two fits is about sqrt(n) jitter)."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(99).normal(-2.0, 0.3, size=n)
    per = rng.normal(0.0, jitter, size=n)
    per += elpd_shift / n - per.mean()
    ll = base[None, None, :] + per + rng.normal(0, 0.01, size=(2, 200, n))
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"log_hr": (("chain", "draw"), rng.normal(-0.3, 0.1, (2, 200)))}),
        "log_likelihood": xr.Dataset({"obs": (("chain", "draw", "patient"), ll)}),
    })
    return SimpleNamespace(idata=tree, gate_passed=gate, model=model)


def _spec(prior_ids=("reference", "sceptical"), head=None):
    ps = priors.prior_set(list(prior_ids), 0.7, 0.05, {"mine": {"mu": 0.0, "sigma": 0.3}})
    return SimpleNamespace(models=MODELS, priors=ps, headline_prior=head, milestones=(36.0, 96.0),
                           rmst_horizons=(96.0,))


def _results(models, prior):
    rows = []
    for m in models:
        for q, e in (("hr", 0.7), ("p_hr_lt_1", 0.97), ("cure_difference", 0.12),
                     ("p_cure_difference_gt_0", 0.96), ("surv_diff_96", 0.1), ("rmst_diff_96", 5.0)):
            if q.startswith(("cure", "p_cure")) and m != "cure":
                continue
            rows.append({"model": m, "prior": prior, "quantity": q, "estimate": e,
                         "lower": math.nan if q.startswith("p_") else e - 0.1,
                         "upper": math.nan if q.startswith("p_") else e + 0.1})
    return pd.DataFrame(rows)


def _trial(reported=True):
    arm = lambda n: SimpleNamespace(name=n)  # noqa: E731
    return SimpleNamespace(arms={"ctl": arm("Control arm"), "trt": arm("New arm")}, reference_arm="ctl",
                           treatment_arm="trt",
                           reported_hr=Interval(0.6, 0.4, 0.9) if reported else None)


def _data():
    from kmbayes.data import simulate_trial

    return simulate_trial(np.random.default_rng(3), n=(60, 60))


def _apply(fits, ppc=(), prior="sceptical", spec=None, trial=None):
    spec = spec or _spec()
    res = _results(MODELS, prior)
    return pd.DataFrame(headline.apply(spec, fits, {}, list(ppc), res, None, trial or _trial(), _data()))


def _role(df, role):
    return df[df.role == role]


def test_best_loo_among_eligible_wins():
    fits = {("weibull_ph", "sceptical"): _fit(0.0), ("piecewise_tv", "sceptical"): _fit(-30.0, seed=1),
            ("cure", "sceptical"): _fit(-60.0, seed=2)}
    df = _apply(fits)
    assert set(_role(df, "headline").model) == {"weibull_ph"}
    notes = dict(zip(_role(df, "candidate").model, _role(df, "candidate").note))
    assert "worse by LOO" in notes["cure"] and "headline" in notes["weibull_ph"]


def test_a_ppc_misfit_excludes_the_best_model():
    fits = {("weibull_ph", "sceptical"): _fit(0.0), ("piecewise_tv", "sceptical"): _fit(-30.0, seed=1),
            ("cure", "sceptical"): _fit(-60.0, seed=2)}
    ppc = [{"model": "weibull_ph", "prior": "sceptical", "verdict": "misfit", "statistic": "S(96)",
            "arm": "ctl"}]
    df = _apply(fits, ppc)
    assert set(_role(df, "headline").model) == {"piecewise_tv"}
    note = _role(df, "candidate").set_index("model").note["weibull_ph"]
    assert "excluded" in note and "S(96) ctl" in note
    text = " ".join(headline.sentences(df, _trial()))
    assert "was not eligible" in text and "S(96) Control arm" in text  # arm label, not its id


def test_a_failed_gate_excludes_and_no_eligible_model_means_no_headline():
    fits = {(m, "sceptical"): _fit(0.0, gate=False, seed=i) for i, m in enumerate(MODELS)}
    df = _apply(fits)
    assert _role(df, "headline").quantity.tolist() == ["none"]
    assert "no model-based headline" in " ".join(headline.sentences(df, _trial()))


def test_models_within_two_se_cannot_be_told_apart():
    fits = {("weibull_ph", "sceptical"): _fit(0.0), ("piecewise_tv", "sceptical"): _fit(-1.0, seed=1, jitter=0.2),
            ("cure", "sceptical"): _fit(-60.0, seed=2)}
    df = _apply(fits)
    note = _role(df, "candidate").set_index("model").note["piecewise_tv"]
    assert "cannot tell apart" in note
    assert "cannot be told apart" in " ".join(headline.sentences(df, _trial()))


def test_cure_headline_speaks_of_cure_fractions_with_the_trials_arm_names():
    fits = {("weibull_ph", "sceptical"): _fit(-60.0), ("piecewise_tv", "sceptical"): _fit(-60.0, seed=1),
            ("cure", "sceptical"): _fit(0.0, seed=2)}
    text = " ".join(headline.sentences(_apply(fits), _trial()))
    assert "difference in cure fraction (New arm minus Control arm)" in text
    assert "among patients who are not cured" in text.lower()


@pytest.mark.parametrize("ids, head, want", [(("reference", "sceptical"), None, "sceptical"),
                                              (("reference", "mine"), None, "reference"),
                                              (("reference", "mine"), "mine", "mine")])
def test_headline_prior(ids, head, want):
    assert headline.headline_prior(_spec(ids, head)) == want


def test_conjugate_rows_only_when_the_publication_gives_a_ci():
    fits = {(m, "sceptical"): _fit(-i * 30.0, seed=i) for i, m in enumerate(MODELS)}
    with_ci = _role(_apply(fits), "conjugate")
    without = _role(_apply(fits, trial=_trial(reported=False)), "conjugate")
    assert any("published HR" in n for n in with_ci.note)
    assert not any("published HR" in n for n in without.note)
    assert any("Cox fit to the reconstruction" in n for n in without.note)
