"""Every sentence rule of the report, on synthetic results where the sentence must change.

Scenarios: a proportional-hazards trial, a late-effect trial, a null trial,
custom priors only, a single prior, another MCID, a trial file without CIs and
one with design fields. Each test states what the sentence must (and must not)
say for its inputs.
"""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from kmbayes import estimands
from kmbayes.errors import InputError
from kmbayes.headline import sentences
from kmbayes.report import ReportInputs, compose, prose

from . import report_fixtures as fx

PH_POST = {"reference": (math.log(0.70), 0.10), "sceptical": (math.log(0.78), 0.09),
           "enthusiastic": (math.log(0.72), 0.08), "pessimistic": (math.log(0.85), 0.09)}
NULL_POST = {"reference": (0.0, 0.10), "sceptical": (0.0, 0.08), "enthusiastic": (-0.05, 0.08),
             "pessimistic": (0.04, 0.08)}


def inputs(model="piecewise_ph", post=PH_POST, *, priors=None, mcid=0.7, trial=None, head=None, res=None,
           tipping=None, headline_prior=None, check=None, **kw) -> ReportInputs:
    priors = priors if priors is not None else fx.priors(tuple(post), mcid)
    res = res if res is not None else fx.results(model, post, mcid)
    hp = headline_prior or next(iter(priors))
    return ReportInputs(
        trial=trial or fx.trial(), results=res, head=head if head is not None else fx.headline(model, hp, res),
        priors_used=priors, headline_prior=hp, mcid=mcid, milestones=[12, 24], horizons=[24],
        models=[model], anchors=fx.anchors(), tipping=tipping if tipping is not None else fx.tipping(model, mcid=mcid),
        check=check if check is not None else fx.check(), **kw)


def main_text(md: str) -> str:
    return md.split("# Supplement", 1)[0]


# --------------------------------------------------------------------------- design facts


def test_design_is_stated_only_when_the_trial_file_gives_it():
    assert prose.design_sentence(fx.trial()) is None
    md = compose(inputs())
    assert "phase" not in main_text(md).lower().replace("(phase, endpoint hierarchy", "")
    t = fx.trial(phase="III", design="randomized, open-label")
    assert prose.design_sentence(t) == ("Design (as stated in the trial file): randomized, open-label, "
                                        "phase III trial.")
    assert "phase III" in compose(inputs(trial=t))


def test_trial_phase_is_validated():
    with pytest.raises(InputError, match="trial.phase"):
        fx.trial(phase="3b")


# --------------------------------------------------------------------------- reconstruction check


def test_check_flags_a_number_outside_its_rounding():
    ok = prose.check_verdicts(fx.check("30.02"))
    assert ok.ok.all()
    assert "All 6 published numbers used for the reconstruction are reproduced within their tolerance" in \
        " ".join(prose.check_sentences(ok, fx.trial()))
    bad = prose.check_verdicts(fx.check("31.6"))  # 30.0 published: +-0.05
    row = bad[bad.statistic == "median follow-up"].iloc[0]
    assert row.tolerance == pytest.approx(0.05) and not row.ok and row.verdict == "outside rounding"
    text = " ".join(prose.check_sentences(bad, fx.trial()))
    assert "5 of 6" in text and "median follow-up (months) (published 30.0, reconstructed 31.600)" in text


def test_check_uses_the_reconstructions_tolerance_and_verdict_when_present():
    v = prose.check_verdicts(fx.check("31.6", tolerance=True))
    row = v[v.statistic == "median follow-up"].iloc[0]
    assert row.tolerance == 3.0 and row.ok and row.verdict == "ok"
    assert "±3" in prose.check_table(v, fx.trial())


def test_rounding_tolerance_follows_the_published_decimals():
    assert prose.rounding_tolerance("116.4") == pytest.approx(0.05)
    assert prose.rounding_tolerance("0.552") == pytest.approx(0.0005)
    assert prose.rounding_tolerance("59") == pytest.approx(0.5)


def test_held_out_hr_is_compared_with_its_rounding():
    text = " ".join(prose.check_sentences(prose.check_verdicts(fx.check()), fx.trial()))
    assert "published HR 0.75 compares with 0.7512" in text and "within its rounding" in text


# --------------------------------------------------------------------------- headline


