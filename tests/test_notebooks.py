"""The notebooks run, in the fast profile, and stay paired with their scripts.

Notebooks are stored executed (with the full-profile outputs); here they are
re-executed on a copy with ``KMBAYES_FAST=1`` (few draws), so the stored
outputs are never overwritten by a test.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_four_numbered_notebooks() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert [n[:3] for n in names] == ["01-", "02-", "03-", "04-"], names


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_script_matches(nb_path: Path) -> None:
    script = nb_path.with_suffix(".py")
    assert script.exists(), f"{script.name} missing: notebooks are jupytext-paired"
    nb = jupytext.read(nb_path)
    py = jupytext.read(script)
    src_nb = [(c.cell_type, c.source.strip()) for c in nb.cells]
    src_py = [(c.cell_type, c.source.strip()) for c in py.cells]
    assert src_nb == src_py, "run `jupytext --sync` on the notebook"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_executed_and_imports_only_kmbayes(nb_path: Path) -> None:
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "store notebooks executed"
    for c in code:
        for line in c.source.splitlines():
            s = line.strip()
            if s.startswith(("import ", "from ")):
                mod = s.split()[1].split(".")[0]
                assert mod in {"kmbayes", "pandas", "tempfile", "numpy"}, line


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_fast_profile(nb_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KMBAYES_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(nb_path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(nb_path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
