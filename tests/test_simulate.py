"""Tests of the built-in household simulator on small runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from warning.contract import TABLES, DatasetInfo
from warning.settings import PROJECT_ROOT
from warning.simulate import Parameters, SimulationSummary, read_truth, simulate

SMALL = {"households": 500, "months": 30, "seed": 11}
MODERATE = {"households": 3000, "months": 48, "seed": 5}
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def month_number(labels: pd.Series) -> np.ndarray:
    text = labels.astype(str)
    return (text.str[:4].astype(int) * 12 + text.str[5:7].astype(int) - 1).to_numpy()


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLES}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    folder = tmp_path_factory.mktemp("small")
    return folder, simulate(folder, **SMALL)


@pytest.fixture(scope="module")
def small_tables(small_run: tuple[Path, SimulationSummary]) -> dict[str, pd.DataFrame]:
    return read_tables(small_run[0])


@pytest.fixture(scope="module")
def moderate_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    folder = tmp_path_factory.mktemp("moderate")
    return folder, simulate(folder, **MODERATE)


@pytest.fixture(scope="module")
def moderate_tables(moderate_run: tuple[Path, SimulationSummary]) -> dict[str, pd.DataFrame]:
    return read_tables(moderate_run[0])


def income_against_line(
    tables: dict[str, pd.DataFrame],
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Return household ids, months, trailing 12-month income per person and the line, from the tables."""
    households = tables["households"]
    income = tables["income"]
    lines = tables["poverty_lines"]
    months = sorted(income["month"].unique())
    grid = (
        income.pivot_table(index="household_id", columns="month", values="amount", aggfunc="sum")
        .reindex(index=households["household_id"], columns=months)
        .fillna(0.0)
        .to_numpy()
    )
    cumulative = np.cumsum(grid, axis=1)
    trailing = cumulative.copy()
    trailing[:, 12:] -= cumulative[:, :-12]
    per_person = trailing / households["members"].to_numpy()[:, None]

    prefixes = lines["region_prefix"].fillna("").to_numpy()
    chosen: dict[tuple[str, str, int], float] = {}
    for code, kind in set(zip(households["region_code"], households["urban_rural"], strict=True)):
        matches = np.array([code.startswith(prefix) for prefix in prefixes]) & (lines["urban_rural"] == kind)
        for year, group in lines[matches].groupby("year"):
            longest = group["region_prefix"].fillna("").str.len().idxmax()
            chosen[(code, kind, int(year))] = float(group.loc[longest, "line"])
    line = np.array(
        [
            [chosen[(code, kind, int(month[:4]))] for month in months]
            for code, kind in zip(households["region_code"], households["urban_rural"], strict=True)
        ]
    )
    return households["household_id"].to_numpy(), months, per_person, line


def trailing_falls(tables: dict[str, pd.DataFrame]) -> set[tuple[str, str]]:
    """Recompute falls: months where trailing income per person goes from at or above the line to below."""
    ids, months, per_person, line = income_against_line(tables)
    below = per_person < line
    fell = below[:, 12:] & ~below[:, 11:-1]
    rows, columns = np.nonzero(fell)
    return {(ids[row], months[column + 12]) for row, column in zip(rows, columns, strict=True)}


# Reproducibility.


def test_same_seed_gives_identical_files(small_run: tuple[Path, SimulationSummary], tmp_path: Path) -> None:
    folder, _ = small_run
    simulate(tmp_path, **SMALL)
    for name in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(folder / f"{name}.parquet"), pd.read_parquet(tmp_path / f"{name}.parquet")
        )
    for name in ("falls", "hardship"):
        pd.testing.assert_frame_equal(read_truth(folder, name), read_truth(tmp_path, name))


def test_different_seed_gives_different_data(
    small_run: tuple[Path, SimulationSummary], tmp_path: Path
) -> None:
    folder, _ = small_run
    simulate(tmp_path, **{**SMALL, "seed": SMALL["seed"] + 1})
    first = pd.read_parquet(folder / "households.parquet")
    second = pd.read_parquet(tmp_path / "households.parquet")
    assert set(first["household_id"]).isdisjoint(second["household_id"])
    assert not np.array_equal(
        pd.read_parquet(folder / "income.parquet")["amount"].to_numpy()[:1000],
        pd.read_parquet(tmp_path / "income.parquet")["amount"].to_numpy()[:1000],
    )


# Files and columns.


def test_every_table_has_contract_columns(small_run: tuple[Path, SimulationSummary]) -> None:
    folder, summary = small_run
    for name, table in TABLES.items():
        frame = pd.read_parquet(folder / f"{name}.parquet")
        assert list(frame.columns) == table.column_names, name
        assert summary.rows[name] == len(frame), name
    info = DatasetInfo.read(folder)
    assert info.name == "simulated"
    assert info.period == "month"


