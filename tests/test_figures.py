"""The report figures: structure, labels, files -- on small synthetic posteriors.

Nothing here samples. Posteriors are drawn directly in the shape and under the
variable names of the model families, and wrapped in stand-ins with the
attributes :mod:`kmbayes.estimands` reads (``model``, ``idata``, ``data``,
``ctx``, ``prior``), so the figure code runs end to end through the real
estimands in about a second per figure.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

arviz = pytest.importorskip("arviz")
mpl = pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from kmbayes import families, figures, style  # noqa: E402
from kmbayes import priors as priors_mod  # noqa: E402
from kmbayes.data import SurvivalData  # noqa: E402
from kmbayes.trial import load_trial  # noqa: E402

from .conftest import CLOCC_TOML  # noqa: E402

MODELS = ("weibull_ph", "piecewise_ph", "piecewise_tv")
PRIORS = ("reference", "sceptical", "enthusiastic", "pessimistic")
CHAINS, DRAWS = 2, 100


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trial():
    return load_trial(CLOCC_TOML)


@pytest.fixture(scope="module")
def ipd(trial) -> pd.DataFrame:
    """Exponential survival with uniform censoring, CLOCC-sized."""
    rng = np.random.default_rng(7)
    parts = []
    for arm, median in ((trial.reference_arm, 40.0), (trial.treatment_arm, 55.0)):
        n = trial.arms[arm].n
        t = rng.exponential(median / math.log(2), n)
        c = rng.uniform(80, 140, n)
        parts.append(pd.DataFrame({"time": np.minimum(t, c).round(2), "event": (t <= c).astype(int), "arm": arm}))
    return pd.concat(parts, ignore_index=True)


def _posterior(model: str, mu: float, sd: float, rng) -> tuple[dict, dict]:
    shape = (CHAINS, DRAWS)
    lh = rng.normal(mu, sd, shape)
    log_rate = math.log(math.log(2) / 40)
    if model == "weibull_ph":
        post = {"log_hr": lh, "alpha": rng.normal(math.log(math.log(2) * 36 / 40), 0.1, shape),
                "log_shape": rng.normal(0.0, 0.05, shape), "hr": np.exp(lh)}
        return post, {}
    j = len(families.DEFAULT_CUTS) - 1
    post = {"log_lambda": rng.normal(log_rate, 0.15, shape + (j,))}
    if model == "piecewise_ph":
        post.update(log_hr=lh, hr=np.exp(lh))
        return post, {"log_lambda": ["interval"]}
    tau = np.abs(rng.normal(0.3, 0.1, shape))
    z = rng.normal(np.linspace(0.5, -1.0, j), 0.5, shape + (j,))
    post.update(log_hr_mean=lh, tau=tau, z=z, log_hr_interval=lh[..., None] + tau[..., None] * z)
    post["hr"] = np.exp(lh)
    return post, {k: ["interval"] for k in ("log_lambda", "z", "log_hr_interval")}


@pytest.fixture(scope="module")
def grid(trial, ipd):
    """A stand-in for ``fitting.GridResult``: fits keyed by (model, prior)."""
    rng = np.random.default_rng(11)
    data = SurvivalData(
        ipd["time"].to_numpy(float), ipd["event"].to_numpy(float),
        (ipd["arm"] == trial.treatment_arm).to_numpy(int),
        arm_ids=(trial.reference_arm, trial.treatment_arm),
    )
    ctx = {"t_ref": 36.0, "cuts": families.DEFAULT_CUTS}
    labels = families.interval_labels(families.DEFAULT_CUTS)
    fits = {}
    for pid, spec in priors_mod.prior_set(PRIORS).items():
        # Conjugate normal posterior around a likelihood of HR 0.6 (SE 0.21).
        w = 1 / spec.sigma**2 + 1 / 0.21**2
        mu = (spec.mu / spec.sigma**2 + math.log(0.6) / 0.21**2) / w
        for model in MODELS:
            post, dims = _posterior(model, mu, w**-0.5, rng)
            flat = {k: v.reshape(CHAINS * DRAWS, *v.shape[2:]) for k, v in post.items()}
            ll = families.get(model).pointwise_loglik(flat, data, ctx).reshape(CHAINS, DRAWS, -1)
            idata = arviz.from_dict({"posterior": post, "log_likelihood": {"obs": ll}},
                                    coords={"interval": labels}, dims=dims)
            fits[(model, pid)] = SimpleNamespace(
                model=model, prior=spec, idata=idata, data=data, ctx=ctx, gate_passed=True, diagnostics={}
            )
    return SimpleNamespace(fits=fits, loo=None)


def _drawn_texts(fig: Figure) -> list:
    """Texts actually drawn: visible, non-empty, and (for tick labels) in view.

    Matplotlib keeps tick labels for locations outside the axis limits; they
    are never drawn, so they must not count as overlaps.
    """
    fig.canvas.draw()
    skip = set()
    for ax in fig.get_axes():
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not (lo - tol <= tick.get_loc() <= hi + tol):
                    skip.update({id(tick.label1), id(tick.label2)})
    return [t for t in fig.findobj(mpl.text.Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in skip]


def _check_print_quality(fig: Figure, min_pt: float = 7.0) -> None:
    """Text >= ``min_pt`` at print size, no two texts overlap, none cut off."""
    renderer = fig.canvas.get_renderer()
    texts = _drawn_texts(fig)
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < min_pt]
    assert not small, f"text below {min_pt} pt: {small}"
    # Shrink boxes a little: glyph boxes of adjacent lines touch by design.
    boxes = [(t, t.get_window_extent(renderer).expanded(0.98, 0.9)) for t in texts]
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            assert not ba.overlaps(bb), f"overlapping text: {a.get_text()!r} / {b.get_text()!r}"
    w, h = fig.bbox.width, fig.bbox.height
    cut = [t.get_text() for t, b in boxes if b.x0 < -1 or b.y0 < -1 or b.x1 > w + 1 or b.y1 > h + 1]
    assert not cut, f"text outside the figure: {cut}"


@pytest.fixture
def close():
    """Check each figure's print quality, and clear it after the test."""
    made: list[Figure] = []

    def register(fig: Figure) -> Figure:
        made.append(fig)
        _check_print_quality(fig)
        return fig

    yield register
    for f in made:
        f.clear()


