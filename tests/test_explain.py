"""Tests of explanations: contributions, cause groups, top causes, measures and cause recovery."""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

with warnings.catch_warnings():
    # shap 0.51 sets matplotlib colormap extremes in a way matplotlib marks as pending deprecation.
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    import shap

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402

from warning.bundle import ModelBundle  # noqa: E402
from warning.explain import cause_contributions, cause_groups_of, cause_recovery, explain, explain_frame  # noqa: E402
from warning.explain.contributions import share_by_income_loss  # noqa: E402
from warning.features import load_catalogue  # noqa: E402
from warning.panel import Panel  # noqa: E402
from warning.settings import Settings  # noqa: E402
from warning.store import read_store  # noqa: E402
from warning.train import assign_blocks, build_training_frame, load_cause_groups, split_cutoffs  # noqa: E402
from warning.train.fit import fit_target  # noqa: E402

TARGET = "new_poverty"


@pytest.fixture(scope="module")
def trained() -> tuple[ModelBundle, np.ndarray]:
    """Return a bundle trained on a factory store without MLflow, and feature rows to explain."""
    settings = Settings(num_boost_round=60, early_stopping_rounds=60)
    groups = load_cause_groups(settings.cause_groups_path)
    catalogue = load_catalogue(settings.catalogue_path, set(groups))
    store = make_store(2000, 48, seed=5)
    frame = build_training_frame(store, catalogue, settings)
    frame = assign_blocks(
        frame, split_cutoffs(frame["cutoff"], settings.horizon_months, settings.validation_fraction)
    )
    fitted = fit_target(
        frame, TARGET, catalogue.feature_names, settings, min_train_positives=20, review_share=0.05
    )
    assert fitted is not None
    bundle = ModelBundle(
        version="test",
        feature_names=catalogue.feature_names,
        cause_group_of=catalogue.cause_group_of,
        measures={name: list(group.measures) for name, group in groups.items()},
        models={TARGET: fitted.model},
        lines=store.table("poverty_lines"),
        cause_labels={name: group.label for name, group in groups.items()},
    )
    rows = frame.sample(300, random_state=0)
    return bundle, bundle.feature_matrix(rows)


def test_contributions_sum_to_raw_score(trained: tuple) -> None:
    bundle, features = trained
    booster = bundle.models[TARGET].booster
    contributions = bundle.models[TARGET].contributions(features)
    assert np.isnan(features).any()
    np.testing.assert_allclose(
        contributions.sum(axis=1), booster.predict(features, raw_score=True), atol=1e-6
    )


def test_group_sums_equal_member_features(trained: tuple) -> None:
    bundle, features = trained
    contributions = bundle.models[TARGET].contributions(features)[:, :-1]
    groups = cause_contributions(bundle, TARGET, features)
    assert len(groups) == len(features)
    for group in groups.columns:
        members = [
            index for index, name in enumerate(bundle.feature_names) if bundle.cause_group_of[name] == group
        ]
        np.testing.assert_allclose(
            groups[group].to_numpy(), contributions[:, members].sum(axis=1), atol=1e-12
        )


def test_group_columns_follow_cause_groups_file(trained: tuple) -> None:
    bundle, features = trained
    groups = cause_contributions(bundle, TARGET, features[:3])
    assert list(groups.columns) == list(bundle.measures)


def _positive_class(values: object) -> np.ndarray:
    # shap returns one (rows, features) array for binary LightGBM, or in some
    # versions a list of two, one per class. The positive class is the last.
    if isinstance(values, list):
        values = values[-1]
    values = np.asarray(values)
    return values[..., -1] if values.ndim == 3 else values


@pytest.mark.filterwarnings("ignore:LightGBM binary classifier with TreeExplainer")
@pytest.mark.parametrize("implementation", ["lightgbm", "shap"])
def test_contributions_agree_with_shap(trained: tuple, implementation: str) -> None:
    bundle, features = trained
    sample = features[:50]
    explainer = shap.TreeExplainer(bundle.models[TARGET].booster)
    if implementation == "shap":
        # shap 0.51 hands LightGBM boosters to their own pred_contrib. Marking
        # the parsed trees "internal" runs shap's TreeSHAP on them instead, an
        # independent reference.
        explainer.model.model_type = "internal"
    values = _positive_class(explainer.shap_values(sample))
    ours = bundle.models[TARGET].contributions(sample)
    assert np.isnan(sample).any()
    np.testing.assert_allclose(ours[:, :-1], values, atol=1e-4)
    expected = np.ravel(explainer.expected_value)[-1]
    np.testing.assert_allclose(ours[:, -1], expected, atol=1e-4)


