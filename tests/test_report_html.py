"""The self-contained HTML report: converted correctly, figures inlined, and it displays.

The display test renders the HTML in headless Chromium (Debian's ``chromium``;
installed with apt-get when missing, skipped with the reason only if that
fails), checks the screenshot is not blank and that the rendered DOM holds the
headline text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from kmbayes.report import compose, write_html
from kmbayes.report.html import markdown_to_html

from .test_report_prose import inputs

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of the Chromium binary; installs Debian's package when it is missing."""
    if not Path(CHROMIUM).exists():
        why = "apt-get not available"
        if shutil.which("apt-get"):
            try:
                r = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True,
                                   timeout=1200, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
                why = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["apt-get failed"]
                why = why[0]
            except (OSError, subprocess.TimeoutExpired) as ex:
                why = str(ex)
        if not Path(CHROMIUM).exists():
            pytest.skip(f"chromium is not installed and could not be installed: {why}")
    return CHROMIUM


@pytest.fixture
def report(tmp_path) -> tuple[Path, str]:
    """A report on synthetic results with one real PNG figure, written as Markdown and HTML."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = tmp_path / "reports"
    figs = reports / "figures"
    figs.mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 12, 24], [1, 0.6, 0.35], drawstyle="steps-post", color="tab:blue")
    fig.savefig(figs / "fig1_km_reconstruction.png", dpi=80)
    plt.close(fig)
    md = compose(inputs(figures_dir=figs, report_dir=reports))
    (reports / "reanalysis.md").write_text(md, encoding="utf-8")
    page = write_html(md, reports / "reanalysis.md", "Bayesian reanalysis: SYNTH-1")
    (reports / "reanalysis.html").write_text(page, encoding="utf-8")
    return reports / "reanalysis.html", md


def test_html_is_self_contained(report):
    path, md = report
    page = path.read_text(encoding="utf-8")
    assert "data:image/png;base64," in page
    assert 'src="figures/' not in page  # nothing to fetch beside the file
    assert "<table>" in page and "<h2" in page and "Bayesian reanalysis: SYNTH-1" in page


def test_markdown_subset_is_converted():
    page = markdown_to_html("# T\n\nA **b** and _c_ with `x<y`.\n\n- one\n- two\n\n| h1 | h2 |\n|---|---|\n"
                            "| 1 | 2 |\n\n```\nraw <b>\n```\n", Path("."), "t")
    assert "<h1 id=\"t\">T</h1>" in page and "<strong>b</strong>" in page and "<em>c</em>" in page
    assert "<code>x&lt;y</code>" in page and "<ul><li>one</li><li>two</li></ul>" in page
    assert "<th>h1</th>" in page and "<td>2</td>" in page and "raw &lt;b&gt;" in page
    assert "Figure not available" in markdown_to_html("![cap](missing.png)", Path("."), "t")
    assert "<em>Made by <code>k_m</code>.</em>" in markdown_to_html("_Made by `k_m`._", Path("."), "t")


def test_html_displays_in_headless_chromium(report, chromium):
    path, md = report
    with tempfile.TemporaryDirectory() as prof:
        shot = Path(prof) / "shot.png"
        args = [chromium, *FLAGS, f"--user-data-dir={prof}"]
        r = subprocess.run(args + [f"--screenshot={shot}", "--window-size=1200,2000", path.as_uri()],
                           capture_output=True, text=True, timeout=180)
        assert shot.exists(), r.stderr[-2000:]
        from matplotlib import image

        px = image.imread(shot)[..., :3]
        # not blank: a real page has text and tables, so many pixels differ from the background
        assert px.std() > 0.05, "screenshot is blank"
        assert (np.abs(px - px.reshape(-1, 3).max(axis=0)).sum(axis=2) > 0.3).mean() > 0.01
        dom = subprocess.run(args + ["--dump-dom", path.as_uri()], capture_output=True, text=True,
                             timeout=180).stdout
    headline = md.split("## Headline", 1)[1].strip().split(". ")[0]
    assert "Headline (chosen by the headline rule" in headline
    assert headline in dom
    assert "The prior community" in dom and "data:image/png;base64," in dom