def _texts(fig: Figure) -> str:
    """Every piece of text in a figure, for "does the label appear" checks."""
    return "\n".join(t.get_text() for t in fig.findobj(mpl.text.Text))


def _visible_axes(fig: Figure) -> list:
    return [ax for ax in fig.get_axes() if ax.get_visible()]


# --------------------------------------------------------------------------- figures


def test_km_has_curves_published_points_and_at_risk_table(ipd, trial, close):
    fig = figures.plot_km(ipd, trial)
    close(fig)
    assert isinstance(fig, Figure)
    ax, ax_tab = fig.get_axes()
    text = _texts(fig)
    for arm in trial.arms.values():
        assert arm.name in text
    assert "months" in ax.get_xlabel()
    assert "Number at risk" in ax_tab.get_title(loc="left")
    # At risk at time 0 is every patient of the arm.
    row_text = [t.get_text() for t in ax_tab.texts]
    for arm_id in trial.arm_ids:
        assert str(trial.arms[arm_id].n) in row_text
    # One step curve per arm plus published landmark error bars.
    assert len(ax.containers) >= 2 * len(trial.arm_ids)


def test_km_uses_one_replicate_for_the_table(ipd, trial, close):
    stacked = pd.concat([ipd.assign(replicate=1), ipd.assign(replicate=2)], ignore_index=True)
    fig = figures.plot_km(stacked, trial)
    close(fig)
    counts = {t.get_text() for t in fig.get_axes()[1].texts}
    assert str(2 * trial.arms[trial.reference_arm].n) not in counts