def test_frame_scores_match_model(trained: tuple) -> None:
    bundle, features = trained
    model = bundle.models[TARGET]
    frame = explain_frame(bundle, TARGET, features)
    np.testing.assert_allclose(frame["raw_score"], model.booster.predict(features, raw_score=True), atol=1e-6)
    np.testing.assert_allclose(frame["raw_probability"], model.raw_probability(features), atol=1e-12)
    np.testing.assert_allclose(frame["probability"], model.probability(features), atol=1e-12)


def test_top_causes_sorted_and_shared(trained: tuple) -> None:
    bundle, features = trained
    frame = explain_frame(bundle, TARGET, features, top=3)
    groups = cause_contributions(bundle, TARGET, features)
    positive_total = groups.clip(lower=0).sum(axis=1)
    for row in range(len(frame)):
        expected = groups.iloc[row][groups.iloc[row] > 0].sort_values(ascending=False, kind="stable").head(3)
        listed = [frame[f"cause_{rank}"].iloc[row] for rank in (1, 2, 3)]
        assert [group for group in listed if not pd.isna(group)] == list(expected.index)
        for rank, value in enumerate(expected.to_numpy(), start=1):
            assert frame[f"cause_{rank}_contribution"].iloc[row] == pytest.approx(value, abs=1e-12)
            assert frame[f"cause_{rank}_share"].iloc[row] == pytest.approx(
                value / positive_total.iloc[row], abs=1e-12
            )
    contributions = frame[["cause_1_contribution", "cause_2_contribution", "cause_3_contribution"]].to_numpy()
    assert (np.diff(contributions, axis=1)[~np.isnan(np.diff(contributions, axis=1))] <= 0).all()
    assert (frame[["cause_1_share", "cause_2_share", "cause_3_share"]].sum(axis=1) <= 1 + 1e-12).all()


def test_explanations_carry_measures_from_file(trained: tuple) -> None:
    bundle, features = trained
    settings = Settings()
    raw = yaml.safe_load(settings.cause_groups_path.read_text(encoding="utf-8"))
    explanations = explain(bundle, TARGET, features[:40], top=3)
    frame = explain_frame(bundle, TARGET, features[:40], top=3)
    assert len(explanations) == 40
    assert any(explanation.causes for explanation in explanations)
    for explanation, (_, row) in zip(explanations, frame.iterrows(), strict=True):
        assert explanation.target == TARGET
        assert explanation.raw_score == pytest.approx(row["raw_score"])
        assert explanation.probability == pytest.approx(row["probability"])
        assert len(explanation.causes) <= 3
        for rank, cause in enumerate(explanation.causes, start=1):
            assert cause.group == row[f"cause_{rank}"]
            assert cause.contribution > 0
            names = [item if isinstance(item, str) else item["name"] for item in raw[cause.group]["measures"]]
            assert cause.measures == tuple(names)
            assert cause.label == raw[cause.group]["label"]
        measures = [measure for cause in explanation.causes for measure in cause.measures]
        assert explanation.measures == list(dict.fromkeys(measures))


def test_frame_chunks_give_same_result(trained: tuple) -> None:
    bundle, features = trained
    whole = explain_frame(bundle, TARGET, features[:50])
    chunked = explain_frame(bundle, TARGET, features[:50], chunk_rows=7)
    pd.testing.assert_frame_equal(whole, chunked)


def test_frame_pads_beyond_group_count(trained: tuple) -> None:
    bundle, features = trained
    count = len(cause_groups_of(bundle)[0])
    frame = explain_frame(bundle, TARGET, features[:5], top=count + 2)
    assert frame[f"cause_{count + 2}"].isna().all()
    assert frame[f"cause_{count + 2}_share"].isna().all()


def test_frame_of_no_rows(trained: tuple) -> None:
    bundle, features = trained
    frame = explain_frame(bundle, TARGET, features[:0], top=2)
    assert len(frame) == 0
    assert list(frame.columns)[:3] == ["raw_score", "raw_probability", "probability"]
    assert "cause_2_share" in frame.columns


