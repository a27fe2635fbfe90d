"""Pandera schemas built from the data contract, and the reasons their failures report.

Validation runs in two passes over each chunk of rows:

- ``raw_schema`` checks the values as read: a non-nullable cell is present, a
  text cell parses as its column's kind (integer, finite number, month, year,
  boolean) and an id is short and free of control characters.
- ``table_schema`` checks the typed values against the contract: dtypes,
  nullability, categories, minimum and maximum values, months from 1900-01 to
  the current month, code formats, links to the households table and the rules
  that span several columns of a row (``row_rules``).

Digits are ASCII only: ``\d`` would also match fullwidth and Arabic-Indic
digits, which the number and date parsers reject.

``key_schema`` then checks that the table's key is unique over the rows that
passed both passes. Every check's ``error`` text is the reason written to the
quarantine file, so the reasons below are also the keys of the problem counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from warning.contract import EARLIEST_YEAR, Column, Table
from warning.store import PANDAS_DTYPES

MISSING_VALUE = "missing value"
NOT_ALLOWED_CATEGORY = "not an allowed category"
REGION_FORMAT = "not a 6-digit region code"
TOWNSHIP_FORMAT = "not a 9-digit township code"
REGION_PREFIX_FORMAT = "not a region code prefix of 1 to 6 digits"
UNKNOWN_HOUSEHOLD = "household_id not in households table"
DUPLICATE_KEY = "duplicate key"
MALFORMED_ROW = "wrong number of fields"
EMPTY_ROW = "empty row"
WRONG_DTYPE = "wrong dtype"
NOT_FINITE = "not a finite number"
INVALID_ID = "invalid id"
MONTH_TOO_EARLY = f"month before {EARLIEST_YEAR}-01"
MONTH_IN_FUTURE = "month is in the future"
MAX_ID_LENGTH = 128
# Control characters (C0, DEL and C1), such as NUL and line breaks, which no real id contains.
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f]"

PARSE_REASONS: dict[str, str] = {
    "int": "not a valid integer",
    "year": "not a valid year (expected YYYY)",
    "float": "not a valid number",
    "month": "not a valid month (expected YYYY-MM)",
    "bool": "not a valid boolean (expected true, false, 1 or 0)",
}

# Text patterns for columns whose format the contract states only in words.
# RE2 syntax, because pandas runs regular expressions on pyarrow strings with RE2.
TEXT_PATTERNS: dict[str, tuple[str, str]] = {
    "township_code": (r"[0-9]{9}", TOWNSHIP_FORMAT),
    "region_prefix": (r"[0-9]{1,6}", REGION_PREFIX_FORMAT),
}
REGION_PATTERN = r"[0-9]{6}"

# Up to 15 digits, so that every integer converts through float64 without loss.
INTEGER_TEXT = r"[+-]?[0-9]{1,15}(\.0*)?"
YEAR_TEXT = r"[0-9]{4}(\.0*)?"
NUMBER_TEXT = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
# Words that pyarrow and Python parse as infinity or NaN.
NON_FINITE_TEXT = r"(?i)[+-]?(inf|infinity|nan)"
MONTH_TEXT = r"[0-9]{4}-(0[1-9]|1[0-2])(-[0-9]{2})?"
BOOLEAN_VALUES: dict[str, bool] = {"true": True, "1": True, "false": False, "0": False}

# Validation dtypes differ from the store dtypes only where the store dtype has no
# missing value: a cell that failed to parse is missing until its row is dropped.
VALIDATION_DTYPES: dict[str, str] = {**PANDAS_DTYPES, "int": "Int64", "year": "Int64", "bool": "boolean"}


def below_minimum(min_value: float) -> str:
    """Return the reason for a value below a column's minimum."""
    return f"less than minimum {min_value:g}"


def above_maximum(max_value: float) -> str:
    """Return the reason for a value above a column's maximum."""
    return f"greater than maximum {max_value:g}"


def greater_than(column: str, other: str) -> str:
    """Return the reason for a count greater than the count that contains it."""
    return f"{column} greater than {other}"


