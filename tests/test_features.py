"""Point-in-time features: values, the catalogue's checks, and no look-ahead."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_store  # noqa: E402

from warning.contract import DatasetInfo  # noqa: E402
from warning.features import build_features, load_catalogue, training_cutoffs  # noqa: E402
from warning.panel import Panel  # noqa: E402
from warning.settings import Settings  # noqa: E402
from warning.store import Store  # noqa: E402

SETTINGS = Settings()


@pytest.fixture(scope="module")
def catalogue():
    groups = set(yaml.safe_load(SETTINGS.cause_groups_path.read_text()))
    return load_catalogue(SETTINGS.catalogue_path, groups)


def _features_at(store: Store, catalogue, cutoff_month: str) -> pd.DataFrame:
    panel = Panel(store)
    period = panel.period_of_month(np.array([pd.Timestamp(cutoff_month).year * 12 + pd.Timestamp(cutoff_month).month - 1]))
    return build_features(panel, catalogue, period).set_index("household_id").sort_index()


def _after(frame: pd.DataFrame, column: str, cutoff: pd.Timestamp) -> pd.Series:
    return frame[column] > cutoff


def _rewrite_future(store: Store, cutoff: pd.Timestamp, seed: int) -> Store:
    """Return a copy of the store in which every row dated after the cut-off is changed."""
    rng = np.random.default_rng(seed)
    tables = {name: frame.copy() for name, frame in store.tables.items()}

    income = tables["income"]
    later = _after(income, "month", cutoff)
    income.loc[later, "amount"] = rng.uniform(-5000, 50000, int(later.sum()))

    claims = tables["medical_claims"]
    later = _after(claims, "month", cutoff)
    claims.loc[later, ["total_cost", "reimbursed", "out_of_pocket"]] = [90000.0, 0.0, 90000.0]

    events = tables["events"]
    extra = events.head(20).copy()
    extra["month"] = cutoff + pd.DateOffset(months=1)
    extra["kind"] = "disaster"
    tables["events"] = pd.concat([events[~_after(events, "month", cutoff)], extra], ignore_index=True)

    assistance = tables["assistance"]
    assistance.loc[_after(assistance, "month", cutoff), "amount"] = 1.0

    employment = tables["employment"]
    open_or_later_end = employment["end_month"].isna() | _after(employment, "end_month", cutoff)
    employment.loc[open_or_later_end, "end_month"] = cutoff + pd.DateOffset(months=2)
    new_spells = employment.head(10).copy()
    new_spells["start_month"] = cutoff + pd.DateOffset(months=1)
    new_spells["kind"] = "unemployed"
    tables["employment"] = pd.concat([employment, new_spells], ignore_index=True)

    insurance = tables["insurance"]
    insurance.loc[insurance["year"] > cutoff.year, "enrolled"] = False

    registrations = tables["registrations"]
    late = registrations.head(5).copy()
    late["status"] = "poor"
    late["start_month"] = cutoff + pd.DateOffset(months=3)
    tables["registrations"] = pd.concat([registrations, late], ignore_index=True)

    lines = tables["poverty_lines"]
    lines.loc[lines["year"] > cutoff.year, "line"] *= 3

    for frame in tables.values():
        for column in frame.columns:
            if column == "month" or column.endswith("_month"):
                frame[column] = frame[column].astype("datetime64[ms]")
    return Store(folder=store.folder, info=store.info, tables=tables)


@pytest.mark.parametrize("cutoff_month", ["2021-12-01", "2022-06-01", "2022-12-01"])
def test_features_ignore_data_after_cutoff(catalogue, cutoff_month):
    store = make_store(households=80, months=36, seed=3)
    cutoff = pd.Timestamp(cutoff_month)
    before = _features_at(store, catalogue, cutoff_month)
    after = _features_at(_rewrite_future(store, cutoff, seed=11), catalogue, cutoff_month)
    pd.testing.assert_frame_equal(before, after)


def test_features_ignore_truncated_future(catalogue):
    store = make_store(households=50, months=36, seed=5)
    cutoff = pd.Timestamp("2022-06-01")
    truncated = {
        name: (frame[frame["month"] <= cutoff] if "month" in frame.columns else frame) for name, frame in store.tables.items()
    }
    before = _features_at(store, catalogue, "2022-06-01")
    after = _features_at(Store(store.folder, store.info, truncated), catalogue, "2022-06-01")
    pd.testing.assert_frame_equal(before, after)


def test_future_change_does_alter_later_cutoff(catalogue):
    # Guards the test above: the rewrite must be visible at a later cut-off.
    store = make_store(households=40, months=36, seed=3)
    changed = _rewrite_future(store, pd.Timestamp("2021-12-01"), seed=11)
    before = _features_at(store, catalogue, "2022-12-01")
    after = _features_at(changed, catalogue, "2022-12-01")
    assert not np.allclose(before["income_per_person_12m"], after["income_per_person_12m"])


def _single_household_store(amounts: list[float], members: int = 2, period: str = "month") -> Store:
    months = pd.date_range("2021-01-01", periods=len(amounts), freq="MS").astype("datetime64[ms]")
    households = pd.DataFrame(
        {
            "household_id": pd.array(["a"], dtype="string"),
            "region_code": pd.array(["520121"], dtype="string"),
            "township_code": pd.array([None], dtype="string"),
            "urban_rural": pd.array(["rural"], dtype="string"),
            "members": [members],
            "labour_capable": [1],
            "disabled": [0],
            "elderly": [1],
            "children_in_school": [0],
        }
    )
    income = pd.DataFrame({"household_id": "a", "month": months, "source": "wage", "amount": amounts})
    lines = pd.DataFrame({"year": [2021, 2022, 2023], "region_prefix": ["", "", ""], "urban_rural": "rural", "line": 6000.0})
    return Store(Path("memory"), DatasetInfo(period=period), {"households": households, "income": income, "poverty_lines": lines})


def test_income_features_have_exact_values(catalogue):
    amounts = [1000.0] * 21 + [100.0] * 3
    panel = Panel(_single_household_store(amounts))
    row = build_features(panel, catalogue, np.array([23])).iloc[0]
    assert row["income_per_person_12m"] == pytest.approx((9 * 1000 + 3 * 100) / 2)
    assert row["wage_drop_3m_of_24m"] == pytest.approx(0.9)
    assert row["months_below_line_12m"] == 3  # 100 * 12 / 2 = 600 < 6000; 1000 * 12 / 2 = 6000 is not below
    assert row["income_to_line_3m"] == pytest.approx(100 * 12 / 2 / 6000)
    assert row["wage_share_12m"] == pytest.approx(1.0)
    assert row["elderly_share"] == pytest.approx(0.5)
    assert row["dependency_ratio"] == pytest.approx(0.5)
    assert row["is_rural"] == 1
    assert row["cutoff"] == pd.Timestamp("2022-12-01")


def test_yearly_waves_leave_gaps_missing(catalogue):
    store = _single_household_store([12000.0, 15000.0, 9000.0], period="year")
    income = store.tables["income"]
    income["month"] = pd.to_datetime(["2021-07-01", "2023-07-01", "2023-08-01"]).astype("datetime64[ms]")
    panel = Panel(store)
    assert panel.n_periods == 3
    assert panel.observed.tolist() == [[True, False, True]]
    features = build_features(panel, catalogue, np.array([0, 1, 2]))
    assert features["cutoff"].dt.year.tolist() == [2021, 2023]
    assert features["income_per_person_12m"].tolist() == [6000.0, 12000.0]


def test_training_cutoffs_end_one_horizon_before_data_end():
    panel = Panel(make_store(households=5, months=36))
    cutoffs = training_cutoffs(panel, horizon_months=12, step_months=3, min_history_months=12)
    assert cutoffs.tolist() == [11, 14, 17, 20, 23]


def test_catalogue_rejects_unknown_cause_group(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "series: {income_total: {table: income, value: amount}}\n"
        "features:\n"
        "  - {name: f, series: income_total, window: 12, aggregation: sum, cause_group: weather, description: x}\n"
    )
    with pytest.raises(ValueError, match="cause_group 'weather'"):
        load_catalogue(path, {"illness", "other"})


def test_catalogue_rejects_unknown_table(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text("series: {x: {table: weather, value: amount}}\nfeatures: []\n")
    with pytest.raises(ValueError, match="unknown table 'weather'"):
        load_catalogue(path)


def test_catalogue_features_have_cause_groups(catalogue):
    groups = set(yaml.safe_load(SETTINGS.cause_groups_path.read_text()))
    assert len(catalogue.features) >= 25
    assert {feature.cause_group for feature in catalogue.features} <= groups
    assert all(feature.description for feature in catalogue.features)


def test_loss_since_event_measures_income_lost_after_shock(catalogue):
    store = _single_household_store([1000.0] * 18 + [400.0] * 6)
    store.tables["events"] = pd.DataFrame(
        {
            "household_id": ["a"],
            "month": pd.to_datetime(["2022-07-01"]).astype("datetime64[ms]"),
            "kind": ["illness"],
            "loss_amount": [0.0],
        }
    )
    row = build_features(Panel(store), catalogue, np.array([23])).iloc[0]
    # 600 a month lost since July 2022: 7,200 a year for a household of two.
    assert row["illness_income_loss_24m"] == pytest.approx(3600.0)
    assert row["job_loss_income_loss_24m"] == 0.0


def test_bundle_keeps_its_own_catalogue(tmp_path):
    from warning.bundle import ModelBundle
    from warning.features import catalogue_of

    text = SETTINGS.catalogue_path.read_text(encoding="utf-8")
    bundle = ModelBundle(
        version="v1", feature_names=[], cause_group_of={}, measures={}, models={}, lines=pd.DataFrame(), catalogue_text=text
    )
    elsewhere = tmp_path / "changed.yaml"
    elsewhere.write_text("series: {}\nfeatures: []\n")
    assert catalogue_of(bundle, elsewhere).feature_names == load_catalogue(SETTINGS.catalogue_path).feature_names
    bundle.catalogue_text = ""
    assert catalogue_of(bundle, elsewhere).feature_names == []


def test_insurance_cover_counts_each_household_separately(catalogue):
    store = _single_household_store([1000.0] * 24)
    other = store.tables["households"].assign(household_id=pd.array(["b"], dtype="string"))
    store.tables["households"] = pd.concat([store.tables["households"], other], ignore_index=True)
    store.tables["income"] = pd.concat([store.tables["income"], store.tables["income"].assign(household_id="b")])
    # The same person id appears in both households' insurance rows.
    store.tables["insurance"] = pd.DataFrame(
        {"person_id": ["p1", "p1"], "household_id": ["a", "b"], "year": [2022, 2022], "scheme": "basic_medical", "enrolled": True}
    )
    rows = build_features(Panel(store), catalogue, np.array([23])).set_index("household_id")
    assert rows.loc["a", "basic_medical_cover"] == pytest.approx(0.5)
    assert rows.loc["b", "basic_medical_cover"] == pytest.approx(0.5)
