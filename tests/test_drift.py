"""Tests of drift monitoring: the population stability index and the drift report of a bundle."""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402
from test_score import train_test_bundle  # noqa: E402

from warning.bundle import ModelBundle  # noqa: E402
from warning.monitor import drift_level, measure_drift, population_stability, write_drift_report  # noqa: E402
from warning.monitor.drift import compare_samples, training_cutoffs_of  # noqa: E402
from warning.monitor.psi import bin_shares, quantile_edges  # noqa: E402
from warning.settings import Settings  # noqa: E402
from warning.store import Store  # noqa: E402

# PSI.


def test_psi_zero_for_identical_samples() -> None:
    values = np.random.default_rng(0).normal(size=500)
    values[::7] = np.nan

    assert population_stability(values, values.copy()).psi == 0.0


def test_psi_matches_hand_computation() -> None:
    reference = np.array([1.0, 2.0, 3.0, 4.0])
    current = np.array([1.0, 3.0, 4.0, 5.0, np.nan])

    index = population_stability(reference, current, bins=2, epsilon=1e-4)

    # The median of the reference, 2, closes the first bin; NaN is a third bin.
    # Reference shares: 0.5, 0.5, 0 (floored to 1e-4). Current: 0.2, 0.6, 0.2.
    expected = (
        (0.2 - 0.5) * math.log(0.2 / 0.5)
        + (0.6 - 0.5) * math.log(0.6 / 0.5)
        + (0.2 - 1e-4) * math.log(0.2 / 1e-4)
    )
    assert index.edges.tolist() == [2.0]
    assert index.reference_shares.tolist() == [0.5, 0.5, 0.0]
    assert index.current_shares.tolist() == pytest.approx([0.2, 0.6, 0.2])
    assert index.psi == pytest.approx(expected)


def test_psi_of_shifted_normal_near_theory() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=20_000)
    current = rng.normal(0.5, 1.0, size=20_000)

    # For two unit normals a shift d apart the PSI tends to d**2 as bins get finer;
    # ten quantile bins lose a little of it.
    assert population_stability(reference, current, bins=10).psi == pytest.approx(0.25, abs=0.03)


def test_bins_are_right_closed() -> None:
    edges = np.array([1.0, 2.0])

    shares = bin_shares(np.array([1.0, 1.5, 2.0, 2.5, np.nan]), edges)

    assert shares.tolist() == pytest.approx([0.2, 0.4, 0.2, 0.2])


def test_quantile_edges_merge_repeated_values() -> None:
    binary = np.array([0.0] * 70 + [1.0] * 30)

    assert quantile_edges(binary, 10).tolist() == [0.0, 1.0]


def test_quantile_edges_without_values() -> None:
    assert quantile_edges(np.full(5, np.nan), 10).size == 0


def test_psi_rejects_empty_current_sample() -> None:
    with pytest.raises(ValueError, match="empty sample"):
        population_stability(np.arange(5.0), np.array([]))


def test_drift_levels() -> None:
    assert drift_level(0.05, 0.1, 0.2) == "stable"
    assert drift_level(0.1, 0.1, 0.2) == "stable"
    assert drift_level(0.15, 0.1, 0.2) == "moderate"
    assert drift_level(0.2, 0.1, 0.2) == "moderate"
    assert drift_level(0.35, 0.1, 0.2) == "major"


def test_compare_samples_names_shifted_column() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"steady": rng.normal(size=2000), "shifted": rng.normal(size=2000)})
    current = pd.DataFrame({"steady": rng.normal(size=2000), "shifted": rng.normal(1.0, 1.0, size=2000)})

    results = {item.name: item for item in compare_samples(reference, current, ["steady", "shifted"], Settings())}

    assert results["shifted"].level == "major"
    assert results["shifted"].psi > 0.5
    assert results["steady"].level == "stable"
    assert results["steady"].psi < 0.05


# Drift report of a bundle on a store.


@pytest.fixture(scope="module")
def store() -> Store:
    return make_store(households=300, months=36, seed=4)


@pytest.fixture(scope="module")
def bundle(store: Store, tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    trained = train_test_bundle(store, tmp_path_factory.mktemp("drift") / "bundle", version="drift-1")
    trained.training = {"cutoffs": {"train": "2021-12,2022-03,2022-06,2022-09"}}
    return trained


def _with_newest_income_scaled(store: Store, factor: float) -> Store:
    income = store.table("income").copy()
    newest = income["month"] >= income["month"].max() - pd.DateOffset(months=2)
    income.loc[newest, "amount"] = income.loc[newest, "amount"] * factor
    return replace(store, tables={**store.tables, "income": income})


def test_training_cutoffs_from_bundle(bundle: ModelBundle) -> None:
    assert training_cutoffs_of(bundle) == ["2021-12", "2022-03", "2022-06", "2022-09"]


def test_training_cutoffs_missing(bundle: ModelBundle) -> None:
    untracked = replace(bundle, training={})

    with pytest.raises(ValueError, match="records no training cut-offs"):
        training_cutoffs_of(untracked)


def test_drift_report_names_shifted_income(
    store: Store, bundle: ModelBundle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(work_dir=tmp_path)
    shifted = _with_newest_income_scaled(store, 0.3)

    with caplog.at_level(logging.WARNING, logger="warning.monitor.drift"):
        report = measure_drift(shifted, bundle, settings)

    levels = {item.name: item.level for item in report.variables}
    assert report.current_cutoff == "2023-12"
    assert report.reference_cutoffs == ["2021-12", "2022-03", "2022-06", "2022-09"]
    assert report.current_rows == 300
    assert levels["income_to_line_3m"] == "major"
    assert levels["members"] == "stable"
    assert levels["is_rural"] == "stable"
    assert "score:relapse" in levels
    drifting = {item.name for item in report.drifting}
    assert "income_to_line_3m" in drifting
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("income_to_line_3m" in message and "major" in message for message in warned)
    assert len(warned) == len(drifting)


def test_drift_report_files(store: Store, bundle: ModelBundle, tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path)
    report = measure_drift(_with_newest_income_scaled(store, 0.3), bundle, settings)

    json_path, markdown_path = write_drift_report(report, settings)

    assert json_path == tmp_path / "reports" / "drift" / "drift-1-2023-12.json"
    body = json.loads(json_path.read_text(encoding="utf-8"))
    assert "income_to_line_3m" in body["drifting"]["major"]
    assert body["bins"] == 10
    assert len(body["variables"]) == len(bundle.feature_names) + len(bundle.targets)
    markdown = markdown_path.read_text(encoding="utf-8")
    assert "| `income_to_line_3m` | feature | income_position |" in markdown
    assert "Moderate above 0.1, major above 0.2" in markdown


def test_drift_rejects_cutoffs_outside_store(store: Store, bundle: ModelBundle, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\['2019-03'\] lie outside"):
        measure_drift(store, bundle, Settings(work_dir=tmp_path), reference_cutoffs=["2019-03", "2022-03"])