def test_triplot_one_panel_per_prior(grid, trial, close):
    post = {p: grid.fits[("piecewise_ph", p)] for p in PRIORS}
    specs = {p: f.prior for p, f in post.items()}
    fig = figures.plot_hr_triplot(post, specs, trial, likelihood=(math.log(0.6), 0.21), model="piecewise_ph")
    close(fig)
    axes = _visible_axes(fig)
    assert len(axes) == len(PRIORS)
    text = _texts(fig)
    assert text.count("P(HR < 1)") == len(PRIORS)
    for p in PRIORS:
        assert style.prior_label(p) in text
    assert trial.arms[trial.treatment_arm].name in text
    assert all(ax.get_xscale() == "log" for ax in axes)


def test_triplot_accepts_plain_draws(trial, close):
    rng = np.random.default_rng(0)
    fig = figures.plot_hr_triplot({"reference": np.exp(rng.normal(-0.5, 0.2, 500))},
                                  {"reference": (0.0, 10.0)}, trial)
    close(fig)
    assert len(_visible_axes(fig)) == 1


def test_forest_rows_and_text_columns(grid, trial, close):
    fig = figures.plot_forest(grid.fits, trial, likelihood=(math.log(0.6), 0.21))
    close(fig)
    assert len(fig.get_axes()) == 3
    text = _texts(fig)
    for m in MODELS:
        assert style.model_label(m) in text
    for p in PRIORS:
        assert style.prior_label(p) in text
    assert "P(HR < 1)" in text and "Published (Cox)" in text
    for arm in trial.arms.values():
        assert arm.name in text
    # 3 models x 4 priors + 2 frequentist rows, each with an HR (95% ...) entry.
    ax_t = fig.get_axes()[2]
    assert sum("(" in t.get_text() and "\u2013" in t.get_text() for t in ax_t.texts) == 14


def test_forest_marks_fits_that_failed_the_gate(grid, trial, close):
    fits = dict(grid.fits)
    bad = ("weibull_ph", "sceptical")
    fits[bad] = SimpleNamespace(**{**vars(fits[bad]), "gate_passed": False})
    fig = figures.plot_forest(fits, trial)
    close(fig)
    assert "\u2020" in _texts(fig)


def test_posterior_survival_one_panel_per_model(grid, ipd, trial, close):
    fig = figures.plot_posterior_survival({m: grid.fits[(m, "reference")] for m in MODELS}, ipd, trial)
    close(fig)
    assert len(_visible_axes(fig)) == len(MODELS)
    text = _texts(fig)
    assert "reference prior" in text
    for arm in trial.arms.values():
        assert arm.name in text
    assert "months" in text


def test_hr_over_time_has_tv_and_constant_panels(grid, trial, close):
    ref = {m: grid.fits[(m, "reference")] for m in MODELS}
    fig = figures.plot_hr_over_time(ref["piecewise_tv"], {m: ref[m] for m in MODELS[:2]}, trial,
                                    times=np.linspace(0.1, 140, 200), band_model="piecewise_ph")
    close(fig)
    ax, ax_c = fig.get_axes()
    assert ax.get_yscale() == "log"
    assert len(ax_c.get_xticklabels()) == 2
    assert trial.arms[trial.treatment_arm].name in _texts(fig)


def test_prob_benefit_lines_per_prior(grid, trial, close):
    fig = figures.plot_prob_benefit(grid.fits, trial, models=["weibull_ph", "piecewise_ph"])
    close(fig)
    axes = _visible_axes(fig)
    assert len(axes) == 2
    assert all(len(ax.get_lines()) >= len(PRIORS) for ax in axes)
    ys = axes[0].get_lines()[-1].get_ydata()
    assert np.all(np.diff(ys) >= 0) and 0 <= ys.min() and ys.max() <= 1