def test_headline_changes_between_a_ph_a_null_and_a_late_effect_trial():
    t = fx.trial()
    ph = " ".join(sentences(fx.headline("piecewise_ph", "sceptical", fx.results("piecewise_ph", PH_POST)), t))
    null = " ".join(sentences(fx.headline("piecewise_ph", "sceptical", fx.results("piecewise_ph", NULL_POST)), t))
    assert "Standard care, is 0.78 (95% CrI" in ph and "P(HR < 1) = 99.7%" in ph
    assert "1.00 (95% CrI" in null and "P(HR < 1) = 50.0%" in null
    late = fx.results("piecewise_tv", PH_POST, extra={"sceptical": {
        "hr_ratio_late_early": (0.55, 0.3, 0.98), "p_hr_ratio_late_early_lt_1": (0.976, math.nan, math.nan)}})
    lt = " ".join(sentences(fx.headline("piecewise_tv", "sceptical", late), t))
    assert "ratio of the late to the early hazard ratio is 0.55" in lt and "P(ratio < 1) = 97.6%" in lt
    assert "late to the early" not in ph


def test_no_eligible_model_says_so():
    res = fx.results("piecewise_ph", PH_POST)
    s = " ".join(sentences(fx.headline("piecewise_ph", "sceptical", res, none=True), fx.trial()))
    assert "no model-based headline" in s
    md = compose(inputs(head=fx.headline("piecewise_ph", "reference", res, none=True)))
    assert "no model is eligible for the headline" in main_text(md)


def test_publication_check_without_a_published_ci_says_why():
    res = fx.results("piecewise_ph", PH_POST)
    with_ci = " ".join(prose.publication_check_sentences(fx.headline("piecewise_ph", "sceptical", res), None,
                                                         fx.trial()))
    assert "published HR (0.75, 95% CI 0.60 to 0.93) gives HR 0.80" in with_ci
    no_ci = " ".join(prose.publication_check_sentences(
        fx.headline("piecewise_ph", "sceptical", res, conj_published=False), None, fx.trial(hr_ci=False)))
    assert "given without a confidence interval" in no_ci and "published HR (0.75, 95% CI" not in no_ci
    none = " ".join(prose.publication_check_sentences(
        fx.headline("piecewise_ph", "sceptical", res, conj_published=False), None, fx.trial(reported_hr=None)))
    assert "gives no published HR" in none


def test_publication_check_counts_the_headline_models_ppc():
    res = fx.results("piecewise_ph", PH_POST)
    ppc = pd.DataFrame([dict(model="piecewise_ph", prior="sceptical", arm=fx.REF, statistic=s, verdict=v)
                        for s, v in (("S(12)", "ok"), ("S(24)", "ok"), ("median", "outside"))])
    s = " ".join(prose.publication_check_sentences(fx.headline("piecewise_ph", "sceptical", res), ppc, fx.trial()))
    assert "reproduce 2 of 3" in s and "misses median Standard care" in s


# --------------------------------------------------------------------------- anchors


def test_anchors_sentence_reads_the_last_milestone_and_horizon():
    s = prose.anchors_sentence(fx.anchors(), fx.trial())
    assert "ΔS(24 months) = 0.100 (95% CI 0.010 to 0.190" in s and "ΔRMST(24 months) = 1.5 months" in s
    assert "ΔS(12" not in s
    assert prose.anchors_sentence(None, fx.trial()) == "No model-free anchors were computed in this run."


# --------------------------------------------------------------------------- prior community


def test_community_names_the_priors_at_each_end():
    inp = inputs()
    s = " ".join(prose.community_sentences(inp.results, None, inp.head, inp.priors_used, 0.7, inp.trial))
    assert re.search(r"P\(HR < 1\) ranges from [0-9.]+% \(pessimistic\) to >99.9% \((reference|enthusiastic)\)", s) \
        or "P(HR < 1) ranges from" in s
    assert "across the 4 priors (reference, sceptical, enthusiastic and pessimistic)" in s
    assert "P(HR < 0.7) ranges from" in s


def test_custom_priors_only_are_named_and_no_sceptic_is_invented():
    pri = fx.custom_priors()
    post = {"strong_sceptic": (math.log(0.9), 0.08), "mild": (math.log(0.8), 0.1)}
    inp = inputs(post=post, priors=pri, mcid=0.75)
    md = main_text(compose(inp))
    assert "strong_sceptic" in md and "mild" in md
    assert "sceptical prior" not in md.replace("sceptical priors N(0, σ²)", "")
    assert "A sceptical reader" not in md and "reference" not in md.split("## The prior community")[1][:600]
    s = " ".join(prose.community_sentences(inp.results, None, inp.head, pri, 0.75, inp.trial))
    assert "across the 2 priors (strong_sceptic and mild)" in s


def test_a_single_prior_is_not_a_range():
    post = {"sceptical": (math.log(0.9), 0.08)}
    inp = inputs(post=post)
    s = " ".join(prose.community_sentences(inp.results, None, inp.head, inp.priors_used, 0.7, inp.trial))
    assert "with a single prior (sceptical)" in s and "ranges from" not in s and "not a community" in s