def test_csv_output_has_contract_columns(tmp_path: Path) -> None:
    summary = simulate(tmp_path, households=200, months=14, seed=3, file_format="csv")
    for name, table in TABLES.items():
        frame = pd.read_csv(tmp_path / f"{name}.csv", dtype=str)
        assert list(frame.columns) == table.column_names, name
        assert summary.rows[name] == len(frame), name
    assert (tmp_path / "truth" / "falls.csv").exists()
    assert list(read_truth(tmp_path).columns) == ["household_id", "month", "cause"]


def test_months_are_year_month_strings(small_tables: dict[str, pd.DataFrame]) -> None:
    for name, table in TABLES.items():
        frame = small_tables[name]
        for column in table.columns:
            values = frame[column.name].dropna().astype(str)
            if column.kind == "month":
                assert values.str.match(MONTH_PATTERN).all(), f"{name}.{column.name}"
            if column.kind == "year":
                assert pd.api.types.is_integer_dtype(frame[column.name]), f"{name}.{column.name}"
    income_months = sorted(small_tables["income"]["month"].unique())
    assert income_months[0] == "2021-01"
    assert income_months[-1] == "2023-06"
    assert len(income_months) == SMALL["months"]


def test_start_mid_year(tmp_path: Path) -> None:
    simulate(tmp_path, households=150, months=20, start="2022-07", seed=2)
    months = sorted(pd.read_parquet(tmp_path / "income.parquet")["month"].unique())
    assert months[0] == "2022-07"
    assert months[-1] == "2024-02"
    assert set(pd.read_parquet(tmp_path / "poverty_lines.parquet")["year"]) == {2022, 2023, 2024}
    registrations = pd.read_parquet(tmp_path / "registrations.parquet")
    assert (registrations.loc[registrations["status"] == "poor", "end_month"] < "2022-07").all()


def test_keys_are_unique(small_tables: dict[str, pd.DataFrame]) -> None:
    for name, table in TABLES.items():
        frame = small_tables[name]
        duplicated = frame.duplicated(list(table.key)).sum()
        assert duplicated == 0, f"{name} has {duplicated} rows with a repeated key {table.key}"


def test_income_rows_omit_zero_amounts(small_tables: dict[str, pd.DataFrame]) -> None:
    income = small_tables["income"]
    assert (income["amount"] != 0).all()
    assert set(income["source"]) == {"wage", "business", "farming", "property", "transfers", "pensions"}
    assert (income["amount"] == income["amount"].round()).all()


# Households and regions.


def test_region_and_township_code_format(small_tables: dict[str, pd.DataFrame]) -> None:
    households = small_tables["households"]
    codes = households["region_code"]
    townships = households["township_code"]
    assert codes.str.fullmatch(r"\d{6}").all()
    assert townships.str.fullmatch(r"\d{9}").all()
    assert (townships.str[:6] == codes).all()
    configured = {str(region["code"]) for region in Parameters.load().get("regions")}
    assert set(codes) <= configured
    assert codes.str[:2].nunique() >= 3


def test_urban_share_by_region_kind(
    moderate_tables: dict[str, pd.DataFrame],
) -> None:
    households = moderate_tables["households"]
    urban = households["urban_rural"] == "urban"
    assert urban[households["region_code"] == "410105"].mean() > 0.8
    assert urban[households["region_code"] == "621121"].mean() < 0.4
    assert {"urban", "rural"} == set(households["urban_rural"])


def test_household_counts_are_consistent(small_tables: dict[str, pd.DataFrame]) -> None:
    households = small_tables["households"]
    assert (households["members"] >= 1).all()
    assert (households["labour_capable"] <= households["members"]).all()
    assert (households["disabled"] <= households["members"]).all()
    assert (households["elderly"] <= households["members"]).all()
    assert (households["children_in_school"] <= households["members"]).all()
    assert households["household_id"].is_unique


def test_ids_look_like_hashes(small_tables: dict[str, pd.DataFrame]) -> None:
    hexadecimal = r"[0-9a-f]{16}"
    assert small_tables["households"]["household_id"].str.fullmatch(hexadecimal).all()
    assert small_tables["employment"]["person_id"].str.fullmatch(hexadecimal).all()
    assert small_tables["insurance"]["person_id"].str.fullmatch(hexadecimal).all()
    known = set(small_tables["households"]["household_id"])
    for name in (
        "income",
        "employment",
        "insurance",
        "medical_claims",
        "assistance",
        "events",
        "registrations",
    ):
        assert set(small_tables[name]["household_id"]) <= known, name