def test_unmapped_feature_counts_as_other(trained: tuple) -> None:
    bundle, features = trained
    position, name = next(
        (index, name)
        for index, name in enumerate(bundle.feature_names)
        if bundle.cause_group_of[name] != "other"
    )
    unmapped = replace(
        bundle, cause_group_of={key: group for key, group in bundle.cause_group_of.items() if key != name}
    )
    contributions = bundle.models[TARGET].contributions(features)
    groups = cause_contributions(unmapped, TARGET, features)
    original = cause_contributions(bundle, TARGET, features)
    old_group = bundle.cause_group_of[name]
    np.testing.assert_allclose(groups["other"], original["other"] + contributions[:, position], atol=1e-12)
    np.testing.assert_allclose(
        groups[old_group], original[old_group] - contributions[:, position], atol=1e-12
    )


def test_explain_rejects_unknown_target(trained: tuple) -> None:
    bundle, features = trained
    with pytest.raises(KeyError, match="has no 'relapse' model"):
        explain(bundle, "relapse", features[:2])


def test_explain_rejects_wrong_width(trained: tuple) -> None:
    bundle, features = trained
    with pytest.raises(ValueError, match=f"with {len(bundle.feature_names)} columns"):
        explain_frame(bundle, TARGET, features[:2, :-1])


# Cause recovery.