def test_equal_probabilities_are_stated_once_not_as_a_range():
    post = {"a": (math.log(0.3), 0.05), "b": (math.log(0.31), 0.05)}
    pri = {k: fx.PriorSpec(k, 0.0, 1.0) for k in post}
    inp = inputs(post=post, priors=pri)
    s = " ".join(prose.community_sentences(inp.results, None, inp.head, pri, 0.7, inp.trial))
    assert "P(HR < 1) is >99.9% under every prior" in s
    assert not re.search(r"from (\S+) \(\w+\) to \1", s)


def test_a_probability_the_results_lack_is_not_stated():
    inp = inputs()
    res = inp.results[inp.results.quantity != "p_hr_lt_0.7"]
    s = " ".join(prose.community_sentences(res, None, inp.head, inp.priors_used, 0.7, inp.trial))
    assert "P(HR < 0.7)" not in s and "0.0%" not in s


def test_another_mcid_is_the_threshold_everywhere():
    inp = inputs(mcid=0.8, priors=fx.priors(tuple(PH_POST), 0.8), res=fx.results("piecewise_ph", PH_POST, 0.8),
                 tipping=fx.tipping(mcid=0.8))
    md = compose(inp)
    assert "P(HR < 0.8)" in main_text(md) and "minimal clinically important difference is HR 0.8" in md
    assert "HR < 0.8 a probability of" in main_text(md)
    assert "0.7" not in re.sub(r"[0-9]0\.7|0\.7[0-9]", "", md.replace("0.70", ""))


def test_thresholds_of_the_estimands_follow_the_mcid():
    assert estimands.hr_thresholds(0.8) == (1.0, 0.8)
    assert estimands.hr_thresholds(None) == estimands.HR_THRESHOLDS


# --------------------------------------------------------------------------- tipping point


def test_tipping_point_states_the_refit_closest_to_the_threshold():
    s = prose.tipping_sentence(fx.tipping(), 0.95, 0.7)
    assert "σ = 0.170" in s and "P(HR < 1) = 95.1%" in s and "just above 95%" in s
    assert "HR < 0.7 a probability of" in s
    s2 = prose.tipping_sentence(fx.tipping(sigmas=((0.3, 0.97), (0.25, 0.946))), 0.95, 0.7)
    assert "σ = 0.250" in s2 and "just below 95%" in s2


def test_no_tipping_point_when_even_a_flat_prior_falls_short():
    s = prose.tipping_sentence(fx.tipping(flat_inf=True), 0.95, 0.7)
    assert "there is no tipping point" in s and "σ =" not in s


def test_tipping_point_not_computed_says_why():
    from kmbayes.tipping import TIPPING_COLUMNS

    tp = pd.DataFrame([dict(method="none", model="cure", source="reference fit", note="not computed: the "
                            "model's benefit acts through the cure fraction, not an HR")], columns=TIPPING_COLUMNS)
    s = prose.tipping_sentence(tp, 0.95, 0.7)
    assert "not computed for the mixture cure model: the model's benefit acts through the cure fraction" in s
    assert "not computed in this run" in prose.tipping_sentence(None, 0.95, 0.7)
    assert "nan" not in s


# --------------------------------------------------------------------------- limits, methods, tables


def test_limits_mention_missing_cis_only_when_they_are_missing():
    assert "no confidence intervals" in prose.limits_text(fx.trial(ci=False))
    assert "no confidence intervals" not in prose.limits_text(fx.trial(ci=True))


def test_methods_describe_what_the_trial_file_gave():
    no_ci = prose.methods_paragraph(fx.trial(ci=False), ["piecewise_ph"], fx.priors(), 0.7, "sceptical", 8, True)
    assert "survival at 12 and 24 months (no CIs)" in no_ci and "the median (no CI)" in no_ci
    assert "1 model family was fitted" in no_ci and "8 replicates" in no_ci
    ci = prose.methods_paragraph(fx.trial(), ["piecewise_ph", "cure"], fx.priors(), 0.7, "sceptical", 1, False)
    assert "with 95% CIs" in ci and "2 model families were" in ci and "replicates" not in ci


def test_report_has_no_internal_ids_nan_or_raw_floats():
    md = compose(inputs())
    for bad in ("piecewise_ph", "p_hr_lt_", "surv_diff", "rmst_diff", "delta_s_", " nan", "nan |", "inf |"):
        assert bad not in md, bad
    assert not re.search(r"\d\.\d{5,}", md.split("## Reproducibility")[0]), "unrounded number"
    for section in ("## What was done", "## Reconstruction check", "## Headline", "## Model-free anchors",
                    "## The prior community", "## Tipping point",
                    "## What reconstructed data can and cannot support", "# Supplement", "## Reproducibility"):
        assert section in md


