"""Tests for the nlswork adapter on small hand-built panels, plus one run on the real file when present."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from warning.adapters import convert_nlswork, default_nlswork_path
from warning.adapters.nlswork import DEFAULT_MAPPING_PATH
from warning.contract import TABLES, DatasetInfo

NLSWORK_COLUMNS = (
    "idcode,year,birth_yr,age,race,msp,nev_mar,grade,collgrad,not_smsa,c_city,south,ind_code,occ_code,"
    "union,wks_ue,ttl_exp,tenure,hours,wks_work,ln_wage"
).split(",")

DEFAULTS = {
    "birth_yr": 50,
    "age": 20.0,
    "race": 1,
    "msp": 0.0,
    "nev_mar": 1.0,
    "grade": 12.0,
    "collgrad": 0,
    "not_smsa": 0.0,
    "c_city": 1.0,
    "south": 0.0,
    "ind_code": 4.0,
    "occ_code": 3.0,
    "union": None,
    "wks_ue": 0.0,
    "ttl_exp": 1.0,
    "tenure": 0.5,
}

# Four women in three one-year waves. None is an empty cell in the CSV.
PANEL = [
    {"idcode": 1, "year": 70, "not_smsa": 1.0, "ln_wage": 1.5, "hours": 40.0, "wks_work": 50.0, "wks_ue": 2.0},
    {"idcode": 1, "year": 71, "not_smsa": 1.0, "ln_wage": 1.0, "hours": 20.0, "wks_work": 26.0, "wks_ue": 0.0},
    {"idcode": 1, "year": 72, "not_smsa": 0.0, "ln_wage": None, "hours": 40.0, "wks_work": 52.0},
    {"idcode": 2, "year": 70, "not_smsa": 0.0, "south": 1.0, "ln_wage": 2.0, "hours": 40.0, "wks_work": 52.0},
    {"idcode": 2, "year": 71, "not_smsa": 1.0, "south": 1.0, "ln_wage": 2.0, "hours": 40.0, "wks_work": 52.0},
    {"idcode": 2, "year": 72, "not_smsa": None, "south": 1.0, "ln_wage": 2.2, "hours": 40.0, "wks_work": 52.0},
    {"idcode": 3, "year": 70, "ln_wage": 1.0, "hours": 10.0, "wks_work": 10.0, "wks_ue": 9.0, "ind_code": 11.0},
    {"idcode": 3, "year": 71, "ln_wage": 1.2, "hours": None, "wks_work": 30.0, "wks_ue": None},
    {"idcode": 3, "year": 72, "ln_wage": 1.1, "hours": 30.0, "wks_work": 0.0, "wks_ue": 0.0},
    {"idcode": 4, "year": 70, "ln_wage": 1.8, "hours": 35.0, "wks_work": 40.0},
    {"idcode": 4, "year": 71, "ln_wage": 1.7, "hours": 35.0, "wks_work": None, "wks_ue": None},
    {"idcode": 4, "year": 72, "ln_wage": 1.6, "hours": 40.0, "wks_work": 30.0},
]


def write_nlswork(path: Path, rows: list[dict[str, object]]) -> Path:
    frame = pd.DataFrame([{**DEFAULTS, **row} for row in rows]).reindex(columns=NLSWORK_COLUMNS)
    frame.to_csv(path, index=False)
    return path


def hashed(idcode: int) -> str:
    return hashlib.sha256(f"nlswork:{idcode}".encode()).hexdigest()[:16]


def earnings(ln_wage: float, hours: float, weeks: float) -> float:
    return round(math.exp(ln_wage) * hours * weeks, 2)


def read_table(folder: Path, name: str) -> pd.DataFrame:
    text_columns = {"household_id": str, "person_id": str, "region_code": str, "sector": str}
    return pd.read_csv(folder / f"{name}.csv", dtype=text_columns)


@pytest.fixture
def converted(tmp_path: Path) -> tuple[Path, object]:
    source = write_nlswork(tmp_path / "nlswork.csv", PANEL)
    out = tmp_path / "dataset"
    summary = convert_nlswork(source, out)
    return out, summary


def income_by_person_year(folder: Path) -> dict[tuple[str, str], float]:
    income = read_table(folder, "income")
    return {(row.household_id, row.month): row.amount for row in income.itertuples()}


def test_income_amount_is_wage_hours_weeks(converted: tuple[Path, object]) -> None:
    out, _ = converted
    income = income_by_person_year(out)

    assert income[(hashed(1), "1970-07")] == earnings(1.5, 40, 50)
    assert income[(hashed(1), "1971-07")] == earnings(1.0, 20, 26)
    assert income[(hashed(2), "1972-07")] == earnings(2.2, 40, 52)
    assert income[(hashed(4), "1972-07")] == earnings(1.6, 40, 30)
    assert income[(hashed(3), "1972-07")] == 0.0


def test_income_rows_are_wage_source(converted: tuple[Path, object]) -> None:
    out, _ = converted
    income = read_table(out, "income")

    assert list(income.columns) == TABLES["income"].column_names
    assert set(income["source"]) == {"wage"}
    assert set(income["month"].str[5:]) == {"07"}


def test_missing_pieces_give_no_income_row(converted: tuple[Path, object]) -> None:
    out, summary = converted
    income = income_by_person_year(out)

    assert (hashed(1), "1972-07") not in income
    assert (hashed(3), "1971-07") not in income
    assert (hashed(4), "1971-07") not in income
    assert len(income) == 9
    assert summary.skipped == {
        "waves without income row: hours missing": 1,
        "waves without income row: ln_wage missing": 1,
        "waves without income row: wks_work missing": 1,
    }


def test_ids_are_salted_hashes(converted: tuple[Path, object]) -> None:
    out, _ = converted
    households = read_table(out, "households")
    employment = read_table(out, "employment")

    assert sorted(households["household_id"]) == sorted(hashed(idcode) for idcode in (1, 2, 3, 4))
    assert (employment["person_id"] == employment["household_id"]).all()
    assert set(employment["person_id"]) <= set(households["household_id"])
    for idcode in ("1", "2", "3", "4"):
        assert idcode not in set(households["household_id"])


def test_households_take_modal_codes(converted: tuple[Path, object]) -> None:
    out, _ = converted
    households = read_table(out, "households").set_index("household_id")

    # Woman 1 is rural in two of three waves. Woman 2 ties 1:1 and keeps her earliest wave's code (urban).
    assert households.at[hashed(1), "urban_rural"] == "rural"
    assert households.at[hashed(2), "urban_rural"] == "urban"
    assert households.at[hashed(3), "urban_rural"] == "urban"
    assert households.at[hashed(2), "region_code"] == "990100"
    assert households.at[hashed(1), "region_code"] == "990200"
    assert households["township_code"].isna().all()
    assert (households["members"] == 1).all()
    assert (households["labour_capable"] == 1).all()
    assert (households[["disabled", "elderly", "children_in_school"]] == 0).all().all()


def test_poverty_lines_are_share_of_median(converted: tuple[Path, object]) -> None:
    out, _ = converted
    lines = read_table(out, "poverty_lines")
    amounts = {
        1970: [earnings(1.5, 40, 50), earnings(2.0, 40, 52), earnings(1.0, 10, 10), earnings(1.8, 35, 40)],
        1971: [earnings(1.0, 20, 26), earnings(2.0, 40, 52)],
        1972: [earnings(2.2, 40, 52), 0.0, earnings(1.6, 40, 30)],
    }

    assert len(lines) == 6
    assert lines["region_prefix"].isna().all()
    for year, values in amounts.items():
        expected = round(0.6 * float(np.median(values)), 2)
        rows = lines.loc[lines["year"] == year]
        assert sorted(rows["urban_rural"]) == ["rural", "urban"]
        assert rows["line"].tolist() == [expected, expected]


def test_registrations_cover_waves_below_line(converted: tuple[Path, object]) -> None:
    out, _ = converted
    registrations = read_table(out, "registrations")
    spells = set(registrations[["household_id", "status", "start_month", "end_month"]].itertuples(index=False))

    assert spells == {
        (hashed(3), "poor", "1970-01", "1970-12"),
        (hashed(1), "poor", "1971-01", "1971-12"),
        (hashed(3), "poor", "1972-01", "1972-12"),
    }


def test_employment_spells_from_weeks(converted: tuple[Path, object]) -> None:
    out, _ = converted
    employment = read_table(out, "employment")
    spells = {
        (row.person_id, row.kind, row.start_month): (row.end_month, None if pd.isna(row.sector) else str(row.sector))
        for row in employment.itertuples()
    }

    # 26 weeks / 4.33 = 6.0 months. 10 weeks = 2.3 months. 30 weeks = 6.9 months.
    assert spells[(hashed(1), "local_wage", "1971-01")] == ("1971-06", "4")
    assert spells[(hashed(3), "local_wage", "1970-01")] == ("1970-02", "11")
    assert spells[(hashed(3), "local_wage", "1971-01")] == ("1971-07", "4")
    # 9 weeks unemployed = 2.1 months, placed at the end of the year.
    assert spells[(hashed(3), "unemployed", "1970-11")] == ("1970-12", None)
    # 2 weeks round to 0 months but a spell lasts at least 1 month.
    assert spells[(hashed(1), "unemployed", "1970-12")] == ("1970-12", None)
    assert spells[(hashed(3), "out_of_labour_force", "1972-01")] == ("1972-12", None)
    assert not any(person == hashed(4) and start.startswith("1971") for person, _, start in spells)
    assert not employment.duplicated(["person_id", "start_month", "kind"]).any()


def test_dataset_yaml_declares_yearly_period(converted: tuple[Path, object]) -> None:
    out, _ = converted
    info = DatasetInfo.read(out)

    assert info.name == "nlswork"
    assert info.period == "year"
    assert info.period_months == 12
    assert info.currency == "USD (deflated)"
    assert info.extra["source_file"] == "nlswork.csv"


def test_optional_tables_are_not_written(converted: tuple[Path, object]) -> None:
    out, _ = converted

    for name in ("insurance", "medical_claims", "assistance", "events"):
        assert not (out / f"{name}.csv").exists()


def test_summary_counts(converted: tuple[Path, object]) -> None:
    _, summary = converted

    assert summary.persons == 4
    assert summary.person_waves == 12
    assert summary.waves == 3
    assert summary.years == (1970, 1971, 1972)
    assert summary.rows["households"] == 4
    assert summary.rows["income"] == 9
    assert summary.rows["poverty_lines"] == 6
    assert summary.rows["registrations"] == 3


TWO_YEAR_WAVE = [
    {"idcode": 1, "year": 80, "ln_wage": 2.0, "hours": 40.0, "wks_work": 104.0, "wks_ue": 0.0},
    {"idcode": 2, "year": 80, "ln_wage": 2.0, "hours": 40.0, "wks_work": 100.0, "wks_ue": 4.0},
    {"idcode": 3, "year": 80, "ln_wage": 2.0, "hours": 40.0, "wks_work": 52.0, "wks_ue": 52.0},
]


def test_two_year_wave_weeks_annualised(tmp_path: Path) -> None:
    source = write_nlswork(tmp_path / "nlswork.csv", TWO_YEAR_WAVE)
    out = tmp_path / "dataset"
    convert_nlswork(source, out)
    income = income_by_person_year(out)
    reference = float(np.quantile([104.0, 100.0, 52.0], 0.9))

    assert reference == pytest.approx(103.2)
    assert income[(hashed(1), "1980-07")] == earnings(2.0, 40, 52)
    assert income[(hashed(2), "1980-07")] == earnings(2.0, 40, 100 * 52 / reference)
    assert income[(hashed(3), "1980-07")] == earnings(2.0, 40, 52 * 52 / reference)


def test_annualise_none_keeps_raw_weeks(tmp_path: Path) -> None:
    mapping = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8"))
    mapping["weeks"]["annualise"] = "none"
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    source = write_nlswork(tmp_path / "nlswork.csv", TWO_YEAR_WAVE)
    out = tmp_path / "dataset"
    convert_nlswork(source, out, mapping_path)
    income = income_by_person_year(out)

    assert income[(hashed(1), "1980-07")] == earnings(2.0, 40, 104)
    assert income[(hashed(2), "1980-07")] == earnings(2.0, 40, 100)


def test_person_without_urban_rural_dropped(tmp_path: Path) -> None:
    rows = [
        {"idcode": 1, "year": 70, "ln_wage": 1.0, "hours": 40.0, "wks_work": 52.0},
        {"idcode": 2, "year": 70, "not_smsa": None, "ln_wage": 1.0, "hours": 40.0, "wks_work": 52.0},
        {"idcode": 2, "year": 71, "not_smsa": None, "ln_wage": 1.0, "hours": 40.0, "wks_work": 52.0},
    ]
    source = write_nlswork(tmp_path / "nlswork.csv", rows)
    out = tmp_path / "dataset"
    summary = convert_nlswork(source, out)
    income = read_table(out, "income")

    assert summary.persons == 1
    assert summary.skipped == {"persons dropped: not_smsa missing in every wave": 1}
    assert set(income["household_id"]) == {hashed(1)}
    assert summary.years == (1970,)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("hours", -5.0, "column 'hours', line 3: invalid value '-5.0'. Expected a number >= 0"),
        ("wks_work", "many", "column 'wks_work', line 3: invalid value 'many'. Expected a number"),
        ("not_smsa", 2.0, r"column 'not_smsa', line 3: invalid value '2.0'. Expected one of \[0, 1\]"),
        ("year", 1970, "column 'year', line 3: invalid value '1970'. Expected a two-digit year"),
        ("idcode", 1.5, "column 'idcode', line 3: invalid value '1.5'. Expected a whole number"),
    ],
)
def test_invalid_value_names_column_and_line(tmp_path: Path, column: str, value: object, message: str) -> None:
    rows = [dict(PANEL[0]), {**PANEL[1], column: value}]
    source = write_nlswork(tmp_path / "nlswork.csv", rows)

    with pytest.raises(ValueError, match=message):
        convert_nlswork(source, tmp_path / "dataset")


def test_duplicate_person_year_rejected(tmp_path: Path) -> None:
    source = write_nlswork(tmp_path / "nlswork.csv", [PANEL[0], PANEL[1], PANEL[0]])

    with pytest.raises(ValueError, match="column 'year', line 4: invalid value '70'. Expected one row per idcode"):
        convert_nlswork(source, tmp_path / "dataset")


def test_missing_column_rejected(tmp_path: Path) -> None:
    source = write_nlswork(tmp_path / "nlswork.csv", PANEL)
    frame = pd.read_csv(source).drop(columns=["ln_wage"])
    frame.to_csv(source, index=False)

    with pytest.raises(ValueError, match=r"lacks columns \['ln_wage'\]"):
        convert_nlswork(source, tmp_path / "dataset")


def test_out_dir_with_other_tables_rejected(tmp_path: Path) -> None:
    source = write_nlswork(tmp_path / "nlswork.csv", PANEL)
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "insurance.csv").write_text("person_id\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"already contains \['insurance.csv'\]"):
        convert_nlswork(source, out)
    assert not (out / "households.csv").exists()


def test_rerun_overwrites_own_tables(tmp_path: Path) -> None:
    source = write_nlswork(tmp_path / "nlswork.csv", PANEL)
    out = tmp_path / "dataset"
    first = convert_nlswork(source, out)
    second = convert_nlswork(source, out)

    assert second.rows == first.rows
    assert len(read_table(out, "income")) == 9


def test_invalid_mapping_rejected(tmp_path: Path) -> None:
    mapping = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text(encoding="utf-8"))
    mapping["registrations"]["status"] = "destitute"
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    source = write_nlswork(tmp_path / "nlswork.csv", PANEL)

    with pytest.raises(ValueError, match="registrations.status 'destitute'"):
        convert_nlswork(source, tmp_path / "dataset", mapping_path)


def test_default_path_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nested = tmp_path / "real" / "nlswork" / "nlswork.csv"
    nested.parent.mkdir(parents=True)
    nested.write_text("idcode\n", encoding="utf-8")
    monkeypatch.setenv("POVWARN_REAL_DATA_DIR", str(tmp_path / "real"))
    assert default_nlswork_path() == nested

    flat = tmp_path / "flat" / "nlswork.csv"
    flat.parent.mkdir()
    flat.write_text("idcode\n", encoding="utf-8")
    monkeypatch.setenv("POVWARN_REAL_DATA_DIR", str(tmp_path / "flat"))
    assert default_nlswork_path() == flat

    monkeypatch.setenv("POVWARN_REAL_DATA_DIR", str(tmp_path / "empty"))
    assert default_nlswork_path() is None


def test_real_file_converts_every_person(tmp_path: Path) -> None:
    source = default_nlswork_path()
    if source is None:
        pytest.skip("nlswork.csv is not available; set POVWARN_REAL_DATA_DIR to the folder that contains it")
    raw = pd.read_csv(source)
    complete = raw[["ln_wage", "hours", "wks_work"]].notna().all(axis=1)

    summary = convert_nlswork(source, tmp_path / "nlswork")

    assert summary.persons == 4711
    assert summary.person_waves == 28534
    assert summary.waves == 15
    assert summary.rows["households"] == 4711
    assert summary.rows["income"] == int(complete.sum())
    assert summary.rows["income"] == 27770
    assert summary.rows["poverty_lines"] == 30
    assert sum(summary.skipped.values()) == 28534 - 27770
    # Regression values from the shipped mapping (90th-percentile annualisation, 60 % of the median).
    assert summary.rows["employment"] == 33166
    assert summary.rows["registrations"] == 8558
