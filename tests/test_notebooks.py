"""The analyst notebooks run from top to bottom on a small simulated work folder."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from warning.bundle import load_champion
from warning.ingest import ingest
from warning.score import score
from warning.settings import Settings
from warning.simulate import simulate
from warning.store import read_store
from warning.train import train

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("notebook-work")
    settings = Settings(
        work_dir=work,
        mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        num_boost_round=40,
    )
    simulate(work / "simulated", households=800, months=48, seed=7)
    ingest(work / "simulated", settings.store_dir)
    store = read_store(settings.store_dir)
    train(store, settings)
    score(store, load_champion(settings), settings)
    return work


def test_notebooks_exist() -> None:
    assert [path.name for path in NOTEBOOKS] == ["risk_overview.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_on_small_work_folder(path: Path, work_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POVWARN_WORK_DIR", str(work_dir))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3").execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    first = outputs[0]["text"]
    assert first.startswith("800 households scored at")