def test_an_excluded_model_is_explained_with_arm_labels_not_ids():
    res = fx.results("piecewise_ph", PH_POST)
    extra = [dict(role="candidate", model="weibull_ph", prior="sceptical", quantity="effect", estimate=math.nan,
                  lower=math.nan, upper=math.nan,
                  note=f"hazard ratio (proportional hazards); excluded: misses published S(24) {fx.REF}, "
                       f"median {fx.TREAT}")]
    s = " ".join(sentences(fx.headline("piecewise_ph", "sceptical", res, extra_rows=extra), fx.trial()))
    assert "Weibull proportional hazards model was not eligible (misses published S(24) Standard care, " \
           "median New drug)" in s
    assert fx.REF not in s and fx.TREAT not in s


def test_tipping_point_next_to_the_threshold_is_not_printed_as_the_threshold():
    s = prose.tipping_sentence(fx.tipping(sigmas=((0.163, 0.9496),)), 0.95, 0.7)
    assert "P(HR < 1) = 94.96%, just below 95%" in s


def test_supplement_headline_table_names_arms_by_label():
    from kmbayes.report.tables import headline_table

    res = fx.results("piecewise_ph", PH_POST)
    extra = [dict(role="candidate", model="cure", prior="sceptical", quantity="effect", estimate=math.nan,
                  lower=math.nan, upper=math.nan, note=f"hazard ratio among the uncured; excluded: misses "
                                                       f"published S(12) {fx.TREAT}")]
    t = headline_table(fx.headline("piecewise_ph", "sceptical", res, extra_rows=extra), fx.trial())
    assert "misses published S(12) New drug" in t and fx.TREAT not in t and "Mixture cure" in t


def test_tied_extremes_name_every_prior_at_that_end():
    post = {"reference": (math.log(0.5), 0.08), "sceptical": (math.log(0.55), 0.07),
            "pessimistic": (math.log(0.8), 0.1)}
    inp = inputs(post=post)
    s = " ".join(prose.community_sentences(inp.results, None, inp.head, inp.priors_used, 0.7, inp.trial))
    assert "to >99.9% (reference and sceptical)" in s


def test_methods_count_the_replicates_actually_pooled():
    pooling = pd.DataFrame([dict(model="piecewise_ph", prior="reference", quantity="hr", width_ratio=1.1,
                                 replicates=3, gate_passed=True)])
    md = main_text(compose(inputs(pooling=pooling, replicates=8)))
    assert "with 3 replicates" in md and "8 replicates" not in md
    assert "with 8 replicates" in main_text(compose(inputs(replicates=8)))


def test_a_fit_that_failed_the_gate_is_named_beside_the_headline():
    md = main_text(compose(inputs(failed=[("smooth_tv", "sceptical")])))
    head = md.split("## Headline", 1)[1].split("## Model-free", 1)[0]
    assert "Warning: smooth time-varying hazard ratio under the sceptical prior failed the diagnostic gate" in head
    assert "Warning" not in main_text(compose(inputs()))


def test_a_miss_is_printed_precisely_enough_to_see_it():
    v = prose.check_verdicts(fx.check("29.94"))  # 30.0 +- 0.05: outside, but prints as 29.9 at 1 decimal
    text = " ".join(prose.check_sentences(v, fx.trial()))
    assert "(published 30.0, reconstructed 29.940)" in text


def test_cure_support_sentence_states_each_arms_plateau():
    from types import SimpleNamespace

    import pandas as pd

    from kmbayes.report.prose import cure_support_sentence

    arm = lambda label: SimpleNamespace(label=label, name=label)  # noqa: E731
    trial = SimpleNamespace(arm_ids=["a", "b"], arms={"a": arm("Arm A"), "b": arm("Arm B")},
                            time_unit="months")
    rows = []
    for a, plateau, n, km in (("a", 35.04, 2, 0.059), ("b", 43.72, 1, 0.294)):
        for q, v in (("plateau", plateau), ("followed_after_last_event", n), ("km_at_plateau", km)):
            rows.append({"kind": "support", "arm": a, "quantity": q, "estimate": v})
    s = cure_support_sentence(pd.DataFrame(rows), trial)
    assert "Arm A: flat for 35.0 months after the last death, with 2 patients still followed" in s
    assert "Arm B: flat for 43.7 months" in s and "1 patient still followed" in s
    assert cure_support_sentence(None, trial) == ""