def month_text_is_valid(values: pd.Series) -> pd.Series:
    """Return which month strings are ``YYYY-MM`` or a real ``YYYY-MM-DD`` date.

    Parses the distinct values only, because a month column has few of them.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    unique_values = pd.Series(uniques, dtype="string")
    valid = unique_values.str.fullmatch(MONTH_TEXT).fillna(False).to_numpy(dtype=bool)
    with_day = valid & (unique_values.str.len() == 10).fillna(False).to_numpy(dtype=bool)
    parsed = pd.to_datetime(unique_values[with_day], format="%Y-%m-%d", errors="coerce")
    valid[with_day] = parsed.notna().to_numpy()
    result = np.zeros(len(values), dtype=bool)
    present = codes >= 0
    result[present] = valid[codes[present]]
    return pd.Series(result, index=values.index)


def number_text_is_finite(values: pd.Series) -> pd.Series:
    """Return False for number text that parses as infinity or NaN, such as ``inf`` or ``1e999``.

    Other text is True, because the parse check reports it.
    """
    is_word = _present_and_true(values.str.fullmatch(NON_FINITE_TEXT))
    is_number = _present_and_true(values.str.fullmatch(NUMBER_TEXT))
    numbers = pc.cast(pyarrow.array(values.where(is_number), from_pandas=True), pyarrow.float64())
    overflows = is_number.to_numpy() & ~np.isfinite(numbers.to_numpy(zero_copy_only=False))
    return pd.Series(~is_word.to_numpy() & ~overflows, index=values.index)


def _text_checks(kind: str) -> list[pa.Check]:
    reason = PARSE_REASONS[kind]
    if kind == "month":
        return [pa.Check(month_text_is_valid, error=reason)]
    if kind == "bool":
        return [pa.Check(lambda values: values.str.lower().isin(list(BOOLEAN_VALUES)), error=reason)]
    if kind == "float":
        # "inf" and "nan" are reported once, as not finite, rather than also as not a number.
        return [
            pa.Check(
                lambda values: _present_and_true(values.str.fullmatch(f"{NUMBER_TEXT}|{NON_FINITE_TEXT}")),
                error=reason,
            ),
            pa.Check(number_text_is_finite, error=NOT_FINITE),
        ]
    pattern = {"int": INTEGER_TEXT, "year": YEAR_TEXT}[kind]
    return [pa.Check(lambda values: values.str.fullmatch(pattern), error=reason)]


def _id_is_valid(values: pd.Series) -> pd.Series:
    short = _present_and_true(values.str.len() <= MAX_ID_LENGTH)
    clean = ~_present_and_true(values.str.contains(CONTROL_CHARACTERS))
    return short & clean


def _native_check(kind: str) -> pa.Check | None:
    """Return the check for a column that the file already stores as numbers, if it needs one."""
    reason = PARSE_REASONS.get(kind, "")
    if kind == "int":
        # The same 15-digit limit as for text, so that every value converts to Int64.
        return pa.Check(lambda values: (values.abs() < 1e15) & (values % 1 == 0), error=reason)
    if kind == "year":
        return pa.Check(lambda values: (values % 1 == 0) & values.between(1000, 9999), error=reason)
    if kind == "float":
        return pa.Check(lambda values: np.isfinite(values.astype("float64")), error=NOT_FINITE)
    return None


def raw_schema(table: Table, dtypes: Mapping[str, object]) -> pa.DataFrameSchema:
    """Build the schema that checks a table's values as read, before conversion.

    ``dtypes`` are the dtypes of the frame to validate: a text column gets the
    parse check of its kind, and a numeric column (from a Parquet file) gets a
    range check where its kind needs one. An id column gets the id check
    (at most ``MAX_ID_LENGTH`` characters, no control characters).
    """
    columns: dict[str, pa.Column] = {}
    for column in table.columns:
        checks: list[pa.Check] = []
        dtype = dtypes[column.name]
        is_number = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        if pd.api.types.is_string_dtype(dtype) and column.kind in PARSE_REASONS:
            checks.extend(_text_checks(column.kind))
        elif pd.api.types.is_string_dtype(dtype) and column.kind == "id":
            checks.append(pa.Check(_id_is_valid, error=INVALID_ID))
        elif is_number:
            native = _native_check(column.kind)
            if native is not None:
                checks.append(native)
        columns[column.name] = pa.Column(checks=checks, nullable=column.nullable)
    return pa.DataFrameSchema(columns, name=f"{table.name} (as read)")


@dataclass(frozen=True)
class RowRule:
    """A rule over several columns of one row.

    ``violated`` returns True where a row breaks the rule. It returns False or
    missing where the row satisfies the rule or lacks a value that the rule
    needs, because the nullability and parse checks report missing values. The problem is reported on
    ``column``, with the values of ``related`` in its detail.
    """

    reason: str
    column: str
    related: tuple[str, ...]
    violated: Callable[[pd.DataFrame], pd.Series]

    def applies_to(self, table: Table) -> bool:
        names = set(table.column_names)
        return self.column in names and set(self.related) <= names

    def check(self) -> pa.Check:
        return pa.Check(lambda frame: ~self.violated(frame).fillna(False).astype(bool), error=self.reason)


def _count_exceeds(column: str, total: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda frame: frame[column] > frame[total]


def _end_before_start(frame: pd.DataFrame) -> pd.Series:
    return frame["end_month"] < frame["start_month"]


def _township_outside_region(frame: pd.DataFrame) -> pd.Series:
    township = frame["township_code"]
    region = frame["region_code"]
    # Only well-formed codes are compared, so a malformed code gets one problem, not two.
    township_valid = _present_and_true(township.str.fullmatch(TEXT_PATTERNS["township_code"][0]))
    region_valid = _present_and_true(region.str.fullmatch(REGION_PATTERN))
    return township_valid & region_valid & _present_and_true(township.str.slice(0, 6) != region)


def _present_and_true(flags: pd.Series) -> pd.Series:
    # pandas 3.1 cannot combine a masked boolean Series with a pyarrow one that has missing values.
    return flags.fillna(False).astype(bool)


def row_rules(cost_tolerance: float) -> list[RowRule]:
    """Return the rules over several columns; ``cost_tolerance`` is in the currency of the costs."""

    def costs_exceed_total(frame: pd.DataFrame) -> pd.Series:
        return frame["reimbursed"] + frame["out_of_pocket"] > frame["total_cost"] + cost_tolerance

    counted_members = ("labour_capable", "disabled", "elderly", "children_in_school")
    return [
        *(
            RowRule(greater_than(name, "members"), name, ("members",), _count_exceeds(name, "members"))
            for name in counted_members
        ),
        RowRule("end_month before start_month", "end_month", ("start_month",), _end_before_start),
        RowRule(
            "township_code does not start with region_code",
            "township_code",
            ("region_code",),
            _township_outside_region,
        ),
        RowRule(
            "reimbursed + out_of_pocket greater than total_cost",
            "total_cost",
            ("reimbursed", "out_of_pocket"),
            costs_exceed_total,
        ),
    ]


def _column_checks(
    column: Column, household_ids: pd.Index | None, latest_month: pd.Timestamp
) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if column.categories:
        checks.append(pa.Check.isin(column.categories, error=NOT_ALLOWED_CATEGORY))
    if column.min_value is not None:
        checks.append(pa.Check.ge(column.min_value, error=below_minimum(column.min_value)))
    if column.max_value is not None:
        checks.append(pa.Check.le(column.max_value, error=above_maximum(column.max_value)))
    if column.kind == "month":
        checks.append(pa.Check.ge(pd.Timestamp(EARLIEST_YEAR, 1, 1), error=MONTH_TOO_EARLY))
        checks.append(pa.Check.le(latest_month, error=MONTH_IN_FUTURE))
    if column.kind == "region":
        checks.append(pa.Check(lambda values: values.str.fullmatch(REGION_PATTERN), error=REGION_FORMAT))
    if column.name in TEXT_PATTERNS:
        pattern, reason = TEXT_PATTERNS[column.name]
        checks.append(pa.Check(lambda values: values.str.fullmatch(pattern), error=reason))
    if column.name == "household_id" and household_ids is not None:
        known = pyarrow.array(household_ids.astype("string"), type=pyarrow.large_string())
        checks.append(pa.Check(lambda values: _is_in(values, known), error=UNKNOWN_HOUSEHOLD))
    return checks


def _is_in(values: pd.Series, known: pyarrow.Array) -> pd.Series:
    """Return which values are in ``known``, hashing ``known`` in Arrow once per call.

    ``Series.isin`` on Arrow strings (pandas 3.1) turns every allowed value into
    a pyarrow scalar and back on each call, which costs more than the lookup itself.
    """
    strings = pyarrow.array(values.astype("string"), type=pyarrow.large_string())
    found = pc.is_in(strings, value_set=known)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)


def table_schema(
    table: Table,
    *,
    household_ids: pd.Index | None = None,
    cost_tolerance: float = 0.01,
    validation_dtypes: bool = False,
    as_of: date | None = None,
) -> pa.DataFrameSchema:
    """Build the schema of a typed contract table.

    Months must lie between 1900-01 and the month of ``as_of`` (default: today).
    With ``household_ids``, every ``household_id`` must be one of them. With
    ``validation_dtypes``, integer and boolean columns are expected as the
    pandas dtypes that can contain missing values (``Int64``, ``boolean``), as
    during ingest. Without it the dtypes are those of the store.
    """
    dtypes = VALIDATION_DTYPES if validation_dtypes else PANDAS_DTYPES
    today = as_of or date.today()
    latest_month = pd.Timestamp(today.year, today.month, 1)
    columns = {
        column.name: pa.Column(
            dtypes[column.kind],
            checks=_column_checks(column, household_ids, latest_month),
            nullable=column.nullable,
        )
        for column in table.columns
    }
    rules = [rule.check() for rule in row_rules(cost_tolerance) if rule.applies_to(table)]
    return pa.DataFrameSchema(columns, checks=rules, strict=True, name=table.name)


def key_schema(table: Table) -> pa.DataFrameSchema:
    """Build the schema that rejects every repeat of a key after its first row."""
    return pa.DataFrameSchema(
        unique=list(table.key),
        report_duplicates="exclude_first",
        name=f"{table.name} key",
    )
