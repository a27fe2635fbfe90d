"""Check request histories across fields and turn them into in-memory typed stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from warning.contract import TABLES, Column, DatasetInfo
from warning.store import PANDAS_DTYPES, Store, empty_table

# Household counts that cannot exceed the number of members.
# TODO: ingest also rejects children_in_school above members. The API still
# accepts it because the test data factory generates such households.
MEMBER_SUBSETS = ("labour_capable", "disabled", "elderly")
SPELL_TABLES = ("registrations", "employment")
PERSON_TABLES = tuple(name for name, table in TABLES.items() if "person_id" in table.column_names)
# Yuan by which reimbursed + out_of_pocket may exceed total_cost, for rounding;
# the same as ingest's default cost_tolerance.
COST_TOLERANCE = 0.01

ErrorDetail = dict[str, Any]


def _error(location: tuple[Any, ...], message: str, value: object) -> ErrorDetail:
    return {"type": "value_error", "loc": ("body", "households", *location), "msg": message, "input": value}


def _household_errors(index: int, household: dict[str, Any]) -> list[ErrorDetail]:
    errors = []
    members = household["members"]
    for name in MEMBER_SUBSETS:
        if household[name] > members:
            message = f"{name} ({household[name]}) exceeds members ({members})"
            errors.append(_error((index, "household", name), message, household[name]))
    township = household.get("township_code")
    if township is not None and not township.startswith(household["region_code"]):
        errors.append(
            _error(
                (index, "household", "township_code"),
                f"township_code {township!r} does not start with region_code {household['region_code']!r}",
                township,
            )
        )
    return errors


def _table_errors(index: int, name: str, rows: list[dict[str, Any]]) -> list[ErrorDetail]:
    errors = []
    key = [column for column in TABLES[name].key if column != "household_id"]
    seen: dict[tuple[Any, ...], int] = {}
    for position, row in enumerate(rows):
        values = tuple(row[column] for column in key)
        if values in seen:
            described = ", ".join(f"{column}={value}" for column, value in zip(key, values))
            errors.append(
                _error(
                    (index, name, position),
                    f"duplicate {name} row ({described}), already given at position {seen[values]}",
                    row,
                )
            )
        else:
            seen[values] = position
        if name == "medical_claims":
            errors.extend(_cost_errors(index, position, row))
        if name in SPELL_TABLES and row["end_month"] is not None and row["end_month"] < row["start_month"]:
            errors.append(
                _error(
                    (index, name, position, "end_month"),
                    f"end_month {row['end_month']} is before start_month {row['start_month']}",
                    row["end_month"],
                )
            )
    return errors


def _cost_errors(index: int, position: int, row: dict[str, Any]) -> list[ErrorDetail]:
    paid = row["reimbursed"] + row["out_of_pocket"]
    if paid <= row["total_cost"] + COST_TOLERANCE:
        return []
    message = (
        f"reimbursed ({row['reimbursed']}) + out_of_pocket ({row['out_of_pocket']}) = {paid} "
        f"exceeds total_cost ({row['total_cost']})"
    )
    return [_error((index, "medical_claims", position, "total_cost"), message, row["total_cost"])]


def _person_errors(histories: list[dict[str, Any]]) -> list[ErrorDetail]:
    """Reject a person_id given in two households: ingest keys persons by it, and scoring deduplicates on it."""
    errors = []
    owners: dict[str, int] = {}
    for index, history in enumerate(histories):
        household_id = history["household"]["household_id"]
        for name in PERSON_TABLES:
            for position, row in enumerate(history.get(name, [])):
                person_id = row["person_id"]
                owner = owners.setdefault(person_id, index)
                owner_id = histories[owner]["household"]["household_id"]
                # A repeated household_id is reported once, as a duplicate household.
                if owner == index or owner_id == household_id:
                    continue
                message = (
                    f"person_id {person_id!r} of household {household_id!r} is already given in household "
                    f"{owner_id!r} at position {owner}; person ids must be unique across the request"
                )
                errors.append(_error((index, name, position, "person_id"), message, person_id))
    return errors


def _line_errors(
    index: int, household: dict[str, Any], first_year: int, lines: pd.DataFrame
) -> list[ErrorDetail]:
    """Check that the model's poverty lines cover the household, as ``Panel`` requires."""
    region_code = household["region_code"]
    urban_rural = household["urban_rural"]
    prefixes = lines["region_prefix"].fillna("").astype(str).str.strip()
    match = (lines["urban_rural"].astype(str) == urban_rural) & prefixes.map(region_code.startswith)
    if not match.any():
        known = sorted(set(prefixes[lines["urban_rural"] == urban_rural]))
        return [
            _error(
                (index, "household", "region_code"),
                f"no poverty line for region_code {region_code!r} ({urban_rural}) in the model's lines; "
                f"lines exist for prefixes {known} ({urban_rural})",
                region_code,
            )
        ]
    earliest = int(lines.loc[match, "year"].min())
    if earliest > first_year:
        return [
            _error(
                (index, "income", 0, "month"),
                f"income starts in {first_year}, but the model's poverty lines for region_code "
                f"{region_code!r} ({urban_rural}) start in {earliest}",
                first_year,
            )
        ]
    return []


