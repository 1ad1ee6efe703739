"""``kmbayes report`` refuses fits made with another configuration or other data.

Issue 13: after ``mcid_hr`` changed with no refit, ``report`` exited 0 and
figure 2 drew the new prior over the old posterior. ``mcid_hr`` changes the
sceptical/enthusiastic/pessimistic priors, hence the spec's config hash, so
``load_grid`` refuses the stored fits.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kmbayes import runspec

from .test_fitstore_faults import IPD, write_spec
from .test_fuzz_inputs import check_refusal, run_inprocess

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("stale")
    spec = write_spec(d)
    rc, _, err = run_inprocess(["fit", "--config", spec, "--output", d / "out", "--fast"], timeout=600)
    assert rc == 0, err
    return d, spec, d / "out"


def test_mcid_change_changes_config_hash():
    a = runspec.load_spec(ROOT / "configs" / "clocc.toml")
    b = runspec.load_spec(ROOT / "configs" / "mcid_0_8.toml")
    assert a.priors["sceptical"].sigma != b.priors["sceptical"].sigma
    assert a.config_hash() != b.config_hash()


@pytest.mark.parametrize("extra", ["mcid_hr = 0.8", "tail = 0.1"])
def test_report_refuses_fits_of_another_config(fitted, tmp_path, extra):
    d, _, root = fitted
    spec = write_spec(tmp_path, extra="")
    spec.write_text(spec.read_text().replace('ids = ["reference", "sceptical"]',
                                             f'ids = ["reference", "sceptical"]\n{extra}'))
    before = sorted(p for p in root.rglob("*") if p.is_file())
    rc, _, err = run_inprocess(["report", "--config", spec, "--output", root])
    assert rc == 2, err
    assert "--config" in err and "another configuration" in err
    check_refusal(rc, err)
    assert not (root / "reports" / "figures").exists()  # nothing drawn
    assert sorted(p for p in root.rglob("*") if p.is_file()) == before


def test_report_refuses_fits_of_other_data(fitted, tmp_path):
    _, spec, root = fitted
    out = tmp_path / "out"
    shutil.copytree(root, out)
    ipd = out / "data" / "processed" / "clocc_os_ipd.csv"
    ipd.parent.mkdir(parents=True, exist_ok=True)
    lines = IPD.read_text().splitlines()
    ipd.write_text("\n".join(lines[:-1]) + "\n")  # one patient fewer
    rc, _, err = run_inprocess(["report", "--config", spec, "--output", out])
    assert rc == 2 and "--data" in err, err
    check_refusal(rc, err)


def test_report_on_current_fits_succeeds(fitted):
    _, spec, root = fitted
    rc, out, err = run_inprocess(["report", "--config", spec, "--output", root], timeout=600)
    assert rc == 0, err
    assert (root / "reports" / "reanalysis.md").exists()
