"""The generated report ``reports/reanalysis.md`` (and ``reanalysis.html`` beside it).

A main text of about a page — what was done, the reconstruction check with
verdicts, the headline (by :mod:`kmbayes.headline`) with its check against the
publication, the model-free anchors, the prior community in one table, the
tipping point in one sentence, and what reconstructed data cannot support —
then the figures and a supplement with every table under human names.

Every sentence comes from a rule in :mod:`kmbayes.report.prose` applied to the
run's own tables and the trial file; every table from
:mod:`kmbayes.report.tables`. The report is regenerated, never hand-edited.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import prose
from .fmt import md_table as _md_table
from .html import markdown_to_html
from .names import MODEL_NAMES, arm_name, model_name, model_phrase, quantity_name
from .prose import limits_text
from .tables import (
    diagnostics_table,
    interval_frame,
    interval_hr_table,
    published_table,
    results_table,
    sampling_items,
)

__all__ = [
    "FIGURES", "MODEL_NAMES", "ReportInputs", "compose", "diagnostics_table", "interval_frame", "interval_hr_table",
    "limits_text", "load_inputs", "markdown_to_html", "model_name", "published_table", "quantity_name",
    "results_table", "sampling_items", "write_html", "_md_table",
]

#: captions of the figures the figures step draws (by file stem); a figure not
#: listed here is shown under its file name
FIGURE_CAPTIONS = {
    "fig1_km_reconstruction": "Reconstructed Kaplan-Meier curves with the published numbers.",
    "fig2_hr_triplot": "Prior, likelihood and posterior of the hazard ratio per prior.",
    "fig3_forest": "Posterior HR (median, 95% CrI) and P(HR < 1) across models and priors.",
    "fig4_posterior_survival": "Posterior survival curves over the reconstructed Kaplan-Meier curves.",
    "fig5_hr_over_time": "HR over time from the time-varying models against the constant-HR fits.",
    "fig6_prob_benefit": "Probability of benefit P(HR < h) against the threshold h, per prior.",
    "fig7_rmst_difference": "Difference in restricted mean survival time against the horizon.",
    "fig8_diagnostics": "Rank plots of the key parameters and the LOO comparison.",
}

#: (stem, caption) in figure order (``tests/test_figures.py`` checks the stems against
#: :data:`kmbayes.figures.FIGURE_STEMS`, so a renamed figure is noticed)
FIGURES = list(FIGURE_CAPTIONS.items())

REFERENCES = [
    "Guyot P, Ades AE, Ouwens MJ, Welton NJ. Enhanced secondary analysis of survival data: reconstructing "
    "the data from published Kaplan-Meier survival curves. BMC Med Res Methodol 2012;12:9.",
    "Spiegelhalter DJ, Abrams KR, Myles JP. Bayesian Approaches to Clinical Trials and Health-Care "
    "Evaluation. Wiley, 2004.",
    "Vehtari A, Gelman A, Simpson D, Carpenter B, Bürkner PC. Rank-normalization, folding, and "
    "localization: an improved R-hat for assessing convergence of MCMC. Bayesian Analysis "
    "2021;16(2):667-718.",
    "Vehtari A, Gelman A, Gabry J. Practical Bayesian model evaluation using leave-one-out "
    "cross-validation and WAIC. Stat Comput 2017;27:1413-1432.",
]


@dataclass
class ReportInputs:
    """Everything the report is written from (the run's tables, the trial file, the spec used).

    Tables are DataFrames as the run wrote them (None when absent);
    ``check`` is the reconstruction check read as strings, so the published
    numbers keep their decimals (the rounding tolerance is read from them).
    """

    trial: object
    results: pd.DataFrame
    head: pd.DataFrame
    priors_used: dict
    headline_prior: str
    mcid: float | None
    milestones: list
    horizons: list
    models: list = field(default_factory=list)
    diagnostics: pd.DataFrame | None = None
    pooled: pd.DataFrame | None = None
    pooling: pd.DataFrame | None = None
    anchors: pd.DataFrame | None = None
    ppc: pd.DataFrame | None = None
    ph: pd.DataFrame | None = None
    loo: pd.DataFrame | None = None
    tipping: pd.DataFrame | None = None
    intervals: pd.DataFrame | None = None
    check: pd.DataFrame | None = None
    cure: pd.DataFrame | None = None
    tipping_threshold: float = 0.95
    replicates: int | None = None
    repro: dict = field(default_factory=dict)
    sampling: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    figures_dir: Path | None = None
    report_dir: Path | None = None


def _csv(path: Path, **kw) -> pd.DataFrame | None:
    return pd.read_csv(path, **kw) if path.exists() else None


def load_inputs(reports: Path, trial, spec, check_csv: Path | None, **extra) -> ReportInputs:
    """Read the run's tables under ``reports`` into :class:`ReportInputs`.

    ``spec`` is the run spec actually used (after ``--trial`` adaptation);
    ``extra`` sets the remaining fields (``intervals``, ``repro``, ``sampling``,
    ``failed``, ``figures_dir``).
    """
    from ..headline import headline_prior

    reports = Path(reports)
    res = pd.read_csv(reports / "results.csv")
    is_pooled = res.quantity.astype(str).str.startswith("pooled_")
    check = None
    if check_csv is not None and Path(check_csv).exists():
        check = pd.read_csv(check_csv, dtype=str, keep_default_na=False)
    return ReportInputs(
        trial=trial, results=res[~is_pooled], head=pd.read_csv(reports / "headline.csv"),
        priors_used=dict(spec.priors), headline_prior=headline_prior(spec), mcid=spec.mcid_hr,
        milestones=list(spec.milestones), horizons=list(spec.rmst_horizons), models=list(spec.models),
        diagnostics=_csv(reports / "diagnostics.csv"), pooled=_csv(reports / "results_pooled.csv"),
        pooling=_csv(reports / "pooling.csv"), anchors=_csv(reports / "anchors.csv"),
        ppc=_csv(reports / "ppc.csv"), ph=_csv(reports / "ph_check.csv"), loo=_csv(reports / "loo_compare.csv"),
        tipping=_csv(reports / "tipping_point.csv"), check=check, cure=_csv(reports / "cure_check.csv"),
        tipping_threshold=getattr(spec, "tipping_threshold", 0.95),
        replicates=getattr(spec, "replicates", None), report_dir=reports, **extra)


def _figures(inp: ReportInputs) -> list[tuple[str, str]]:
    """(relative path, caption) of every full-width PNG figure of the run."""
    if inp.figures_dir is None or not Path(inp.figures_dir).is_dir():
        return []
    base = Path(inp.report_dir) if inp.report_dir else Path(inp.figures_dir).parent
    out = []
    for png in sorted(Path(inp.figures_dir).glob("*.png")):
        if png.stem.endswith(("_single", "_1col", "_column")):  # narrow variants of the same figure
            continue
        cap = FIGURE_CAPTIONS.get(png.stem, png.stem.replace("_", " "))
        out.append((os.path.relpath(png.resolve(), base.resolve()), cap))
    return out


def _replicates(inp: ReportInputs) -> int | None:
    """Replicates actually pooled (``pooling.csv``), else those the spec asked for."""
    if inp.pooling is not None and len(inp.pooling) and "replicates" in inp.pooling:
        return int(inp.pooling.replicates.max())
    return inp.replicates


def compose(inp: ReportInputs) -> str:
    """The report's Markdown text (main text, figures, supplement, reproducibility)."""
    from ..headline import sentences

    t = inp.trial
    treat, ref = arm_name(t, t.treatment_arm), arm_name(t, t.reference_arm)
    pooled_ran = inp.pooled is not None and len(inp.pooled) > 0
    verdicts = prose.check_verdicts(inp.check) if inp.check is not None else None
    head_sent = " ".join(sentences(inp.head, t))
    if inp.failed:
        head_sent += (" Warning: " + ", ".join(f"{model_phrase(m)} under the {p} prior" for m, p in inp.failed)
                      + " failed the diagnostic gate (flagged in every table).")
    design = prose.design_sentence(t)
    parts = [
        f"# Bayesian reanalysis: {t.name}, {t.endpoint}",
        "",
        "_Generated by `kmbayes run` from the trial file and the run's own tables; do not edit by hand._",
        "",
        *([design, ""] if design else []),
        "## What was done",
        "",
        prose.methods_paragraph(t, inp.models or list(dict.fromkeys(inp.results.model)), inp.priors_used,
                                inp.mcid, inp.headline_prior, _replicates(inp), pooled_ran)
        + f" Hazard ratios are {treat} vs {ref} (HR < 1 favours {treat}).",
        "",
        "## Reconstruction check",
        "",
        " ".join(prose.check_sentences(verdicts, t)),
        "",
        "## Headline",
        "",
        head_sent,
        "",
        " ".join(prose.publication_check_sentences(inp.head, inp.ppc, t)),
        "",
        prose.cure_support_sentence(inp.cure, t) if "cure" in inp.models else "",
        "",
        "## Model-free anchors",
        "",
        prose.anchors_sentence(inp.anchors, t),
        "",
        "## The prior community",
        "",
        " ".join(prose.community_sentences(inp.results, inp.pooled, inp.head, inp.priors_used, inp.mcid, t)),
        "",
        prose.community_table(inp.results, inp.pooled, inp.head, inp.priors_used, inp.mcid, t),
        "",
        "## Tipping point",
        "",
        prose.tipping_sentence(inp.tipping, inp.tipping_threshold, inp.mcid, inp.head),
        "",
        "## What reconstructed data can and cannot support",
        "",
        prose.limits_text(t),
        "",
    ]
    figs = _figures(inp)
    if figs:
        parts += ["## Figures", ""]
        for i, (rel, cap) in enumerate(figs, 1):
            parts += [f"![Figure {i}. {cap}]({rel})", ""]
    parts += supplement(inp, verdicts)
    parts += ["## Reproducibility", "", "```", *[f"{k}: {v}" for k, v in inp.repro.items()], "```", "",
              "## References", ""]
    parts += [f"- {r}" for r in REFERENCES] + ([f"- {t.citation}"] if t.citation else [])
    return "\n".join(parts) + "\n"


def supplement(inp: ReportInputs, verdicts) -> list[str]:
    """The supplement: every table of the run, numbered S1, S2, ..."""
    from . import tables as T

    t = inp.trial
    pids = list(inp.priors_used)
    sections: list[tuple[str, str]] = []
    if verdicts is not None and len(verdicts):
        sections.append(("Reconstruction check: every published number", prose.check_table(verdicts, t)))
    sections.append(("The headline rule", T.headline_table(inp.head, t)))
    sections.append((
        "Estimates by model and prior (single reconstruction)",
        f"Posterior medians with 95% equal-tailed credible intervals. ΔS and ΔRMST are "
        f"{arm_name(t, t.treatment_arm)} minus {arm_name(t, t.reference_arm)}; RMST in {t.time_unit}.\n\n"
        + T.results_table(inp.results, t, inp.milestones, inp.horizons, inp.mcid, pids)
        + (("\n\nFamily-specific estimands:\n\n" + fam) if (fam := T.family_table(inp.results, t, pids)) else "")))
    if inp.pooled is not None and len(inp.pooled):
        sections.append(("Reconstruction uncertainty (pooled over replicates)",
                         "Each reconstruction replicate was fitted with the same model and the draws were "
                         "mixed; the width ratio compares the pooled and single-reconstruction 95% intervals "
                         "of the HR.\n\n" + T.pooled_table(inp.pooled, inp.pooling, t, pids)))
    if inp.intervals is not None and len(inp.intervals):
        sections.append(("HR over time (time-varying models, per interval)",
                         "A stretch is *pinned* when published numbers fix the curves at both its ends, "
                         "*interpolated* when its shape is the reconstruction's assumption.\n\n"
                         + T.interval_hr_table(inp.intervals, t, pids)))
    if inp.ppc is not None and len(inp.ppc):
        sections.append(("Posterior predictive check against the publication",
                         "Replicated trials of the published size and censoring; a published value outside "
                         "the central 95% of the replicates is a miss.\n\n" + T.ppc_table(inp.ppc, t, pids)))
    if inp.anchors is not None and len(inp.anchors):
        sections.append(("Model-free anchors", prose.anchors_table(inp.anchors, t)))
    if inp.ph is not None and len(inp.ph):
        sections.append(("Proportional hazards", T.ph_table(inp.ph, t)))
    if inp.loo is not None and len(inp.loo):
        sections.append(("Model comparison (PSIS-LOO)", T.loo_table(inp.loo, pids)))
    if inp.tipping is not None and len(inp.tipping):
        sections.append(("Tipping point computations",
                         f"Sceptical priors N(0, σ²) on the log HR: the σ at which P(HR < 1) reaches "
                         f"{inp.tipping_threshold:.0%}, by each method; the refits are the model's answer."
                         "\n\n" + T.tipping_table(inp.tipping, inp.mcid)))
    if inp.diagnostics is not None and len(inp.diagnostics):
        sections.append(("Sampling and diagnostics",
                         "\n".join(re.sub(r"^\d+\.\s*", "- ", x) for x in inp.sampling)
                         + ("\n\n" if inp.sampling else "")
                         + T.diagnostics_table(inp.diagnostics, pids)))
    out = ["# Supplement", ""]
    for i, (title, body) in enumerate(sections, 1):
        out += [f"## S{i}. {title}", "", body, ""]
    return out


def write_html(md_text: str, md_path: Path, title: str) -> str:
    """The self-contained HTML of the report at ``md_path`` (figures inlined)."""
    return markdown_to_html(md_text, Path(md_path).parent, title)
