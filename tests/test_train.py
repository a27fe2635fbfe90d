"""Tests of training: metrics, the temporal split, calibration, fitting and the tracked end-to-end run."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.isotonic import IsotonicRegression

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402

from warning.bundle import CHAMPION, ISOTONIC_FLOOR, ModelBundle, champion_path, load_champion  # noqa: E402
from warning.features import load_catalogue  # noqa: E402
from warning.settings import Settings  # noqa: E402
from warning.train import (  # noqa: E402
    assign_blocks,
    binary_metrics,
    build_training_frame,
    data_fingerprint,
    expected_calibration_error,
    load_cause_groups,
    split_cutoffs,
    top_share_recall_precision,
    train,
)
from warning.train.fit import fit_calibrator, fit_target  # noqa: E402
from warning.train.tracking import resolve_tracking  # noqa: E402


def _months(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps)).astype("datetime64[ms]"))


def _quarterly(count: int, start: str = "2021-12") -> pd.Series:
    return pd.Series(pd.date_range(start, periods=count, freq="3MS").astype("datetime64[ms]"))


def _settings(root: Path, **overrides: object) -> Settings:
    return Settings(
        work_dir=root / "out",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        **overrides,
    )


# Metrics.


def test_ece_two_bins_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.7, 0.9])
    # Bins {0.1, 0.2} and {0.7, 0.9}: |0.15 - 0| and |0.8 - 1|, half the rows each.
    assert expected_calibration_error(labels, probabilities, bins=2) == pytest.approx(0.175)


def test_ece_uneven_bins_by_hand() -> None:
    labels = np.array([1, 0, 0, 1, 1])
    probabilities = np.array([0.9, 0.1, 0.3, 0.2, 0.8])
    # Sorted: 0.1(0) 0.2(1) 0.3(0) | 0.8(1) 0.9(1); bins of 3 and 2 rows.
    expected = 3 / 5 * abs(0.2 - 1 / 3) + 2 / 5 * abs(0.85 - 1.0)
    assert expected_calibration_error(labels, probabilities, bins=2) == pytest.approx(expected)


def test_ece_zero_when_calibrated() -> None:
    labels = np.array([0, 1] * 10)
    probabilities = np.full(20, 0.5)
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.0)


def test_ece_more_bins_than_rows() -> None:
    labels = np.array([0, 1, 1])
    probabilities = np.array([0.2, 0.6, 0.9])
    assert expected_calibration_error(labels, probabilities, bins=10) == pytest.approx((0.2 + 0.4 + 0.1) / 3)


def test_top_share_recall_precision_by_hand() -> None:
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.1, 0.3, 0.2, 0.2, 0.1, 0.0, 0.05, 0.7])
    # The top 20% is two rows: 0.9 (positive) and 0.8 (negative).
    recall, precision = top_share_recall_precision(labels, scores, 0.2)
    assert recall == pytest.approx(1 / 3)
    assert precision == pytest.approx(0.5)
    # 25% of 10 rows rounds up to 3 rows, adding 0.7 (positive).
    recall, precision = top_share_recall_precision(labels, scores, 0.25)
    assert recall == pytest.approx(2 / 3)
    assert precision == pytest.approx(2 / 3)


def test_binary_metrics_values() -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = binary_metrics(labels, probabilities)
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["pr_auc"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert metrics["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert metrics["base_rate"] == 0.5
    assert metrics["rows"] == 4
    assert metrics["positives"] == 2


def test_binary_metrics_single_class() -> None:
    metrics = binary_metrics(np.zeros(5), np.full(5, 0.2))
    assert math.isnan(metrics["roc_auc"])
    assert math.isnan(metrics["pr_auc"])
    assert metrics["brier"] == pytest.approx(0.04)


def test_binary_metrics_rejects_bad_label() -> None:
    with pytest.raises(ValueError, match=r"0 or 1, got 2.0 at row 1"):
        binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]))


# Temporal split.


def test_split_full_embargo() -> None:
    split = split_cutoffs(_quarterly(24), horizon_months=12, holdout_fraction=0.25)
    described = split.describe()
    assert described["train"] == "2021-12,2022-03,2022-06,2022-09,2022-12,2023-03"
    assert described["validation"] == "2024-03,2024-06,2024-09,2024-12,2025-03,2025-06"
    assert described["test"] == "2026-06,2026-09,2026-12,2027-03,2027-06,2027-09"
    assert described["embargoed"] == "2023-06,2023-09,2023-12,2025-09,2025-12,2026-03"
    assert split.embargo_months == 12
    assert split.adjustments == ()


def test_split_holds_out_fewer_for_training() -> None:
    split = split_cutoffs(_quarterly(13), horizon_months=12, holdout_fraction=0.25)
    # Three held-out cut-offs each would leave one training cut-off, so two are held out.
    assert (len(split.train), len(split.validation), len(split.test)) == (3, 2, 2)
    assert split.embargo_months == 12
    assert len(split.adjustments) == 1


def test_split_blocks_are_embargoed() -> None:
    for count in (3, 5, 9, 13, 20, 40):
        split = split_cutoffs(_quarterly(count), horizon_months=12, holdout_fraction=0.25)
        gap = pd.DateOffset(months=split.embargo_months)
        assert max(split.train) + gap <= min(split.validation)
        assert max(split.validation) + gap <= min(split.test)
        used = [*split.train, *split.validation, *split.test, *split.embargoed]
        assert sorted(used) == list(_quarterly(count))


def test_split_shrinks_holdout_first(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="warning.train.split"):
        split = split_cutoffs(_quarterly(9), horizon_months=12, holdout_fraction=0.25)
    assert (len(split.train), len(split.validation), len(split.test)) == (1, 1, 1)
    assert split.embargo_months == 12
    assert len(split.adjustments) == 1
    assert "held out 1 test and 1 validation cut-off(s) instead of 2" in caplog.text


def test_split_shrinks_embargo_last(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="warning.train.split"):
        split = split_cutoffs(_quarterly(5), horizon_months=12, holdout_fraction=0.25)
    # Five quarterly cut-offs cannot hold three blocks 12 months apart, but they fit 6 months apart.
    assert split.embargo_months == 6
    assert "reduced the embargo between blocks from 12 to 6 months" in caplog.text


def test_split_yearly_waves() -> None:
    waves = _months(*(f"{year}-12-01" for year in (1968, 1969, 1970, 1971, 1972, 1977, 1982, 1987)))
    split = split_cutoffs(waves, horizon_months=12, holdout_fraction=0.25)
    assert [stamp.year for stamp in split.train] == [1968, 1969, 1970, 1971]
    assert [stamp.year for stamp in split.validation] == [1972, 1977]
    assert [stamp.year for stamp in split.test] == [1982, 1987]
    assert split.embargoed == ()


def test_split_rejects_two_cutoffs() -> None:
    with pytest.raises(ValueError, match="at least 3 cut-offs with labels, got 2"):
        split_cutoffs(_quarterly(2), horizon_months=12, holdout_fraction=0.25)


def test_block_of_marks_embargoed_missing() -> None:
    split = split_cutoffs(_quarterly(9), horizon_months=12, holdout_fraction=0.25)
    blocks = split.block_of(_quarterly(9))
    assert blocks.tolist() == ["train", pd.NA, pd.NA, pd.NA, "validation", pd.NA, pd.NA, pd.NA, "test"]


# Calibration, cause groups, fitting.


def test_calibrator_matches_isotonic() -> None:
    rng = np.random.default_rng(3)
    raw = rng.random(400)
    labels = (rng.random(400) < raw**2).astype(float)
    calibrator = fit_calibrator(raw, labels)
    reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, labels)
    probe = np.concatenate([rng.random(200), [-0.5, 0.0, 1.0, 1.5]])
    # The calibrator keeps probabilities off exact 0 and 1, and matches isotonic regression inside.
    expected = np.clip(reference.predict(probe), ISOTONIC_FLOOR, 1.0 - ISOTONIC_FLOOR)
    np.testing.assert_allclose(calibrator.apply(probe), expected, atol=1e-12)
    assert np.all(np.diff(calibrator.apply(np.sort(probe))) >= 0)
    assert calibrator.apply(probe).max() <= 1.0 - ISOTONIC_FLOOR


def test_cause_groups_file_loads() -> None:
    groups = load_cause_groups(Settings().cause_groups_path)
    assert "other" in groups
    assert groups["illness"].label == "Illness"
    assert groups["illness"].measures[0] == "medical_assistance"


def test_cause_groups_require_other(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text("illness:\n  label: Illness\n  measures: [medical_assistance]\n")
    with pytest.raises(ValueError, match="'other' cause group is missing"):
        load_cause_groups(path)


@pytest.fixture(scope="module")
def factory_frame() -> tuple[pd.DataFrame, list[str], object]:
    settings = Settings()
    store = make_store(2000, 48, seed=1)
    catalogue = load_catalogue(settings.catalogue_path, set(load_cause_groups(settings.cause_groups_path)))
    frame = build_training_frame(store, catalogue, settings)
    split = split_cutoffs(frame["cutoff"], settings.horizon_months, settings.validation_fraction)
    return assign_blocks(frame, split), catalogue.feature_names, store


def test_assign_blocks_one_block_per_row(factory_frame: tuple) -> None:
    frame, _, _ = factory_frame
    assert not frame.duplicated(["household_id", "cutoff"]).any()
    blocks_per_cutoff = frame.groupby("cutoff")["block"].nunique()
    assert (blocks_per_cutoff == 1).all()
    assert set(frame["block"]) == {"train", "validation", "test"}


def test_fit_target_is_deterministic(factory_frame: tuple) -> None:
    frame, names, _ = factory_frame
    settings = Settings(num_boost_round=40)
    first = fit_target(frame, "new_poverty", names, settings, min_train_positives=20, review_share=0.05)
    second = fit_target(frame, "new_poverty", names, settings, min_train_positives=20, review_share=0.05)
    assert first is not None and second is not None
    assert first.model.booster.model_to_string() == second.model.booster.model_to_string()
    assert first.model.booster.num_trees() == first.best_iteration
    assert first.metrics["test_roc_auc"] > 0.6


def test_fit_target_skips_few_positives(factory_frame: tuple, caplog: pytest.LogCaptureFixture) -> None:
    frame, names, _ = factory_frame
    with caplog.at_level(logging.WARNING, logger="warning.train.fit"):
        fitted = fit_target(
            frame, "relapse", names, Settings(), min_train_positives=10_000, review_share=0.05
        )
    assert fitted is None
    assert "Skipped target relapse" in caplog.text


def test_fingerprint_follows_labels(factory_frame: tuple) -> None:
    frame, _, store = factory_frame
    original = data_fingerprint(frame, store)
    assert data_fingerprint(frame.sample(frac=1.0, random_state=0), store) == original
    changed = frame.copy()
    first_negative = changed.index[changed["relapse"] == 0][0]
    changed.loc[first_negative, "relapse"] = 1.0
    assert data_fingerprint(changed, store) != original


def test_file_uri_maps_to_sqlite(tmp_path: Path) -> None:
    uri, artifacts = resolve_tracking(f"file:{tmp_path / 'mlruns'}")
    assert uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert artifacts == (tmp_path / "mlruns" / "artifacts").as_uri()
    assert resolve_tracking("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None)


# End to end, with MLflow in a temporary SQLite store.


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, object]:
    root = tmp_path_factory.mktemp("train")
    settings = _settings(root)
    return settings, train(make_store(2000, 48, seed=2), settings)


def test_train_saves_champion_bundle(trained: tuple) -> None:
    settings, result = trained
    assert result.skipped == []
    bundle = load_champion(settings)
    assert bundle.version == result.version
    assert champion_path(settings).name == CHAMPION
    assert result.bundle_path == settings.work_dir / "models" / result.version
    assert ModelBundle.load(result.bundle_path).version == result.version
    assert bundle.targets == ["relapse", "new_poverty", "sudden_hardship"]
    assert bundle.cause_labels["illness"] == "Illness"
    assert bundle.training["mlflow_run_id"] == result.run_id
    assert all(model.calibrator is not None for model in bundle.models.values())


def test_train_metrics_per_target(trained: tuple) -> None:
    _, result = trained
    for target in ("relapse", "new_poverty"):
        metrics = result.metrics[target]
        assert metrics["test_roc_auc"] > 0.6
        assert 0 < metrics["test_ece"] < 0.5
        assert 0 <= metrics["test_recall_top5pct"] <= 1
        assert metrics["test_rows"] > 0
    assert sum(result.rows.values()) > 0
    assert "relapse: test ROC-AUC" in result.summary()


def test_train_tracks_run_in_mlflow(trained: tuple) -> None:
    settings, result = trained
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.metrics["relapse_test_roc_auc"] == pytest.approx(
        result.metrics["relapse"]["test_roc_auc"]
    )
    assert run.data.params["cutoffs_test"] == result.split.describe()["test"]
    assert run.data.tags["data_fingerprint"] == load_champion(settings).training["data_fingerprint"]
    artifacts = {item.path for item in client.list_artifacts(result.run_id)}
    assert {"features.json", "split.json", "bundle"} <= artifacts
    bundle_files = {item.path for item in client.list_artifacts(result.run_id, "bundle")}
    assert "bundle/bundle.json" in bundle_files


def test_train_sets_champion_alias(trained: tuple) -> None:
    settings, result = trained
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    for target, name in (
        ("relapse", "poverty-warning-relapse"),
        ("new_poverty", "poverty-warning-new-poverty"),
    ):
        version = client.get_model_version_by_alias(name, CHAMPION)
        assert str(version.version) == result.registered_versions[target]
        assert version.run_id == result.run_id


def test_registered_model_predicts_like_bundle(trained: tuple) -> None:
    settings, result = trained
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    booster = mlflow.lightgbm.load_model("models:/poverty-warning-relapse@champion")
    bundle = load_champion(settings)
    features = np.random.default_rng(0).normal(size=(20, len(bundle.feature_names)))
    np.testing.assert_allclose(
        booster.predict(features), bundle.models["relapse"].raw_probability(features), atol=1e-12
    )
