"""Relapse and new-poverty labels against the monitoring line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from warning.contract import DatasetInfo
from warning.labels import build_labels
from warning.panel import Panel
from warning.store import Store


def _store(incomes: dict[str, list[float]], registered: tuple[str, ...] = (), period: str = "month") -> Store:
    ids = list(incomes)
    months = len(next(iter(incomes.values())))
    households = pd.DataFrame(
        {
            "household_id": pd.array(ids, dtype="string"),
            "region_code": pd.array(["520121"] * len(ids), dtype="string"),
            "township_code": pd.array([None] * len(ids), dtype="string"),
            "urban_rural": pd.array(["rural"] * len(ids), dtype="string"),
            "members": [1] * len(ids),
            "labour_capable": [1] * len(ids),
            "disabled": [0] * len(ids),
            "elderly": [0] * len(ids),
            "children_in_school": [0] * len(ids),
        }
    )
    stamps = pd.date_range("2021-01-01", periods=months, freq="MS").astype("datetime64[ms]")
    income = pd.concat(
        [pd.DataFrame({"household_id": key, "month": stamps, "source": "wage", "amount": values}) for key, values in incomes.items()],
        ignore_index=True,
    )
    registrations = pd.DataFrame(
        {
            "household_id": list(registered),
            "status": "exited",
            "start_month": pd.Timestamp("2020-01-01"),
            "end_month": pd.NaT,
        }
    ).astype({"start_month": "datetime64[ms]", "end_month": "datetime64[ms]"})
    lines = pd.DataFrame({"year": [2021, 2022, 2023], "region_prefix": [None] * 3, "urban_rural": "rural", "line": [6000.0, 6000.0, 9000.0]})
    tables = {"households": households, "income": income, "registrations": registrations, "poverty_lines": lines}
    return Store(Path("memory"), DatasetInfo(period=period), tables)


def test_fall_labels_split_by_history():
    steady = [1000.0] * 36
    falling = [1000.0] * 15 + [0.0] * 21
    store = _store({"steady": steady, "fell_new": falling, "fell_former": falling}, registered=("fell_former",))
    labels = build_labels(Panel(store), np.array([11, 14]), horizon_months=12).set_index(["household_id", "cutoff"])

    first = pd.Timestamp("2021-12-01")
    assert labels.loc[("steady", first), "new_poverty"] == 0.0
    assert np.isnan(labels.loc[("steady", first), "relapse"])
    assert labels.loc[("fell_new", first), "new_poverty"] == 1.0
    assert labels.loc[("fell_former", first), "relapse"] == 1.0
    assert np.isnan(labels.loc[("fell_former", first), "new_poverty"])


def test_rising_line_makes_a_steady_household_fall():
    # 7,200 a year is above the 6,000 line of 2022 but below the 9,000 line of 2023.
    store = _store({"steady": [600.0] * 36})
    labels = build_labels(Panel(store), np.array([11, 23]), horizon_months=12)
    assert labels["new_poverty"].tolist() == [0.0, 1.0]


def test_below_line_household_not_at_risk():
    store = _store({"poor": [100.0] * 36})
    labels = build_labels(Panel(store), np.array([11]), horizon_months=12)
    assert labels[["relapse", "new_poverty"]].isna().all(axis=None)


def test_horizon_past_data_end_gives_no_label():
    store = _store({"a": [1000.0] * 24})
    labels = build_labels(Panel(store), np.array([11, 15]), horizon_months=12)
    assert labels["new_poverty"].tolist()[0] == 0.0
    assert np.isnan(labels["new_poverty"].tolist()[1])


def test_yearly_waves_use_next_observed_wave():
    store = _store({"a": [7000.0, 7000.0, 3000.0]}, period="year")
    store.tables["income"]["month"] = pd.to_datetime(["2021-07-01", "2022-07-01", "2023-07-01"]).astype("datetime64[ms]")
    panel = Panel(store)
    labels = build_labels(panel, np.array([0, 1]), horizon_months=12)
    assert labels["new_poverty"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("members, at_risk", [(1, True), (2, False)])
def test_line_is_per_person(members, at_risk):
    # 700 a month is 8,400 a year: above the 6,000 line for one person, 4,200 each for two.
    store = _store({"a": [700.0] * 24})
    store.tables["households"]["members"] = members
    labels = build_labels(Panel(store), np.array([0, 11]), horizon_months=12)
    assert np.isnan(labels["new_poverty"].iloc[0])  # no full year of income at the first month
    assert labels["new_poverty"].notna().iloc[1] == at_risk


def test_yearly_label_is_outcome_at_next_wave():
    # Below the line in 2023 but back above in 2024: the next wave (2023) decides.
    store = _store({"a": [7000.0, 3000.0, 7000.0]}, period="year")
    store.tables["income"]["month"] = pd.to_datetime(["2021-07-01", "2023-07-01", "2024-07-01"]).astype("datetime64[ms]")
    store.tables["poverty_lines"] = pd.DataFrame(
        {"year": [2021], "region_prefix": [None], "urban_rural": ["rural"], "line": [6000.0]}
    )
    labels = build_labels(Panel(store), np.array([0]), horizon_months=36)
    assert labels["new_poverty"].tolist() == [1.0]


def test_sudden_hardship_counts_rigid_spending():
    # 1,000 a month is 12,000 a year, well above the 6,000 line. A 9,000 hospital
    # bill in month 18 leaves 3,000 for the year, under the line, while income
    # alone stays above it.
    store = _store({"sick": [1000.0] * 36, "well": [1000.0] * 36})
    store.tables["medical_claims"] = pd.DataFrame(
        {
            "household_id": ["sick"],
            "month": pd.to_datetime(["2022-07-01"]).astype("datetime64[ms]"),
            "category": ["inpatient"],
            "total_cost": [12000.0],
            "reimbursed": [3000.0],
            "out_of_pocket": [9000.0],
        }
    )
    labels = build_labels(Panel(store), np.array([11]), horizon_months=12).set_index("household_id")
    assert labels.loc["sick", "sudden_hardship"] == 1.0
    assert labels.loc["well", "sudden_hardship"] == 0.0
    assert labels.loc["sick", "new_poverty"] == 0.0


def test_hardship_household_not_at_risk():
    store = _store({"a": [1000.0] * 36})
    store.tables["events"] = pd.DataFrame(
        {
            "household_id": ["a"],
            "month": pd.to_datetime(["2021-10-01"]).astype("datetime64[ms]"),
            "kind": ["schooling"],
            "loss_amount": [10000.0],
        }
    )
    labels = build_labels(Panel(store), np.array([11]), horizon_months=12)
    assert np.isnan(labels["sudden_hardship"].iloc[0])
    assert labels["new_poverty"].iloc[0] == 0.0
