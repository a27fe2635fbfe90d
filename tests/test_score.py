"""Tests for batch scoring into the score database."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, func, inspect, select

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402

from warning.bundle import ModelBundle, TargetModel  # noqa: E402
from warning.explain import explain  # noqa: E402
from warning.contract import DatasetInfo  # noqa: E402
from warning.features import build_features, load_catalogue, training_cutoffs  # noqa: E402
from warning.labels import ALL_TARGETS, TARGETS, formerly_poor  # noqa: E402
from warning.panel import Panel  # noqa: E402
from warning.score import SCORES, assign_bands, display_url, score  # noqa: E402
from warning.score.compute import _cause_lists, eligible_measures  # noqa: E402
from warning.settings import Settings  # noqa: E402
from warning.store import RESCORE_FILE, Store  # noqa: E402
from warning.train.cause_groups import load_cause_groups, measure_conditions  # noqa: E402

BANDS = {"high": 0.5, "medium": 0.2, "low": 0.0}


def train_test_bundle(store: Store, folder: Path, version: str = "test-1", seed: int = 0) -> ModelBundle:
    """Train a small LightGBM model per target on the store's features, save it to ``folder`` and load it back.

    Labels are random but lean on low income, so that contributions vary
    between cause groups.
    """
    settings = Settings()
    catalogue = load_catalogue(settings.catalogue_path)
    panel = Panel(store)
    features = build_features(panel, catalogue, training_cutoffs(panel, 12, 3, 12))
    matrix = features[catalogue.feature_names].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    low_income = features["income_to_line_12m"].to_numpy() < 1.5
    parameters = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 1}
    models = {}
    for target in ALL_TARGETS:
        labels = (low_income ^ (rng.random(len(matrix)) < 0.2)).astype(int)
        dataset = lgb.Dataset(matrix, labels, feature_name=catalogue.feature_names)
        models[target] = TargetModel(target=target, booster=lgb.train(parameters, dataset, num_boost_round=15))
    groups = load_cause_groups(settings.cause_groups_path)
    bundle = ModelBundle(
        version=version,
        feature_names=catalogue.feature_names,
        cause_group_of=catalogue.cause_group_of,
        measures={name: list(group.measures) for name, group in groups.items()},
        cause_labels={name: group.label for name, group in groups.items()},
        measure_conditions=measure_conditions(groups),
        models=models,
        lines=store.table("poverty_lines"),
        period=store.info.period,
    )
    bundle.save(folder)
    return ModelBundle.load(folder)


@pytest.fixture(scope="module")
def store() -> Store:
    return make_store(households=80, months=36, seed=1)


@pytest.fixture(scope="module")
def bundle(store: Store, tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    return train_test_bundle(store, tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(work_dir=tmp_path, band_thresholds=BANDS, top_causes=3)


def read_scores(settings: Settings) -> pd.DataFrame:
    engine = create_engine(settings.score_database_url)
    with engine.connect() as connection:
        frame = pd.read_sql(select(SCORES), connection)
    engine.dispose()
    return frame


def test_score_writes_one_row_per_household(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    summary = score(store, bundle, settings)
    rows = read_scores(settings)

    assert summary.households == 80
    assert len(rows) == 80
    assert rows["household_id"].is_unique
    assert set(rows["household_id"]) == set(store.table("households")["household_id"])
    assert (rows["model_version"] == "test-1").all()
    assert (pd.to_datetime(rows["cutoff"]) == pd.Timestamp("2023-12-01")).all()
    assert str(summary.cutoff) == "2023-12-01"


def test_score_probabilities_and_targets(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    score(store, bundle, settings)
    rows = read_scores(settings).set_index("household_id")

    for column in ("probability", "relapse_probability", "new_poverty_probability"):
        assert rows[column].between(0.0, 1.0).all(), column
    panel = Panel(store, lines=bundle.lines)
    former = pd.Series(formerly_poor(panel, np.array([panel.n_periods - 1]))[:, 0], index=panel.household_ids)
    expected_target = np.where(former.loc[rows.index], "relapse", "new_poverty")
    assert (rows["target"].to_numpy() == expected_target).all()
    relapse = rows["target"] == "relapse"
    assert (rows.loc[relapse, "probability"] == rows.loc[relapse, "relapse_probability"]).all()
    assert (rows.loc[~relapse, "probability"] == rows.loc[~relapse, "new_poverty_probability"]).all()
    assert relapse.any()
    assert (~relapse).any()


def test_score_bands_follow_thresholds(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    summary = score(store, bundle, settings)
    rows = read_scores(settings)

    expected = np.where(rows["probability"] >= 0.5, "high", np.where(rows["probability"] >= 0.2, "medium", "low"))
    assert (rows["band"].to_numpy() == expected).all()
    assert summary.bands == {band: int((expected == band).sum()) for band in ("high", "medium", "low")}
    assert sum(summary.bands.values()) == 80


def test_score_flags_households_below_line(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    summary = score(store, bundle, settings)
    rows = read_scores(settings).set_index("household_id")

    panel = Panel(store, lines=bundle.lines)
    below = pd.Series(panel.below_line()[:, -1] == 1.0, index=panel.household_ids)
    assert (rows["below_line_now"].astype(bool) == below.loc[rows.index]).all()
    assert summary.below_line_now == int(below.sum())
    assert 0 < summary.below_line_now < 80


def test_score_top_causes_and_measures(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    score(store, bundle, settings)
    rows = read_scores(settings)

    causes = rows["top_causes"].map(json.loads)
    measures = rows["measures"].map(json.loads)
    households = store.table("households").set_index("household_id").loc[rows["household_id"]]
    eligible = eligible_measures(bundle.measure_conditions, households)
    assert causes.map(len).max() == 3
    for position, (row_causes, row_measures) in enumerate(zip(causes, measures)):
        contributions = [cause["contribution"] for cause in row_causes]
        assert contributions == sorted(contributions, reverse=True)
        assert all(value > 0 for value in contributions)
        assert sum(cause["share"] for cause in row_causes) <= 1.0 + 1e-3
        expected_measures = []
        for cause in row_causes:
            offered = [m for m in bundle.measures[cause["group"]] if m not in eligible or eligible[m][position]]
            assert cause["measures"] == offered
            assert cause["label"]
            expected_measures.extend(m for m in cause["measures"] if m not in expected_measures)
        assert row_measures == expected_measures


def test_measures_follow_household_conditions() -> None:
    households = pd.DataFrame(
        {"elderly": [0, 2], "labour_capable": [1, 0], "urban_rural": pd.Categorical(["urban", "rural"])}
    )
    conditions = {"elderly_care_subsidy": "elderly > 0", "agricultural_insurance": "urban_rural == 'rural'"}
    assert eligible_measures(conditions, households) == {
        "elderly_care_subsidy": [False, True],
        "agricultural_insurance": [False, True],
    }


def test_cause_lists_offer_only_eligible_measures(bundle: ModelBundle) -> None:
    explanations = pd.DataFrame(
        {
            "cause_1": ["lack_of_labour", "lack_of_labour"],
            "cause_1_contribution": [0.5, 0.5],
            "cause_1_share": [1.0, 1.0],
        }
    )
    eligible = {"elderly_care_subsidy": [False, True], "public_welfare_post": [True, False]}
    causes, measures = _cause_lists(explanations, bundle, top=1, eligible=eligible)
    assert measures == [
        ["minimum_living_allowance", "public_welfare_post"],
        ["minimum_living_allowance", "elderly_care_subsidy"],
    ]
    assert causes[0][0]["measures"] == measures[0]


def test_scoring_clears_scored_households_from_rescore_list(
    store: Store, bundle: ModelBundle, settings: Settings, tmp_path: Path
) -> None:
    on_disk = Store(folder=tmp_path / "store", info=store.info, tables=store.tables)
    on_disk.folder.mkdir()
    listed = pd.DataFrame(
        {
            "household_id": pd.Series(["h00001", "h99999"], dtype="string"),
            "earliest_month": pd.Series(pd.to_datetime(["2022-03-01", "2022-05-01"]), dtype="datetime64[ms]"),
            "last_delivery": [2, 2],
        }
    )
    listed.to_parquet(on_disk.folder / RESCORE_FILE, index=False)

    summary = score(on_disk, bundle, settings)

    assert summary.rescored == 1
    remaining = pd.read_parquet(on_disk.folder / RESCORE_FILE)
    assert remaining["household_id"].tolist() == ["h99999"]


def test_score_twice_is_idempotent(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    score(store, bundle, settings)
    first = read_scores(settings).sort_values("household_id").reset_index(drop=True)
    score(store, bundle, settings)
    second = read_scores(settings).sort_values("household_id").reset_index(drop=True)

    assert len(second) == len(first) == 80
    assert (second["probability"] == first["probability"]).all()
    assert (second["scored_at"] >= first["scored_at"]).all()


def test_score_other_model_version_adds_rows(
    store: Store, bundle: ModelBundle, settings: Settings, tmp_path: Path
) -> None:
    score(store, bundle, settings)
    challenger = train_test_bundle(store, tmp_path / "challenger", version="test-2", seed=5)
    score(store, challenger, settings)
    rows = read_scores(settings)

    assert len(rows) == 160
    assert rows.groupby("model_version").size().to_dict() == {"test-1": 80, "test-2": 80}


def test_score_table_has_indexes(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    score(store, bundle, settings)
    engine = create_engine(settings.score_database_url)
    inspector = inspect(engine)
    indexed = {tuple(index["column_names"]) for index in inspector.get_indexes("scores")}
    primary_key = inspector.get_pk_constraint("scores")["constrained_columns"]
    engine.dispose()

    assert ("region_code",) in indexed
    assert ("probability",) in indexed
    assert sorted(primary_key) == ["cutoff", "household_id", "model_version"]


def test_score_rejects_period_mismatch(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    yearly = Store(folder=store.folder, info=DatasetInfo(name="yearly", period="year"), tables=store.tables)

    with pytest.raises(ValueError, match="period 'year'"):
        score(yearly, bundle, settings)


def test_score_summary_hides_password(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    summary = score(store, bundle, settings)

    assert summary.database_url == settings.score_database_url
    assert "2023-12" in str(summary)
    assert "secret" not in display_url("postgresql://monitor:secret@db.example/scores")
    assert display_url("postgresql://monitor:secret@db.example/scores").startswith("postgresql://monitor:")


def test_score_counts_rows_in_database(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    score(store, bundle, settings)
    engine = create_engine(settings.score_database_url)
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(SCORES)).scalar_one()
    engine.dispose()

    assert count == 80


@pytest.mark.parametrize(
    ("probability", "band"),
    [(0.0, "low"), (0.19999, "low"), (0.2, "medium"), (0.4999, "medium"), (0.5, "high"), (1.0, "high")],
)
def test_assign_bands_boundaries(probability: float, band: str) -> None:
    assert assign_bands(np.array([probability]), BANDS)[0] == band


def test_assign_bands_missing_probability() -> None:
    assert assign_bands(np.array([np.nan]), BANDS)[0] is None


def test_score_causes_match_explain(store: Store, bundle: ModelBundle, settings: Settings) -> None:
    score(store, bundle, settings)
    rows = read_scores(settings).set_index("household_id")
    panel = Panel(store, lines=bundle.lines)
    features = build_features(panel, load_catalogue(settings.catalogue_path), np.array([panel.n_periods - 1]))
    features = features.set_index("household_id")

    for household_id in ("h00001", "h00002", "h00050"):
        target = rows.loc[household_id, "target"]
        matrix = bundle.feature_matrix(features.loc[[household_id]])
        [explanation] = explain(bundle, target, matrix, top=3)
        # Causes after the first are listed only from the minimum share of the risk.
        listed = list(explanation.causes[:1])
        for cause in explanation.causes[1:]:
            if cause.share < settings.min_cause_share:
                break
            listed.append(cause)
        causes = json.loads(rows.loc[household_id, "top_causes"])
        assert [cause["group"] for cause in causes] == [cause.group for cause in listed]
        assert [cause["label"] for cause in causes] == [cause.label for cause in listed]
        for stored, expected in zip(causes, listed):
            assert stored["contribution"] == pytest.approx(expected.contribution, abs=1e-6)
            assert stored["share"] == pytest.approx(expected.share, abs=1e-4)
        expected_measures = list(dict.fromkeys(measure for cause in listed for measure in cause.measures))
        assert json.loads(rows.loc[household_id, "measures"]) == expected_measures
        assert rows.loc[household_id, "probability"] == pytest.approx(explanation.probability, abs=1e-12)