def test_poverty_lines_cover_every_year(small_tables: dict[str, pd.DataFrame]) -> None:
    lines = small_tables["poverty_lines"]
    years = set(small_tables["income"]["month"].str[:4].astype(int))
    assert years <= set(lines["year"])
    national = lines[lines["region_prefix"].isna()]
    assert set(national["urban_rural"]) == {"urban", "rural"}
    rural_2021 = lines[(lines["year"] == 2021) & (lines["urban_rural"] == "rural")]
    assert (rural_2021["line"] == 6000).all()
    urban = lines[(lines["urban_rural"] == "urban") & lines["region_prefix"].notna()]
    assert urban["region_prefix"].str.len().eq(4).all()
    for _, group in lines.groupby(["region_prefix", "urban_rural"], dropna=False):
        assert group.sort_values("year")["line"].is_monotonic_increasing


# Medical claims and insurance.


def test_claim_costs_add_up(small_tables: dict[str, pd.DataFrame]) -> None:
    claims = small_tables["medical_claims"]
    assert len(claims) > 0
    assert (claims["out_of_pocket"] + claims["reimbursed"] == claims["total_cost"]).all()
    assert (claims["reimbursed"] >= 0).all()
    assert (claims["out_of_pocket"] >= 0).all()
    assert set(claims["category"]) == {"inpatient", "outpatient", "chronic"}


def test_uninsured_households_pay_more(moderate_tables: dict[str, pd.DataFrame]) -> None:
    insurance = moderate_tables["insurance"]
    medical = insurance[(insurance["scheme"] == "basic_medical") & (insurance["year"] == 2021)]
    uninsured = set(medical.loc[~medical["enrolled"], "household_id"])
    claims = moderate_tables["medical_claims"]
    inpatient = claims[(claims["category"] == "inpatient") & claims["month"].str.startswith("2021")]
    share = inpatient["out_of_pocket"] / inpatient["total_cost"]
    has_uninsured = inpatient["household_id"].isin(uninsured)
    assert has_uninsured.sum() > 5
    assert share[has_uninsured].mean() > share[~has_uninsured].mean() + 0.2


def test_medical_coverage_near_published_rate(moderate_tables: dict[str, pd.DataFrame]) -> None:
    insurance = moderate_tables["insurance"]
    medical = insurance[insurance["scheme"] == "basic_medical"]
    assert 0.9 < medical["enrolled"].mean() < 0.99


# Registrations.


def test_poor_history_ends_before_start(moderate_tables: dict[str, pd.DataFrame]) -> None:
    registrations = moderate_tables["registrations"]
    poor = registrations[registrations["status"] == "poor"]
    exited = registrations[registrations["status"] == "exited"]
    assert len(poor) > 0
    assert (poor["end_month"] < "2021-01").all()
    assert set(poor["household_id"]) == set(exited["household_id"])
    assert exited["end_month"].isna().all()
    households = moderate_tables["households"]
    rural = households[households["urban_rural"] == "rural"]
    rural_share = rural["household_id"].isin(poor["household_id"]).mean()
    assert 0.1 < rural_share < 0.35
    assert {"low_income", "allowance"} <= set(registrations["status"])


# Falls and their true causes.


def test_falls_match_trailing_income(
    small_run: tuple[Path, SimulationSummary], small_tables: dict[str, pd.DataFrame]
) -> None:
    folder, _ = small_run
    truth = read_truth(folder)
    assert len(truth) > 0
    assert set(zip(truth["household_id"], truth["month"], strict=True)) == trailing_falls(small_tables)


def test_fall_rate_in_sane_range(moderate_run: tuple[Path, SimulationSummary]) -> None:
    _, summary = moderate_run
    share = summary.households_with_falls / summary.households
    assert 0.02 < share < 0.10
    assert 0.0 < summary.below_line_last_month["all"] < 0.10


def test_illness_is_most_common_cause(moderate_run: tuple[Path, SimulationSummary]) -> None:
    folder, summary = moderate_run
    causes = read_truth(folder)["cause"].value_counts()
    assert causes.index[0] == "illness"
    assert 0.25 < causes["illness"] / causes.sum() < 0.6
    assert summary.falls_by_cause["illness"] == causes["illness"]


def test_cause_names_match_catalogue(moderate_run: tuple[Path, SimulationSummary]) -> None:
    folder, _ = moderate_run
    catalogue = yaml.safe_load((PROJECT_ROOT / "features" / "cause_groups.yaml").read_text(encoding="utf-8"))
    assert set(Parameters.load().get("causes")) <= set(catalogue)
    assert set(read_truth(folder)["cause"]) <= set(catalogue)
    assert set(read_truth(folder, "hardship")["cause"]) <= set(catalogue)


def test_former_poor_fall_more_often(
    moderate_tables: dict[str, pd.DataFrame], moderate_run: tuple[Path, SimulationSummary]
) -> None:
    folder, _ = moderate_run
    households = moderate_tables["households"]
    rural = households[households["urban_rural"] == "rural"]
    registrations = moderate_tables["registrations"]
    former = rural["household_id"].isin(registrations.loc[registrations["status"] == "poor", "household_id"])
    fell = rural["household_id"].isin(read_truth(folder)["household_id"])
    assert fell[former].mean() > 1.3 * fell[~former].mean()
    assert fell[~former].mean() > 0