def test_rmst_difference_panels(grid, ipd, trial, close):
    fig = figures.plot_rmst_difference({m: grid.fits[(m, "reference")] for m in MODELS}, trial,
                                       horizons=np.arange(12.0, 97.0, 12.0), ipd=ipd)
    close(fig)
    axes = _visible_axes(fig)
    assert len(axes) == len(MODELS)
    assert "months" in axes[0].get_ylabel()
    assert trial.arms[trial.reference_arm].name in _texts(fig)


def test_rmst_difference_matches_estimands(grid, trial):
    from kmbayes import estimands

    fit = grid.fits[("piecewise_ph", "reference")]
    diff, _ = figures._rmst_diff(fit, trial, np.array([60.0]))
    expected = estimands.rmst_draws(fit, 60.0)["difference"]
    assert np.allclose(diff[:, 0], expected, rtol=1e-4)


def test_diagnostics_rank_plots_and_loo(grid, close):
    fig = figures.plot_diagnostics({m: grid.fits[(m, "reference")] for m in MODELS})
    close(fig)
    axes = _visible_axes(fig)
    # Up to 3 rank plots per model (piecewise_ph has 2 key variables) + 1 LOO panel.
    assert len(axes) == 3 + 2 + 3 + 1
    assert "LOO" in _texts(fig)


def test_styles_do_not_leak_into_rcparams(ipd, trial, close):
    before = mpl.rcParams["font.size"]
    close(figures.plot_km(ipd, trial))
    assert mpl.rcParams["font.size"] == before


# --------------------------------------------------------------------------- files


def test_save_figure_writes_png_and_pdf_atomically(ipd, trial, tmp_path, close):
    fig = figures.plot_km(ipd, trial)
    close(fig)
    paths = figures.save_figure(fig, tmp_path / "out", "km")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["km.pdf", "km.png"]
    from PIL import Image

    with Image.open(paths[0]) as im:
        assert im.width >= fig.get_figwidth() * 200
    assert paths[1].read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError):
        figures.save_figure(fig, tmp_path, "low", dpi=100)


def test_draw_all_writes_eight_pngs_and_pdfs(grid, ipd, trial, tmp_path):
    seen: list[tuple[str, float]] = []
    timings: dict = {}
    paths = figures.draw_all(grid, ipd, trial, tmp_path, dpi=200,
                             progress=lambda stem, secs: seen.append((stem, secs)), timings=timings)
    assert len(paths) == 16
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{s}.{e}" for s in figures.FIGURE_STEMS for e in ("png", "pdf"))
    assert [p.stem for p in paths[::2]] == list(figures.FIGURE_STEMS)
    assert all(p.stat().st_size > 0 for p in paths)
    # One progress call per figure, with its time.
    assert sorted(s for s, _ in seen) == sorted(figures.FIGURE_STEMS)
    assert all(secs >= 0 for _, secs in seen) and set(timings) == set(figures.FIGURE_STEMS)


def test_figure_stems_match_the_report():
    report = pytest.importorskip("kmbayes.report")
    stems = [s for s, _ in getattr(report, "FIGURES", [])]
    if not stems:
        pytest.skip("report lists no figures")
    assert tuple(stems) == figures.FIGURE_STEMS


