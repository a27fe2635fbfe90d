"""Tests of ingest: contract tables in a folder to a typed store plus a quarantine."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import warning.ingest.pipeline
from warning.contract import LATEST_YEAR, TABLES, DatasetInfo
from warning.ingest import (
    QUARANTINE_COLUMNS,
    IngestError,
    IngestReport,
    TableReport,
    ingest,
    table_schema,
)
from warning.store import PANDAS_DTYPES, read_store

# A small valid dataset with every contract table, as CSV cells. Row n of a
# table below is data row n + 1 of its file.
GOOD_TABLES: dict[str, list[dict[str, str]]] = {
    "households": [
        dict(household_id="h1", region_code="110101", township_code="110101001", urban_rural="rural",
             members="4", labour_capable="2", disabled="0", elderly="1", children_in_school="1"),
        dict(household_id="h2", region_code="110101", township_code="", urban_rural="urban",
             members="2", labour_capable="2", disabled="0", elderly="0", children_in_school="0"),
        dict(household_id="h3", region_code="320102", township_code="320102003", urban_rural="rural",
             members="3", labour_capable="1", disabled="1", elderly="1", children_in_school="0"),
    ],
    "registrations": [
        dict(household_id="h1", status="poor", start_month="2021-01", end_month="2022-06"),
        dict(household_id="h2", status="low_income", start_month="2022-03", end_month=""),
    ],
    "income": [
        dict(household_id="h1", month="2023-01", source="wage", amount="1500.5"),
        dict(household_id="h1", month="2023-01", source="farming", amount="-200"),
        dict(household_id="h2", month="2023-01", source="wage", amount="3000"),
        dict(household_id="h3", month="2023-02", source="transfers", amount="400"),
    ],
    "employment": [
        dict(person_id="p1", household_id="h1", kind="migrant", sector="construction",
             start_month="2022-01", end_month=""),
        dict(person_id="p2", household_id="h2", kind="local_wage", sector="",
             start_month="2021-05", end_month="2022-12"),
    ],
    "insurance": [
        dict(person_id="p1", household_id="h1", year="2023", scheme="basic_medical", enrolled="true"),
        dict(person_id="p2", household_id="h2", year="2023", scheme="pension", enrolled="0"),
    ],
    "medical_claims": [
        dict(household_id="h3", month="2023-02", category="inpatient", total_cost="10000", reimbursed="7000",
             out_of_pocket="3000"),
    ],
    "assistance": [
        dict(household_id="h1", month="2023-01", programme="allowance", amount="300"),
    ],
    "events": [
        dict(household_id="h3", month="2023-02", kind="illness", loss_amount="8000"),
        dict(household_id="h1", month="2023-03", kind="job_loss", loss_amount=""),
    ],
    "poverty_lines": [
        dict(year="2023", region_prefix="", urban_rural="rural", line="6000"),
        dict(year="2023", region_prefix="11", urban_rural="urban", line="9000"),
    ],
}


def good_frames() -> dict[str, pd.DataFrame]:
    return {name: pd.DataFrame(rows, dtype="string") for name, rows in GOOD_TABLES.items()}


def write_csv_tables(folder: Path, frames: dict[str, pd.DataFrame]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def write_good_dataset(folder: Path, **changes: pd.DataFrame) -> Path:
    """Write every good table, with the tables in ``changes`` replaced."""
    frames = good_frames()
    frames.update(changes)
    return write_csv_tables(folder, frames)


def write_required_dataset(folder: Path, **changes: pd.DataFrame) -> Path:
    """Write the good required tables and the tables in ``changes``, which keeps a test fast."""
    frames = {name: frame for name, frame in good_frames().items() if TABLES[name].required}
    frames.update(changes)
    return write_csv_tables(folder, frames)


def with_cell(table: str, row: int, column: str, value: str) -> pd.DataFrame:
    """Return the good table with one cell changed (``row`` is 0-based, so file row ``row + 1``)."""
    frame = good_frames()[table]
    frame.loc[row, column] = value
    return frame


def quarantine(store: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(store / "quarantine" / f"{table}.csv", dtype=str, keep_default_na=False)


def assert_counts_add_up(report: IngestReport) -> None:
    for table in report.tables.values():
        assert table.rows_read == table.rows_kept + table.rows_quarantined, table.table


# Good data


def test_good_csv_dataset_keeps_every_row(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    report = ingest(source, tmp_path / "store")

    for name, rows in GOOD_TABLES.items():
        table = report.tables[name]
        assert table.status == "ingested"
        assert table.file == f"{name}.csv"
        assert table.rows_read == len(rows)
        assert table.rows_kept == len(rows)
        assert table.rows_quarantined == 0
        assert table.problems == {}
    assert report.problems == {}
    assert not (tmp_path / "store" / "quarantine").exists()
    assert_counts_add_up(report)


def test_good_dataset_store_has_contract_dtypes(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    ingest(source, tmp_path / "store")
    store = read_store(tmp_path / "store")

    assert set(store.tables) == set(TABLES)
    for name, table in TABLES.items():
        frame = store.tables[name]
        assert list(frame.columns) == table.column_names
        for column in table.columns:
            expected = pd.Series(dtype=PANDAS_DTYPES[column.kind]).dtype
            assert frame[column.name].dtype == expected, f"{name}.{column.name}"
        table_schema(table).validate(frame)


def test_good_dataset_values_are_typed(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    ingest(source, tmp_path / "store")
    store = read_store(tmp_path / "store")

    income = store.tables["income"]
    assert income["month"].tolist() == [pd.Timestamp("2023-01-01")] * 3 + [pd.Timestamp("2023-02-01")]
    assert income["amount"].tolist() == [1500.5, -200.0, 3000.0, 400.0]
    assert store.tables["insurance"]["enrolled"].tolist() == [True, False]
    assert store.tables["households"]["members"].tolist() == [4, 2, 3]
    assert store.tables["households"]["township_code"].isna().tolist() == [False, True, False]
    assert store.tables["registrations"]["end_month"].isna().tolist() == [False, True]
    assert store.tables["poverty_lines"]["region_prefix"].isna().tolist() == [True, False]
    assert np.isnan(store.tables["events"]["loss_amount"].iloc[1])


def test_parquet_store_roundtrips_through_ingest(tmp_path: Path) -> None:
    ingest(write_good_dataset(tmp_path / "source"), tmp_path / "store")
    first = read_store(tmp_path / "store")
    parquet_source = tmp_path / "parquet_source"
    parquet_source.mkdir()
    for name, frame in first.tables.items():
        frame.to_parquet(parquet_source / f"{name}.parquet", index=False)

    report = ingest(parquet_source, tmp_path / "store2")
    second = read_store(tmp_path / "store2")

    assert report.rows_quarantined == 0
    for name in TABLES:
        pd.testing.assert_frame_equal(second.tables[name], first.tables[name])


def test_parquet_native_types_are_checked(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "income.csv").unlink()
    pd.DataFrame(
        {
            "household_id": ["h1", "h1", "h1"],
            "month": pd.to_datetime(["2023-01-15", "2023-02-01", "2023-03-31"]),
            "source": ["wage", "wage", "wage"],
            "amount": [100.0, np.nan, np.inf],
        }
    ).to_parquet(source / "income.parquet", index=False)
    (source / "households.csv").unlink()
    households = good_frames()["households"].astype({"members": "float64"})
    households.loc[1, "members"] = 2.5
    households.to_parquet(source / "households.parquet", index=False)

    report = ingest(source, tmp_path / "store")

    income = read_store(tmp_path / "store").tables["income"]
    assert income["month"].tolist() == [pd.Timestamp("2023-01-01")]
    problems = quarantine(tmp_path / "store", "income")
    assert problems[["row", "column", "value", "reason"]].values.tolist() == [
        ["2", "amount", "", "missing value"],
        ["3", "amount", "inf", "not a finite number"],
    ]
    household_problems = quarantine(tmp_path / "store", "households")
    assert household_problems[["row", "column", "value", "reason"]].values.tolist() == [
        ["2", "members", "2.5", "not a valid integer"],
    ]
    assert report.tables["income"].rows_quarantined == 2
    assert_counts_add_up(report)


def test_month_given_as_date_is_floored_to_month(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source", income=with_cell("income", 3, "month", "2023-02-17"))
    ingest(source, tmp_path / "store")
    assert read_store(tmp_path / "store").tables["income"]["month"].iloc[3] == pd.Timestamp("2023-02-01")


def test_dataset_yaml_is_copied(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    DatasetInfo(name="county-panel", period="year", description="test").write(source)
    report = ingest(source, tmp_path / "store")
    info = DatasetInfo.read(tmp_path / "store")
    assert info.name == "county-panel"
    assert info.period == "year"
    assert report.dataset == "county-panel"


# Bad rows go to the quarantine with table, file, row, column, value and reason.

BAD_CELLS = [
    # table, 0-based row, column, bad value, expected reason, expected detail
    ("households", 1, "members", "three", "not a valid integer", ""),
    ("households", 0, "urban_rural", "Urban", "not an allowed category", "allowed: urban, rural"),
    ("assistance", 0, "amount", "-5", "less than minimum 0", ""),
    ("events", 0, "loss_amount", "-1", "less than minimum 0", ""),
    ("income", 2, "month", "2023-13", "not a valid month (expected YYYY-MM)", ""),
    ("income", 2, "month", "2023-02-30", "not a valid month (expected YYYY-MM)", ""),
    ("income", 0, "amount", "1,500", "not a valid number", ""),
    ("insurance", 1, "year", "23", "not a valid year (expected YYYY)", ""),
    ("insurance", 0, "enrolled", "yes", "not a valid boolean (expected true, false, 1 or 0)", ""),
    ("income", 1, "source", "", "missing value", ""),
    ("registrations", 0, "end_month", "2020-12", "end_month before start_month", "start_month = 2021-01"),
    ("employment", 1, "end_month", "2021-04", "end_month before start_month", "start_month = 2021-05"),
    ("income", 3, "household_id", "h9", "household_id not in households table", ""),
    ("events", 0, "household_id", "h9", "household_id not in households table", ""),
    ("households", 2, "township_code", "110101003", "township_code does not start with region_code",
     "region_code = 320102"),
    ("households", 0, "township_code", "1101010", "not a 9-digit township code", ""),
    ("households", 0, "region_code", "11010", "not a 6-digit region code", ""),
    ("households", 0, "labour_capable", "5", "labour_capable greater than members", "members = 4"),
    ("households", 2, "elderly", "4", "elderly greater than members", "members = 3"),
    ("medical_claims", 0, "total_cost", "9999.5", "reimbursed + out_of_pocket greater than total_cost",
     "reimbursed = 7000, out_of_pocket = 3000"),
    ("poverty_lines", 1, "region_prefix", "11x", "not a region code prefix of 1 to 6 digits", ""),
    # Digits other than ASCII 0-9, which Python's \d matches but the parsers reject.
    ("income", 0, "amount", "１２３", "not a valid number", ""),
    ("households", 0, "members", "٣", "not a valid integer", ""),
    ("insurance", 0, "year", "２０２３", "not a valid year (expected YYYY)", ""),
    ("income", 0, "month", "２０２３-01", "not a valid month (expected YYYY-MM)", ""),
    ("registrations", 0, "start_month", "2021-0١", "not a valid month (expected YYYY-MM)", ""),
    ("households", 0, "region_code", "１１０１０１", "not a 6-digit region code", ""),
    ("poverty_lines", 1, "region_prefix", "１１", "not a region code prefix of 1 to 6 digits", ""),
    # Implausible months and years.
    ("income", 0, "month", "1899-12", "month before 1900-01", ""),
    ("employment", 1, "start_month", "1850-05", "month before 1900-01", ""),
    ("income", 0, "month", "2999-01", "month is in the future", ""),
    ("insurance", 0, "year", "1899", "less than minimum 1900", ""),
    ("poverty_lines", 0, "year", str(LATEST_YEAR + 1), f"greater than maximum {LATEST_YEAR}", ""),
    # Numbers that are not finite.
    ("income", 0, "amount", "1e999", "not a finite number", ""),
    ("income", 1, "amount", "-1e999", "not a finite number", ""),
    ("income", 2, "amount", "inf", "not a finite number", ""),
    ("income", 3, "amount", "nan", "not a finite number", ""),
    ("events", 0, "loss_amount", "-Infinity", "not a finite number", ""),
    # Upper bounds.
    ("households", 0, "members", "101", "greater than maximum 100", ""),
    ("income", 0, "amount", "1000000001", "greater than maximum 1e+09", ""),
    ("income", 1, "amount", "-1000000001", "less than minimum -1e+09", ""),
    ("assistance", 0, "amount", "2e9", "greater than maximum 1e+09", ""),
    ("events", 0, "loss_amount", "1000000000.5", "greater than maximum 1e+09", ""),
    ("poverty_lines", 0, "line", "10000001", "greater than maximum 1e+07", ""),
    # Ids.
    ("income", 0, "household_id", "h" * 129, "invalid id", ""),
    ("households", 1, "household_id", "h\n2", "invalid id", ""),
    ("employment", 0, "person_id", "p\x071", "invalid id", ""),
]


@pytest.mark.parametrize(("table", "row", "column", "value", "reason", "detail"), BAD_CELLS)
def test_bad_cell_quarantines_its_row(
    tmp_path: Path, table: str, row: int, column: str, value: str, reason: str, detail: str
) -> None:
    source = write_required_dataset(tmp_path / "source", **{table: with_cell(table, row, column, value)})
    report = ingest(source, tmp_path / "store")

    problems = quarantine(tmp_path / "store", table)
    assert problems.to_dict("records") == [
        {
            "table": table,
            "file": f"{table}.csv",
            "row": str(row + 1),
            "column": column,
            "value": value,
            "reason": reason,
            "detail": detail,
        }
    ]
    result = report.tables[table]
    assert result.rows_read == len(GOOD_TABLES[table])
    assert result.rows_quarantined == 1
    assert result.rows_kept == len(GOOD_TABLES[table]) - 1
    assert result.problems == {reason: 1}
    assert_counts_add_up(report)


def test_bounds_are_inclusive(tmp_path: Path) -> None:
    households = with_cell("households", 0, "members", "100")
    income = with_cell("income", 0, "amount", "1e9")
    income.loc[1, "amount"] = "-1e9"
    income.loc[2, "household_id"] = "h" * 127 + "2"
    lines = with_cell("poverty_lines", 0, "line", "1e7")
    lines.loc[1, "year"] = str(LATEST_YEAR)
    households.loc[1, "household_id"] = "h" * 127 + "2"
    source = write_required_dataset(
        tmp_path / "source", households=households, income=income, poverty_lines=lines
    )
    report = ingest(source, tmp_path / "store")
    assert report.rows_quarantined == 0
    assert report.tables["income"].rows_kept == 4


def test_months_after_as_of_are_in_future(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    report = ingest(source, tmp_path / "store", as_of=date(2023, 2, 1))

    problems = quarantine(tmp_path / "store", "events")
    assert problems[["row", "column", "value", "reason"]].values.tolist() == [
        ["2", "month", "2023-03", "month is in the future"],
    ]
    assert report.tables["income"].rows_kept == 4
    assert report.tables["events"].rows_kept == 1
    assert report.problems == {"month is in the future": 1}
    assert_counts_add_up(report)


def test_id_with_nul_is_invalid(tmp_path: Path) -> None:
    income = with_cell("income", 0, "household_id", "h\x001")
    source = write_required_dataset(tmp_path / "source", income=income)
    report = ingest(source, tmp_path / "store")
    assert report.tables["income"].problems == {"invalid id": 1}
    assert report.tables["income"].rows_kept == 3
    assert report.tables["income"].rows_quarantined == 1
    assert_counts_add_up(report)


def test_contract_sets_plausible_bounds() -> None:
    households = TABLES["households"]
    for name in ("members", "labour_capable", "disabled", "elderly", "children_in_school"):
        assert households.column(name).max_value == 100, name
    amounts = [
        ("income", "amount"),
        ("medical_claims", "total_cost"),
        ("medical_claims", "reimbursed"),
        ("medical_claims", "out_of_pocket"),
        ("assistance", "amount"),
        ("events", "loss_amount"),
    ]
    for table, name in amounts:
        assert TABLES[table].column(name).max_value == 1e9, f"{table}.{name}"
    assert TABLES["income"].column("amount").min_value == -1e9
    assert TABLES["poverty_lines"].column("line").max_value == 1e7
    for table in ("insurance", "poverty_lines"):
        assert TABLES[table].column("year").min_value == 1900
        assert TABLES[table].column("year").max_value == 2100


def test_cost_rounding_within_tolerance(tmp_path: Path) -> None:
    claims = with_cell("medical_claims", 0, "total_cost", "9999.995")
    report = ingest(write_required_dataset(tmp_path / "source", medical_claims=claims), tmp_path / "store")
    assert report.tables["medical_claims"].rows_kept == 1
    assert report.tables["medical_claims"].rows_quarantined == 0


def test_quarantine_file_has_documented_columns(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source", income=with_cell("income", 0, "amount", "x"))
    ingest(source, tmp_path / "store")
    assert tuple(quarantine(tmp_path / "store", "income").columns) == QUARANTINE_COLUMNS


def test_rejected_rows_are_kept_as_read(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source", income=with_cell("income", 2, "month", "2023-13"))
    ingest(source, tmp_path / "store")
    rows = pd.read_csv(tmp_path / "store" / "quarantine" / "income_rows.csv", dtype=str)
    assert rows.to_dict("records") == [
        {"row": "3", "household_id": "h2", "month": "2023-13", "source": "wage", "amount": "3000"}
    ]


def test_row_with_several_problems_counts_once(tmp_path: Path) -> None:
    households = with_cell("households", 1, "urban_rural", "town")
    households.loc[1, "members"] = "two"
    households.loc[1, "disabled"] = "-1"
    report = ingest(write_required_dataset(tmp_path / "source", households=households), tmp_path / "store")

    problems = quarantine(tmp_path / "store", "households")
    assert problems[["row", "column", "value", "reason"]].values.tolist() == [
        ["2", "members", "two", "not a valid integer"],
        ["2", "urban_rural", "town", "not an allowed category"],
        ["2", "disabled", "-1", "less than minimum 0"],
    ]
    assert report.tables["households"].rows_quarantined == 1
    assert report.tables["households"].rows_kept == 2
    assert sum(report.tables["households"].problems.values()) == 3


def test_duplicate_key_keeps_first_row(tmp_path: Path) -> None:
    income = good_frames()["income"]
    income = pd.concat([income, income.iloc[[2]].assign(amount="3100")], ignore_index=True)
    report = ingest(write_required_dataset(tmp_path / "source", income=income), tmp_path / "store")

    assert quarantine(tmp_path / "store", "income").to_dict("records") == [
        {
            "table": "income",
            "file": "income.csv",
            "row": "5",
            "column": "household_id, month, source",
            "value": "h2, 2023-01, wage",
            "reason": "duplicate key (household_id, month, source)",
            "detail": "first at row 3",
        }
    ]
    kept = read_store(tmp_path / "store").tables["income"]
    assert kept.loc[kept["household_id"] == "h2", "amount"].tolist() == [3000.0]
    assert report.tables["income"].rows_read == 5
    assert report.tables["income"].rows_kept == 4
    assert_counts_add_up(report)


def test_duplicate_of_invalid_row_is_kept(tmp_path: Path) -> None:
    income = good_frames()["income"]
    income = pd.concat([income, income.iloc[[2]]], ignore_index=True)
    income.loc[2, "amount"] = "n/a"
    ingest(write_required_dataset(tmp_path / "source", income=income), tmp_path / "store")

    problems = quarantine(tmp_path / "store", "income")
    assert problems[["row", "reason"]].values.tolist() == [["3", "not a valid number"]]
    kept = read_store(tmp_path / "store").tables["income"]
    assert kept.loc[kept["household_id"] == "h2", "amount"].tolist() == [3000.0]


def test_duplicates_found_across_chunks(tmp_path: Path) -> None:
    income = good_frames()["income"]
    income = pd.concat([income, income.iloc[[0]]], ignore_index=True)
    source = write_required_dataset(tmp_path / "source", income=income)
    report = ingest(source, tmp_path / "store", chunk_rows=2)
    problems = quarantine(tmp_path / "store", "income")
    assert problems[["row", "detail"]].values.tolist() == [["5", "first at row 1"]]
    assert report.tables["income"].rows_kept == 4


def test_duplicate_key_with_missing_part(tmp_path: Path) -> None:
    lines = good_frames()["poverty_lines"]
    lines = pd.concat([lines, lines.iloc[[0]].assign(line="6100")], ignore_index=True)
    ingest(write_required_dataset(tmp_path / "source", poverty_lines=lines), tmp_path / "store")
    assert quarantine(tmp_path / "store", "poverty_lines")[["row", "value", "detail"]].values.tolist() == [
        ["3", "2023, , rural", "first at row 1"],
    ]


def test_small_chunks_give_same_store(tmp_path: Path) -> None:
    income = with_cell("income", 1, "amount", "x")
    source = write_good_dataset(tmp_path / "source", income=income)
    whole = ingest(source, tmp_path / "whole")
    chunked = ingest(source, tmp_path / "chunked", chunk_rows=1)

    for name in TABLES:
        assert chunked.tables[name].rows_kept == whole.tables[name].rows_kept, name
        assert chunked.tables[name].problems == whole.tables[name].problems, name
    for name in TABLES:
        pd.testing.assert_frame_equal(
            read_store(tmp_path / "chunked").tables[name], read_store(tmp_path / "whole").tables[name]
        )
    pd.testing.assert_frame_equal(
        quarantine(tmp_path / "chunked", "income"), quarantine(tmp_path / "whole", "income")
    )


def test_rows_of_quarantined_household_are_quarantined(tmp_path: Path) -> None:
    households = with_cell("households", 2, "urban_rural", "suburban")
    report = ingest(write_good_dataset(tmp_path / "source", households=households), tmp_path / "store")

    for table, row in (("income", "4"), ("medical_claims", "1"), ("events", "1")):
        problems = quarantine(tmp_path / "store", table)
        assert problems[["row", "column", "value", "reason", "detail"]].values.tolist() == [
            [row, "household_id", "h3", "household_id not in households table",
             "the households row with this id is quarantined"],
        ], table
    assert report.tables["medical_claims"].rows_kept == 0
    assert_counts_add_up(report)


def test_csv_malformed_and_blank_rows(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "income.csv").write_text(
        "household_id,month,source,amount\n"
        "h1,2023-01,wage,1500.5\n"
        "h2,2023-01,wage,3000,extra\n"
        '"h1",2023-01,farming,"-200"\n'
        "\n"
        "h2,2023-01,wage,3000\n"
        "   \n"
        "h3,2023-02,transfers,400\n"
        "h3,2023-13,wage,1\n"
    )

    report = ingest(source, tmp_path / "store")

    problems = quarantine(tmp_path / "store", "income")
    assert problems[["row", "column", "value", "reason", "detail"]].values.tolist() == [
        ["2", "", "h2,2023-01,wage,3000,extra", "wrong number of fields", "expected 4 fields, found 5"],
        ["4", "", "", "empty row", ""],
        ["6", "", "", "empty row", ""],
        ["8", "month", "2023-13", "not a valid month (expected YYYY-MM)", ""],
    ]
    assert report.tables["income"].rows_read == 8
    assert report.tables["income"].rows_kept == 4
    assert report.tables["income"].rows_quarantined == 4


def test_cells_are_trimmed(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source", income=with_cell("income", 0, "amount", "  12.5 "))
    report = ingest(source, tmp_path / "store")
    assert report.rows_quarantined == 0
    assert read_store(tmp_path / "store").tables["income"]["amount"].iloc[0] == 12.5


# Whole-file problems


def test_missing_required_column_aborts(tmp_path: Path) -> None:
    income = good_frames()["income"].drop(columns="amount")
    source = write_required_dataset(tmp_path / "source", income=income)
    expected = r"table income, file income\.csv: missing required column 'amount'"
    with pytest.raises(IngestError, match=expected):
        ingest(source, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_missing_column_in_optional_table_skips_table(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source", events=good_frames()["events"].drop(columns="kind"))
    report = ingest(source, tmp_path / "store")

    events = report.tables["events"]
    assert events.status == "failed"
    assert events.error == (
        "missing required column 'kind' (the file has 'household_id', 'month', 'loss_amount')"
    )
    assert events.rows_read == 0
    assert report.failed_tables == ["events"]
    assert "events" not in read_store(tmp_path / "store").tables
    assert report.tables["income"].rows_kept == 4


def test_missing_nullable_column_is_filled(tmp_path: Path) -> None:
    households = good_frames()["households"].drop(columns="township_code")
    report = ingest(write_required_dataset(tmp_path / "source", households=households), tmp_path / "store")
    assert report.tables["households"].null_filled_columns == ["township_code"]
    assert read_store(tmp_path / "store").tables["households"]["township_code"].isna().all()


def test_extra_column_is_dropped_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    income = good_frames()["income"].assign(note="checked")
    with caplog.at_level(logging.WARNING, logger="warning.ingest"):
        report = ingest(write_required_dataset(tmp_path / "source", income=income), tmp_path / "store")
    assert report.tables["income"].dropped_columns == ["note"]
    assert report.tables["income"].rows_kept == 4
    assert list(read_store(tmp_path / "store").tables["income"].columns) == TABLES["income"].column_names
    assert "Dropped columns ['note']" in caplog.text


def test_empty_required_file_aborts(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "households.csv").write_text("")
    with pytest.raises(IngestError, match=r"table households, file households\.csv: the file is empty"):
        ingest(source, tmp_path / "store")


@pytest.mark.parametrize("table", ["households", "income", "poverty_lines"])
def test_header_only_required_table_aborts(tmp_path: Path, table: str) -> None:
    source = write_required_dataset(tmp_path / "source", **{table: good_frames()[table].iloc[:0]})
    expected = (
        rf"table {table} has no valid rows; nothing to build features from "
        rf"\({table}\.csv: no data rows\)"
    )
    with pytest.raises(IngestError, match=expected):
        ingest(source, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_required_table_all_quarantined_aborts(tmp_path: Path) -> None:
    income = good_frames()["income"].assign(amount="x")
    source = write_required_dataset(tmp_path / "source", income=income)
    expected = (
        r"table income has no valid rows; nothing to build features from "
        r"\(income\.csv: all 4 rows quarantined; problems: not a valid number \(4\)\)"
    )
    with pytest.raises(IngestError, match=expected):
        ingest(source, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_households_all_quarantined_aborts(tmp_path: Path) -> None:
    households = good_frames()["households"].assign(members="0")
    source = write_required_dataset(tmp_path / "source", households=households)
    expected = "table households has no valid rows; nothing to build features from"
    with pytest.raises(IngestError, match=expected):
        ingest(source, tmp_path / "store")


@pytest.mark.parametrize(
    ("text", "kind"), [("- name\n- period\n", "list"), ("just a name\n", "str"), ("2023\n", "int")]
)
def test_dataset_yaml_not_mapping_aborts(tmp_path: Path, text: str, kind: str) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "dataset.yaml").write_text(text)
    expected = rf"dataset\.yaml must be a mapping of keys to values, got {kind}$"
    with pytest.raises(IngestError, match=expected):
        ingest(source, tmp_path / "store")
    assert not (tmp_path / "store").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["source"]


def test_dataset_yaml_unknown_period_aborts(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "dataset.yaml").write_text("period: week\n")
    with pytest.raises(IngestError, match=r"dataset\.yaml: period must be 'month' or 'year', got 'week'"):
        ingest(source, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_dataset_yaml_name_must_be_text(tmp_path: Path) -> None:
    (tmp_path / "dataset.yaml").write_text("name: [a, b]\n")
    with pytest.raises(ValueError, match=r"dataset\.yaml: name must be text, got \['a', 'b'\]"):
        DatasetInfo.read(tmp_path)
    (tmp_path / "dataset.yaml").write_text("name: 2023\n")
    assert DatasetInfo.read(tmp_path).name == "2023"


def test_empty_optional_file_skips_table(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    (source / "assistance.csv").write_text("\n \n")
    report = ingest(source, tmp_path / "store")
    assert report.tables["assistance"].status == "failed"
    assert report.tables["assistance"].error == "the file is empty"


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source", assistance=good_frames()["assistance"].iloc[:0])
    report = ingest(source, tmp_path / "store")
    assert report.tables["assistance"].status == "ingested"
    assert report.tables["assistance"].rows_read == 0
    assert len(read_store(tmp_path / "store").tables["assistance"]) == 0


def test_non_utf8_file_names_line(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "income.csv").write_bytes("household_id,month,source,amount\nh1,2023-01,工资,1\n".encode("gbk"))
    expected = r"table income, file income\.csv: not valid UTF-8: byte 44 \(line 2\)"
    with pytest.raises(IngestError, match=expected):
        ingest(source, tmp_path / "store")


def test_unreadable_parquet_aborts(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "income.csv").unlink()
    (source / "income.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(IngestError, match=r"table income, file income\.parquet: could not read as Parquet"):
        ingest(source, tmp_path / "store")


def test_repeated_column_name_aborts(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "income.csv").write_text("household_id,month,source,amount,amount\nh1,2023-01,wage,1,2\n")
    with pytest.raises(IngestError, match=r"column names repeated in the header: 'amount'"):
        ingest(source, tmp_path / "store")


def test_csv_and_parquet_of_one_table_abort(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    good_frames()["events"].to_parquet(source / "events.parquet", index=False)
    with pytest.raises(IngestError, match=r"table events has both events\.csv and events\.parquet"):
        ingest(source, tmp_path / "store")


def test_missing_required_table_aborts(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    (source / "poverty_lines.csv").unlink()
    with pytest.raises(IngestError, match=r"lacks required tables \['poverty_lines'\]"):
        ingest(source, tmp_path / "store")


def test_missing_source_folder_aborts(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        ingest(tmp_path / "nowhere", tmp_path / "store")


def test_store_equal_to_source_aborts(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source")
    with pytest.raises(IngestError, match="is the source folder"):
        ingest(source, source)


def test_optional_table_absent(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source")
    (source / "events.csv").unlink()
    (source / "notes.txt").write_text("not a table")
    report = ingest(source, tmp_path / "store")
    assert report.tables["events"].status == "absent"
    assert report.ignored_files == ["notes.txt"]


def test_second_run_removes_outputs_of_first(tmp_path: Path) -> None:
    source = write_good_dataset(tmp_path / "source", income=with_cell("income", 0, "amount", "x"))
    ingest(source, tmp_path / "store")
    assert (tmp_path / "store" / "events.parquet").exists()
    (source / "events.csv").unlink()
    write_good_dataset(source)
    (source / "events.csv").unlink()

    ingest(source, tmp_path / "store")

    assert not (tmp_path / "store" / "events.parquet").exists()
    assert not (tmp_path / "store" / "quarantine" / "income.csv").exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Return the content of every file under ``folder`` by relative path."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_failed_run_leaves_previous_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first_source = write_good_dataset(tmp_path / "first", income=with_cell("income", 0, "amount", "x"))
    first = ingest(first_source, store)
    before = snapshot(store)
    assert "quarantine/income.csv" in before
    assert "ingest_report.json" in before

    source = write_good_dataset(tmp_path / "second", income=good_frames()["income"].assign(amount="x"))
    with pytest.raises(IngestError, match="table income has no valid rows"):
        ingest(source, store)

    assert snapshot(store) == before
    assert IngestReport.read(store / "ingest_report.json").tables == first.tables
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "second", "store"]


def test_write_error_leaves_previous_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    ingest(write_good_dataset(tmp_path / "source"), store)
    before = snapshot(store)

    written: list[str] = []
    real_write_table = warning.ingest.pipeline.write_table

    def fail_on_third_table(folder: Path, name: str, frame: pd.DataFrame) -> Path:
        written.append(name)
        if len(written) == 3:
            raise OSError("disk full")
        return real_write_table(folder, name, frame)

    monkeypatch.setattr(warning.ingest.pipeline, "write_table", fail_on_third_table)
    with pytest.raises(OSError, match="disk full"):
        ingest(write_good_dataset(tmp_path / "source"), store)

    assert len(written) == 3
    assert snapshot(store) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["source", "store"]


def test_other_store_entries_are_kept(tmp_path: Path) -> None:
    store = tmp_path / "store"
    source = write_good_dataset(tmp_path / "source")
    ingest(source, store)
    (store / "feeds").mkdir()
    (store / "feeds" / "history.json").write_text("{}")
    (store / "rescore.parquet").write_bytes(b"kept")

    ingest(source, store)

    assert (store / "feeds" / "history.json").read_text() == "{}"
    assert (store / "rescore.parquet").read_bytes() == b"kept"
    assert (store / "households.parquet").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["source", "store"]


# Report


def test_report_is_written_and_read_back(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source", income=with_cell("income", 0, "month", "2023-13"))
    report = ingest(source, tmp_path / "store")

    body = json.loads((tmp_path / "store" / "ingest_report.json").read_text())
    assert body["tables"]["income"]["rows_quarantined"] == 1
    assert body["problems"] == {"not a valid month (expected YYYY-MM)": 1}
    assert body["elapsed_seconds"] >= 0
    again = IngestReport.read(tmp_path / "store" / "ingest_report.json")
    assert again.tables == report.tables
    assert again.problems == report.problems


def test_report_summary_lists_tables_and_problems(tmp_path: Path) -> None:
    source = write_required_dataset(tmp_path / "source", income=with_cell("income", 0, "month", "2023-13"))
    summary = ingest(source, tmp_path / "store").summary()
    assert "income          income.csv                         4           3            1" in summary
    assert "1  income: not a valid month (expected YYYY-MM)" in summary


def test_table_report_invalid_counts() -> None:
    with pytest.raises(ValueError, match="5 rows read but 3 kept and 1 quarantined"):
        TableReport("income", "ingested", rows_read=5, rows_kept=3, rows_quarantined=1)


def test_counts_are_logged_per_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = write_required_dataset(tmp_path / "source", income=with_cell("income", 0, "month", "2023-13"))
    with caplog.at_level(logging.INFO, logger="warning.ingest"):
        ingest(source, tmp_path / "store")
    assert "Ingested income from" in caplog.text
    assert "4 rows read, 3 kept, 1 quarantined" in caplog.text