def test_explained_falls_have_matching_records(
    moderate_tables: dict[str, pd.DataFrame], moderate_run: tuple[Path, SimulationSummary]
) -> None:
    folder, _ = moderate_run
    # A shock adds to a month's losses while it is younger than the memory, and
    # a fall looks at the 12 months up to it.
    reach = Parameters.load().integer("truth.shock_memory_months") + 11
    events = moderate_tables["events"].assign(number=lambda frame: month_number(frame["month"]))
    claims = moderate_tables["medical_claims"]
    claims = claims[claims["category"] != "outpatient"].assign(
        number=lambda frame: month_number(frame["month"])
    )
    employment = moderate_tables["employment"].assign(number=lambda frame: month_number(frame["start_month"]))
    records = {
        "illness": [events[events["kind"] == "illness"], claims],
        "disability": [events[events["kind"] == "disability"]],
        "disaster": [events[events["kind"] == "disaster"]],
        "accident": [events[events["kind"] == "accident"]],
        "business_failure": [events[events["kind"] == "business_failure"]],
        "unstable_employment": [
            events[events["kind"] == "job_loss"],
            employment[employment["kind"] == "unemployed"],
        ],
        "lack_of_labour": [
            events[events["kind"] == "death"],
            employment[employment["kind"] == "out_of_labour_force"],
        ],
    }

    falls = read_truth(folder)
    falls = falls[falls["cause"] != "other"].assign(number=lambda frame: month_number(frame["month"]))
    assert len(falls) > 50

    unmatched = []
    for fall in falls.itertuples():
        found = False
        for frame in records[fall.cause]:
            rows = frame[frame["household_id"] == fall.household_id]
            window = (rows["number"] <= fall.number) & (rows["number"] >= fall.number - reach)
            if (
                fall.cause == "unstable_employment"
                and "kind" in rows
                and (rows["kind"] == "unemployed").any()
            ):
                window = window | (rows["number"] <= fall.number)
            found = found or bool(window.any())
        if not found:
            unmatched.append((fall.household_id, fall.month, fall.cause))
    assert unmatched == []


def test_hardship_only_while_income_above_line(
    small_run: tuple[Path, SimulationSummary], small_tables: dict[str, pd.DataFrame]
) -> None:
    folder, _ = small_run
    hardship = read_truth(folder, "hardship")
    assert len(hardship) > 0
    ids, months, per_person, line = income_against_line(small_tables)
    rows = pd.Index(ids).get_indexer(hardship["household_id"])
    columns = pd.Index(months).get_indexer(hardship["month"])
    assert (rows >= 0).all()
    assert (columns >= 12).all()
    assert (per_person[rows, columns] >= line[rows, columns]).all()
    assert set(hardship["cause"]) >= {"illness"}


# Shocks move income.


def test_shocks_cut_the_income_they_hit(moderate_tables: dict[str, pd.DataFrame]) -> None:
    income = moderate_tables["income"].assign(number=lambda frame: month_number(frame["month"]))
    events = moderate_tables["events"].assign(number=lambda frame: month_number(frame["month"]))
    by_source = income.pivot_table(
        index=["household_id", "number"], columns="source", values="amount", aggfunc="sum"
    )
    by_source = by_source.fillna(0.0)
    for kind, source in (("job_loss", "wage"), ("business_failure", "business"), ("illness", "wage")):
        shocked = events[(events["kind"] == kind) & (events["number"] >= 3)].drop_duplicates("household_id")
        before = by_source.reindex(
            pd.MultiIndex.from_arrays([shocked["household_id"], shocked["number"] - 2])
        )[source].fillna(0.0)
        after = by_source.reindex(
            pd.MultiIndex.from_arrays([shocked["household_id"], shocked["number"] + 1])
        )[source].fillna(0.0)
        assert after.sum() < 0.9 * before.sum(), kind


# Input checks.


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"households": 0}, "households must be at least 1"),
        ({"months": 0}, "months must be at least 1"),
        ({"start": "2021-13"}, "start must be a month written YYYY-MM"),
        ({"file_format": "xlsx"}, "file_format must be"),
    ],
)
def test_invalid_arguments_raise(tmp_path: Path, arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(tmp_path, **{"households": 10, "months": 2, **arguments})  # type: ignore[arg-type]


def test_missing_parameter_names_its_key() -> None:
    parameters = Parameters({"medical": {}}, Path("parameters.yaml"))
    with pytest.raises(KeyError, match="medical.admission_rate"):
        parameters.get("medical.admission_rate")