def cross_field_errors(histories: list[dict[str, Any]], lines: pd.DataFrame) -> list[ErrorDetail]:
    """Return the problems that single-field validation cannot see, in FastAPI's error format.

    Checks: member counts, township against region code, duplicate household
    ids, duplicate table keys, spells that end before they start, claim costs
    against their total, person ids shared by households, and poverty lines
    for every household's region, kind and years.
    """
    errors: list[ErrorDetail] = []
    first_index: dict[str, int] = {}
    for index, history in enumerate(histories):
        household = history["household"]
        household_id = household["household_id"]
        if household_id in first_index:
            errors.append(
                _error(
                    (index, "household", "household_id"),
                    f"household_id {household_id!r} appears again; "
                    f"it was first given at position {first_index[household_id]}",
                    household_id,
                )
            )
        first_index.setdefault(household_id, index)
        errors.extend(_household_errors(index, household))
        for name in TABLES:
            if name in history:
                errors.extend(_table_errors(index, name, history[name]))
        first_year = min(int(row["month"][:4]) for row in history["income"])
        errors.extend(_line_errors(index, household, first_year, lines))
    errors.extend(_person_errors(histories))
    return errors


def _typed_column(column: Column, values: list[Any]) -> Any:
    """Convert one column's request values to the store's dtype without going through object columns."""
    dtype = PANDAS_DTYPES[column.kind]
    if column.kind == "month":
        months = np.array(["NaT" if value is None else value for value in values], dtype="datetime64[M]")
        return months.astype(dtype)
    if dtype == "string":
        return pd.array(values, dtype=dtype)
    return np.array(values, dtype=dtype)


def _typed_frame(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = TABLES[name]
    if not rows:
        return empty_table(table)
    return pd.DataFrame(
        {column.name: _typed_column(column, [row[column.name] for row in rows]) for column in table.columns}
    )


def history_store(histories: list[dict[str, Any]], period: str) -> Store:
    """Build a typed in-memory store from request histories, as ingest would from files."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES if name != "poverty_lines"}
    for history in histories:
        household_id = history["household"]["household_id"]
        rows["households"].append(history["household"])
        for name in rows:
            if name == "households":
                continue
            rows[name].extend({**row, "household_id": household_id} for row in history.get(name, []))
    tables = {name: _typed_frame(name, table_rows) for name, table_rows in rows.items() if table_rows}
    info = DatasetInfo(name="request", period=period)  # type: ignore[arg-type]
    return Store(folder=Path("request"), info=info, tables=tables)