def _stamp(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def test_cause_recovery_by_hand() -> None:
    explanations = pd.DataFrame(
        [
            ("h1", "2022-01-01", "illness", "other"),
            ("h1", "2022-04-01", "other", "illness"),
            ("h2", "2022-01-01", "unstable_employment", None),
            ("h3", "2022-01-01", "disaster", "illness"),
            ("h4", "2022-01-01", "illness", None),
            ("h6", "2022-01-01", "other", "disability"),
        ],
        columns=["household_id", "cutoff", "cause_1", "cause_2"],
    ).astype({"cutoff": "datetime64[ms]", "cause_1": "string", "cause_2": "string"})
    falls = pd.DataFrame(
        [
            # Latest cut-off before the fall is 2022-04: top "other", then illness.
            ("h1", "2022-06-01", "illness"),
            ("h2", "2022-03-01", "unstable_employment"),
            # Illness is listed second, after disaster.
            ("h3", "2022-02-01", "illness"),
            # 17 months after the cut-off: beyond the 12-month horizon.
            ("h4", "2023-06-01", "illness"),
            # No explanation for this household.
            ("h5", "2022-05-01", "illness"),
            # In the cut-off month itself, so not after the cut-off.
            ("h2", "2022-01-01", "disaster"),
            # A true "other" counts for top_match but not for top_match_without_other.
            ("h6", "2022-05-01", "other"),
        ],
        columns=["household_id", "month", "cause"],
    ).astype({"month": "datetime64[ms]"})

    recovery = cause_recovery(explanations, falls, horizon_months=12)

    assert recovery.falls == 4
    assert recovery.top_match == pytest.approx(2 / 4)
    assert recovery.top_match_without_other == pytest.approx(2 / 3)
    assert recovery.listed_match == pytest.approx(1.0)
    per_cause = recovery.per_cause
    assert list(per_cause.index) == ["illness", "other", "unstable_employment"]
    assert per_cause.loc["illness", "falls"] == 2
    assert per_cause.loc["illness", "top_match"] == pytest.approx(0.0)
    assert per_cause.loc["illness", "top_match_without_other"] == pytest.approx(0.5)
    assert per_cause.loc["illness", "listed_match"] == pytest.approx(1.0)
    assert per_cause.loc["unstable_employment", "falls"] == 1
    assert per_cause.loc["unstable_employment", "top_match"] == pytest.approx(1.0)
    assert per_cause.loc["unstable_employment", "top_match_without_other"] == pytest.approx(1.0)
    assert per_cause.loc["other", "falls"] == 1
    assert per_cause.loc["other", "top_match"] == pytest.approx(1.0)
    assert math.isnan(per_cause.loc["other", "top_match_without_other"])


def test_cause_recovery_without_falls() -> None:
    explanations = pd.DataFrame(
        {"household_id": ["h1"], "cutoff": [_stamp("2022-01-01")], "cause_1": ["illness"]}
    )
    falls = pd.DataFrame({"household_id": ["h9"], "month": [_stamp("2022-02-01")], "cause": ["illness"]})
    recovery = cause_recovery(explanations, falls)
    assert recovery.falls == 0
    assert math.isnan(recovery.top_match)
    assert recovery.per_cause.empty


def test_cause_recovery_names_missing_column() -> None:
    explanations = pd.DataFrame(
        {"household_id": ["h1"], "cutoff": [_stamp("2022-01-01")], "cause_1": ["illness"]}
    )
    falls = pd.DataFrame({"household_id": ["h1"], "month": [_stamp("2022-02-01")]})
    with pytest.raises(KeyError, match=r"falls frame lacks columns \['cause'\]"):
        cause_recovery(explanations, falls)


def _sharing_bundle() -> ModelBundle:
    return ModelBundle(
        version="sharing",
        feature_names=["income_per_person_12m", "illness_loss", "job_loss"],
        cause_group_of={
            "income_per_person_12m": "income_position",
            "illness_loss": "illness",
            "job_loss": "unstable_employment",
        },
        measures={"illness": [], "unstable_employment": [], "income_position": [], "other": []},
        models={},
        lines=pd.DataFrame(),
        income_loss_features={"illness_loss": "illness", "job_loss": "unstable_employment"},
        shared_groups={"income_position": {"income_feature": "income_per_person_12m", "min_loss_share": 0.05}},
    )


def test_shared_group_follows_income_lost_to_each_cause() -> None:
    bundle = _sharing_bundle()
    names = ["illness", "unstable_employment", "income_position", "other"]
    groups = np.array([[0.1, 0.0, 2.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    # Row 0 lost 3,000 to illness and 1,000 to a job loss; row 1 lost nothing;
    # row 2 lost 100 out of 10,100, under the 5% floor of 505.
    features = np.array([[6000.0, 3000.0, 1000.0], [6000.0, 0.0, 0.0], [10000.0, 100.0, np.nan]])
    shared = share_by_income_loss(bundle, names, groups, features)
    assert shared[0].tolist() == pytest.approx([0.1 + 1.5, 0.5, 0.0, 0.0])
    assert shared[1].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])
    assert shared[2, 0] == pytest.approx(100 / 505)
    assert shared[2, 3] == pytest.approx(405 / 505)
    assert shared.sum(axis=1) == pytest.approx(groups.sum(axis=1))


@pytest.fixture(scope="module")
def simulated_work(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    """A simulated work folder with its truth, ingested and trained with a small model."""
    from warning.ingest import ingest
    from warning.simulate import simulate
    from warning.train import train

    work = tmp_path_factory.mktemp("recovery-work")
    settings = Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}", num_boost_round=40)
    simulate(work / "simulated", households=3000, months=48, seed=7)
    ingest(work / "simulated", settings.store_dir)
    train(read_store(settings.store_dir), settings)
    return work, settings


def test_cause_recovery_measures_sudden_hardship_onsets(simulated_work: tuple[Path, Settings]) -> None:
    from warning.bundle import load_champion
    from warning.explain.truth import measure_cause_recovery, read_falls, read_hardship

    work, settings = simulated_work
    bundle = load_champion(settings)
    panel = Panel(read_store(settings.store_dir), lines=bundle.lines)
    catalogue = load_catalogue(settings.catalogue_path)
    truth = work / "simulated" / "truth"
    falls, hardship = read_falls(truth), read_hardship(truth)

    with_hardship = measure_cause_recovery(panel, bundle, catalogue, falls, 12, 3, hardship=hardship)
    without = measure_cause_recovery(panel, bundle, catalogue, falls, 12, 3)

    assert hardship is not None
    assert "sudden_hardship" not in without
    onsets = with_hardship["sudden_hardship"]
    assert 0 < onsets.falls <= len(hardship)
    # Schooling costs cause hardship, not income falls, so only this target can recover them.
    assert "schooling" in onsets.per_cause.index
    assert 0.0 <= onsets.top_match <= onsets.listed_match <= 1.0
    for target, result in without.items():
        assert with_hardship[target].falls == result.falls, target
        assert with_hardship[target].top_match == result.top_match, target