def test_reconstruct_path_does_not_import_figures():
    code = (
        "import sys, kmbayes.cli, kmbayes.reconstruct; "
        "print('kmbayes.figures' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    assert out.stdout.split() == ["False", "False"]


def test_draw_all_copes_with_a_one_model_one_prior_grid(grid, ipd, trial, tmp_path):
    """A sensitivity run (e.g. configs/weibull_only.toml) still yields all eight files."""
    sub = SimpleNamespace(fits={("weibull_ph", "sceptical"): grid.fits[("weibull_ph", "sceptical")]}, loo=None)
    paths = figures.draw_all(sub, ipd, trial, tmp_path, dpi=200, workers=1)
    assert len(paths) == 16 and all(p.exists() for p in paths)


def test_draw_all_single_adds_single_column_files(grid, ipd, trial, tmp_path, monkeypatch):
    """width="single" writes <stem>_single.* next to every figure, drawn 3.5 in wide.

    The figures themselves are checked at that width by
    test_single_column_variants_are_legible; here a stand-in keeps it quick.
    """
    widths: list[float] = []

    def stand_in(self, stem, width):
        widths.append(width)
        return figures._common.placeholder(stem, width)

    stems = figures.FIGURE_STEMS[:2]
    monkeypatch.setattr(figures._Job, "draw", stand_in)
    monkeypatch.setattr(figures, "FIGURE_STEMS", stems)
    paths = figures.draw_all(grid, ipd, trial, tmp_path, dpi=200, workers=1, width="single")
    assert len(paths) == 4 * len(stems)
    expected = {f"{s}{v}.{e}" for s in stems for v in ("", "_single") for e in ("png", "pdf")}
    assert {p.name for p in tmp_path.iterdir()} == expected
    assert sorted(set(widths)) == [style.SINGLE_COLUMN, style.DOUBLE_COLUMN]
    from PIL import Image

    with Image.open(tmp_path / "fig1_km_reconstruction_single.png") as im:
        assert im.width == pytest.approx(style.SINGLE_COLUMN * 200, abs=2)


def test_forest_draws_pooled_intervals_under_the_primary_ones(grid, trial, close):
    sub = {k: f for k, f in grid.fits.items() if k[0] == "piecewise_ph"}
    plain = figures.plot_forest(sub, trial)
    close(plain)
    both = figures.plot_forest(sub, trial, pooled=sub)
    close(both)
    # Each pooled row adds an interval line and a median marker.
    assert len(both.get_axes()[1].get_lines()) == len(plain.get_axes()[1].get_lines()) + 2 * len(sub)
    assert "pooled" in _texts(both)


def test_diagnostics_takes_the_long_loo_table_of_the_fits_prior(grid, trial, close):
    loo = pd.DataFrame({
        "prior": ["reference"] * 3 + ["sceptical"] * 3,
        "model": list(MODELS) * 2,
        "elpd_loo": [-200.0, -201.0, -203.0] * 2,
        "elpd_diff": [0.0, 1.0, 3.0] * 2,
        "dse": [0.0, 0.5, 1.0] * 2,
        "weight": [0.7, 0.2, 0.1, 0.5, 0.3, 0.2],
    })
    fig = figures.plot_diagnostics({m: grid.fits[(m, "sceptical")] for m in MODELS}, trial, loo=loo)
    close(fig)
    text = _texts(fig)
    assert "weight 0.50" in text and "weight 0.70" not in text


# --------------------------------------------------------------------------- issue 11 fixes


def _lines_with_gid(fig: Figure, gid: str) -> list:
    return [ln for ln in fig.findobj(mpl.lines.Line2D) if ln.get_gid() == gid]


@pytest.mark.parametrize("stem", ["fig4_posterior_survival", "fig5_hr_over_time",
                                  "fig7_rmst_difference", "fig8_diagnostics"])
def test_per_model_figures_name_their_prior(grid, ipd, trial, tmp_path, stem):
    # Default: the reference prior, named as such.
    default = figures._Job(grid, ipd, trial, tmp_path, None, 200, 0.7, ("double",))
    assert default.prior == "reference"
    # Another prior set: the figure draws its fits and names it.
    job = figures._Job(grid, ipd, trial, tmp_path, "sceptical", 200, 0.7, ("double",))
    assert all(f.prior.name == "sceptical" for f in job.per_model.values())
    fig = job.draw(stem, style.DOUBLE_COLUMN)
    text = _texts(fig)
    assert "sceptical prior" in text and "reference prior" not in text
    fig.clear()


def test_per_model_figures_infer_the_prior_from_the_fits(grid, ipd, trial, close):
    fits = {m: grid.fits[(m, "enthusiastic")] for m in MODELS}
    fig = figures.plot_posterior_survival(fits, ipd, trial)
    close(fig)
    assert "enthusiastic prior" in _texts(fig)


def test_km_medians_sit_on_half_and_at_risk_rows_are_labelled(ipd, trial, close):
    fig = figures.plot_km(ipd, trial)
    close(fig)
    meds = _lines_with_gid(fig, "published-median")
    assert len(meds) == sum(a.median is not None for a in trial.arms.values()) > 0
    assert all(np.allclose(m.get_ydata(), 0.5) for m in meds)
    ax_tab = fig.get_axes()[1]
    assert ax_tab.get_title(loc="left") == "Number at risk (reconstructed)"
    assert "published" not in " ".join(t.get_text() for t in ax_tab.texts)


def test_km_shows_published_at_risk_numbers_as_published(ipd, trial, close):
    from kmbayes.trial import AtRisk

    arms = {a: dataclasses.replace(arm, at_risk=(AtRisk(0.0, arm.n), AtRisk(24.0, 30 + i)))
            for i, (a, arm) in enumerate(trial.arms.items())}
    pub = dataclasses.replace(trial, arms=arms)
    fig = figures.plot_km(ipd, pub)
    close(fig)
    ax_tab = fig.get_axes()[1]
    assert "reconstructed" in ax_tab.get_title(loc="left") and "published" in ax_tab.get_title(loc="left")
    published = [t for t in ax_tab.texts if t.get_gid() == "published-at-risk"]
    assert sorted(t.get_text() for t in published) == sorted(
        [str(a.n) for a in trial.arms.values()] + ["30", "31"])
    assert all(t.get_style() == "italic" for t in published)


def test_hr_over_time_stops_at_the_last_death(grid, trial, close):
    ref = {m: grid.fits[(m, "reference")] for m in MODELS}
    tv = ref["piecewise_tv"]
    # Ask for a grid well past the data: the curve must still stop at the last death.
    fig = figures.plot_hr_over_time(tv, {m: ref[m] for m in MODELS[:2]}, trial,
                                    times=np.linspace(0.0, 400.0, 300), tmax=400.0)
    close(fig)
    last_death = float(np.max(tv.data.time[tv.data.event > 0]))
    (med,) = _lines_with_gid(fig, "hr-median")
    assert np.max(med.get_xdata()) <= last_death + 1e-9
    ax = fig.get_axes()[0]
    assert ax.get_xlim()[1] < last_death + 25
    deaths = int(np.sum((tv.data.event > 0) & (tv.data.time > 96)))
    assert f"{deaths} death" in _texts(fig) and "Open interval" in _texts(fig)


@pytest.mark.parametrize("mcid", [0.7, 0.8])
def test_prob_benefit_marks_the_mcid_and_starts_near_zero(grid, trial, close, mcid):
    fig = figures.plot_prob_benefit(grid.fits, trial, models=["piecewise_ph"], mcid_hr=mcid)
    close(fig)
    (line,) = _lines_with_gid(fig, "mcid")
    assert np.allclose(line.get_xdata(), mcid)
    assert "MCID" in _texts(fig)
    ax = _visible_axes(fig)[0]
    lo, hi = ax.get_xlim()
    assert lo <= 0.2 and 1.15 <= hi <= 1.25
    # Every curve starts (close to) 0 at the left end of the axis.
    curves = [ln for ln in ax.get_lines() if ln.get_gid() is None and len(ln.get_xdata()) > 10]
    assert curves and all(ln.get_ydata()[0] < 0.02 for ln in curves)


def test_draw_all_passes_mcid_to_figure_6(grid, ipd, trial, tmp_path):
    job = figures._Job(grid, ipd, trial, tmp_path, None, 200, 0.8, ("double",))
    fig = job.draw("fig6_prob_benefit", style.DOUBLE_COLUMN)
    assert all(np.allclose(ln.get_xdata(), 0.8) for ln in _lines_with_gid(fig, "mcid"))
    fig.clear()


def test_triplot_likelihood_is_the_models_own(grid, ipd, trial, tmp_path):
    from kmbayes.tipping import likelihood_from_fit

    job = figures._Job(grid, ipd, trial, tmp_path, None, 200, 0.7, ("double",))
    assert job.main == "piecewise_ph"
    # The reference prior (sigma 10) is the most diffuse: its fit carries the likelihood.
    expected = likelihood_from_fit(grid.fits[("piecewise_ph", "reference")])
    assert job.triplot_likelihood() == pytest.approx(expected)
    fig = job.draw("fig2_hr_triplot", style.DOUBLE_COLUMN)
    text = _texts(fig)
    assert "Likelihood (Piecewise-exponential PH, normal approx.)" in text and "Cox" not in text
    # Prior x likelihood = posterior: under the sceptical prior the conjugate
    # combination matches the drawn posterior's centre.
    m, se = expected
    spec = grid.fits[("piecewise_ph", "sceptical")].prior
    w = 1 / se**2 + 1 / spec.sigma**2
    post_mean = (m / se**2 + spec.mu / spec.sigma**2) / w
    draws = np.log(figures._draws.hr_draws(grid.fits[("piecewise_ph", "sceptical")]))
    assert abs(post_mean - draws.mean()) < 3 * w**-0.5 / math.sqrt(draws.size) + 0.05
    fig.clear()


def test_arm_and_prior_colours_are_disjoint():
    arms = set(style.arm_colours([f"arm{i}" for i in range(6)]).values())
    priors = set(style.prior_colours([*PRIORS, *(f"custom{i}" for i in range(6))]).values())
    assert arms and priors and not arms & priors
    assert not set(style.ARM_PALETTE) & set(style.PRIOR_PALETTE)
    assert style.EFFECT_COLOUR not in arms | priors


def _mathtext_trial(trial):
    # Two "$" make mathtext: "$\\frac$" would raise a parse error, "50$ or 10$"
    # would print "or 10" in italics.
    labels = {trial.reference_arm: "Control $\\frac$", trial.treatment_arm: "Drug 50$ or 10$"}
    arms = {a: dataclasses.replace(arm, label=labels[a]) for a, arm in trial.arms.items()}
    return dataclasses.replace(trial, arms=arms), labels


def test_mathtext_in_arm_labels_is_drawn_literally(grid, ipd, trial, close):
    odd, labels = _mathtext_trial(trial)
    made = [
        figures.plot_km(ipd, odd),
        figures.plot_forest(grid.fits, odd),
        figures.plot_posterior_survival({m: grid.fits[(m, "reference")] for m in MODELS}, ipd, odd),
        figures.plot_rmst_difference({"weibull_ph": grid.fits[("weibull_ph", "reference")]}, odd,
                                     horizons=np.arange(12.0, 97.0, 12.0)),
    ]
    for fig in made:
        close(fig)  # draws the figure: "$\frac$" as mathtext would raise here
        texts = [t for t in fig.findobj(mpl.text.Text) if "$" in t.get_text()]
        assert texts
        assert all(t._preprocess_math(t.get_text())[1] is False for t in texts)
    assert any(labels[trial.reference_arm] in _texts(f) for f in made)


def test_forest_clips_intervals_reaching_zero_or_infinity(trial, close):
    rng = np.random.default_rng(3)
    wild = np.concatenate([np.zeros(30), np.exp(rng.normal(0.0, 1.0, 500)), np.full(30, np.inf)])
    fits = {("weibull_ph", "reference"): wild,
            ("weibull_ph", "sceptical"): np.exp(rng.normal(0.0, 40.0, 500)),
            ("piecewise_ph", "reference"): np.exp(rng.normal(-0.5, 0.2, 500))}
    fig = figures.plot_forest(fits, trial)
    close(fig)
    ax = fig.get_axes()[1]
    lo, hi = ax.get_xlim()
    assert 0 < lo and np.isfinite(hi) and hi / lo < 1e4
    arrows = _lines_with_gid(fig, "clip-arrow")
    assert {a.get_marker() for a in arrows} == {"<", ">"}
    assert "past the axis" in _texts(fig)


def test_one_patient_per_arm_does_not_crash(trial, close):
    tiny = pd.DataFrame({"time": [5.0, 7.0], "event": [1, 0],
                         "arm": [trial.reference_arm, trial.treatment_arm]})
    fig = figures.plot_km(tiny, trial)
    fig.canvas.draw()
    fig.clear()
    # Such a fit's HR draws run to 0 and infinity.
    draws = np.concatenate([np.zeros(100), np.full(100, np.inf), np.exp(np.linspace(-30, 30, 100))])
    fig = figures.plot_forest({("weibull_ph", "reference"): draws}, trial)
    close(fig)
    fig = figures.plot_prob_benefit({("weibull_ph", "reference"): draws}, trial)
    fig.canvas.draw()
    fig.clear()


@pytest.mark.parametrize("stem", figures.FIGURE_STEMS)
def test_single_column_variants_are_legible(grid, ipd, trial, tmp_path, stem):
    job = figures._Job(grid, ipd, trial, tmp_path, None, 200, 0.7, ("single",))
    fig = job.draw(stem, style.SINGLE_COLUMN)
    try:
        assert fig.get_figwidth() == pytest.approx(style.SINGLE_COLUMN, abs=0.6)
        _check_print_quality(fig, min_pt=6.0)
    finally:
        fig.clear()


def test_saved_files_are_byte_identical(ipd, trial, tmp_path):
    fig = figures.plot_km(ipd, trial)
    a = figures.save_figure(fig, tmp_path / "a", "km", dpi=200)
    b = figures.save_figure(fig, tmp_path / "b", "km", dpi=200)
    fig.clear()
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_forest_cox_row_matches_lifelines():
    """The forest's own Cox fit (Efron ties, no lifelines import) agrees with estimands'."""
    pytest.importorskip("lifelines")
    from kmbayes import estimands

    rng = np.random.default_rng(5)
    # Whole-unit times: many tied deaths, where Efron and Breslow differ.
    tied = SimpleNamespace(time=np.round(rng.exponential(10, 150)), event=(rng.random(150) < 0.8).astype(float),
                           arm=(rng.random(150) < 0.5).astype(float))
    ours = figures._draws.cox_efron(tied.time, tied.event, tied.arm)
    assert ours == pytest.approx(estimands.cox_likelihood(tied), abs=1e-5)


def test_fig5_marks_which_intervals_published_numbers_pin():
    """CLOCC's landmarks (36, 60, 96) pin 36-60 and 60-96; the first three years are interpolated."""
    from pathlib import Path
    from types import SimpleNamespace

    from kmbayes.families import DEFAULT_CUTS
    from kmbayes.figures.time_varying import _support_strip
    from kmbayes.trial import load_trial

    trial = load_trial(Path(__file__).resolve().parents[1] / "data" / "raw" / "clocc_os.toml")
    fig = Figure()
    ax = fig.add_subplot()
    drawn = _support_strip(ax, SimpleNamespace(ctx={"cuts": DEFAULT_CUTS}), trial, 120.0)
    assert drawn == {"pinned", "interpolated"}
    spans = {(round(p.get_x(), 6), p.get_gid()) for p in ax.patches}
    assert (36.0, "support-pinned") in spans and (60.0, "support-pinned") in spans
    assert (0.0, "support-interpolated") in spans and (96.0, "support-interpolated") in spans
