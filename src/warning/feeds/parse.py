"""Checking and converting the text cells of an export to typed values, one source column at a time.

Each function returns the converted values and a problem per bad cell. A
problem names the source column, the cell as read (masked for identity
numbers) and the reason. Reasons are the constants below, so that tests and
reports can count them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from warning.feeds.identity import identity_problems, mask_identities, mask_identities_in_cells
from warning.feeds.regions import RegionCodes
from warning.feeds.spec import SourceColumn

MISSING_VALUE = "missing value"
MISSING_COLUMN = "missing column"
NOT_A_NUMBER = "not a valid number"
NOT_AN_INTEGER = "not a valid integer"
NOT_A_YEAR = "not a valid year (expected YYYY)"
UNKNOWN_CODE = "unknown code"
REGION_FORMAT = "not a 6-digit region code"
UNKNOWN_REGION = "unknown region code"
TOWNSHIP_FORMAT = "not a 9-digit township code"
TOWNSHIP_OUTSIDE_REGION = "township code does not start with the region code"
AFTER_DELIVERY = "after the delivery date"

PROBLEM_COLUMNS = ("row", "column", "value", "reason", "detail")
# Digits are ASCII only: ``\d`` would also match fullwidth and Arabic-Indic digits, which later
# conversions reject.
INTEGER_TEXT = r"[+-]?[0-9]{1,15}"
NUMBER_TEXT = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
# Money is kept to the fen, so that unit conversions (fen, 10,000 yuan) give exact yuan values.
MONEY_DECIMALS = 2


def invalid_date(kind: str, date_format: str) -> str:
    """Return the reason for a month or date cell that does not parse with its format."""
    return f"not a valid {kind} (expected {date_format})"


@dataclass
class Parsed:
    """Typed values of one source column and the problems of its cells."""

    values: pd.Series
    problems: pd.DataFrame


def problem_frame(
    rows: pd.Index, column: str, values: pd.Series | str, reason: str, detail: pd.Series | str = ""
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": np.asarray(rows, dtype="int64"),
            "column": column,
            "value": values if isinstance(values, str) else values.to_numpy(dtype=object),
            "reason": reason,
            "detail": detail if isinstance(detail, str) else detail.to_numpy(dtype=object),
        },
        columns=list(PROBLEM_COLUMNS),
    )


_NO_PROBLEMS = pd.DataFrame(
    {
        "row": pd.Series(dtype="int64"),
        **{name: pd.Series(dtype=object) for name in PROBLEM_COLUMNS[1:]},
    }
)


def no_problems() -> pd.DataFrame:
    return _NO_PROBLEMS.copy()


def _shown(column: SourceColumn, cells: pd.Series) -> pd.Series:
    """Return cells as they may appear in a quarantine file: identity numbers masked."""
    return mask_identities(cells) if column.type == "identity" else mask_identities_in_cells(cells)


def _problems_where(
    column: SourceColumn, cells: pd.Series, bad: pd.Series, reason: str, detail: pd.Series | str = ""
) -> pd.DataFrame:
    bad = bad.fillna(False).astype(bool)
    if not bad.to_numpy().any():
        return no_problems()
    chosen = detail[bad] if isinstance(detail, pd.Series) else detail
    return problem_frame(cells.index[bad], column.name, _shown(column, cells[bad]), reason, chosen)


def date_pattern(date_format: str) -> str:
    """Return a regular expression of the cells a ``%Y``/``%m``/``%d`` format accepts, digits in ASCII.

    strptime reads ``%m`` and ``%d`` as one or two digits, so with ``%Y%m%d``
    the cell ``202111`` would be 2021-01-01. A month or day next to another
    field must therefore have two digits; one between separators, as in
    ``%Y年%m月``, may have one.
    """
    tokens = re.findall(r"%[A-Za-z]|[^%]+", date_format)
    parts = []
    for position, token in enumerate(tokens):
        if token == "%Y":
            parts.append("[0-9]{4}")
        elif token in ("%m", "%d"):
            neighbours = tokens[max(position - 1, 0) : position] + tokens[position + 1 : position + 2]
            touching = any(other.startswith("%") for other in neighbours)
            parts.append("[0-9]{2}" if touching else "[0-9]{1,2}")
        elif token.startswith("%"):
            raise ValueError(f"date format {date_format!r}: only %Y, %m and %d are supported, got {token}")
        else:
            parts.append(re.escape(token))
    return "".join(parts)


def _parse_dates(cells: pd.Series, date_format: str) -> pd.Series:
    """Parse distinct cells with a strptime format; a cell that does not match exactly is NaT."""
    codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    distinct = pd.Series(uniques, dtype=object)
    shaped = distinct.astype(str).str.fullmatch(date_pattern(date_format)).to_numpy(dtype=bool)
    parsed = pd.to_datetime(distinct.where(shaped), format=date_format, errors="coerce", exact=True)
    values = np.append(parsed.to_numpy(dtype="datetime64[ms]"), np.datetime64("NaT", "ms"))
    return pd.Series(values[codes], index=cells.index)


def _to_float(cells: pd.Series) -> pd.Series:
    numbers = pc.cast(pa.array(cells, from_pandas=True, type=pa.string()), pa.float64())
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=cells.index, dtype="float64")


def parse_column(
    column: SourceColumn,
    cells: pd.Series,
    *,
    as_of: pd.Timestamp,
    regions: RegionCodes,
    region_cells: pd.Series | None = None,
) -> Parsed:
    """Check one source column and convert it to its typed values.

    ``as_of`` is the delivery date: a month, date or year after it is
    rejected, as is a birth date after it inside an identity number.
    ``region_cells`` are the cells of the region column that a township
    column must start with.
    """
    present = cells.notna()
    parts = []
    if not column.nullable:
        parts.append(_problems_where(column, cells, ~present, MISSING_VALUE))
    kind = column.type
    if kind == "identity":
        reasons = identity_problems(cells, latest_birth=as_of)
        for reason in reasons.dropna().unique():
            parts.append(_problems_where(column, cells, reasons == reason, str(reason)))
        values = cells.str.upper().where(reasons.isna())
    elif kind == "region":
        well_formed = cells.str.fullmatch(r"[0-9]{6}").fillna(False).astype(bool)
        parts.append(_problems_where(column, cells, present & ~well_formed, REGION_FORMAT))
        resolution = regions.resolve(cells.where(well_formed))
        detail = "not in the region code table; add it with its validity dates or its successor"
        parts.append(_problems_where(column, cells, resolution.unknown, UNKNOWN_REGION, detail))
        values = resolution.current
    elif kind == "township":
        values, township_problems = _parse_township(column, cells, regions, region_cells)
        parts.extend(township_problems)
    elif kind in ("month", "date"):
        dates = _parse_dates(cells, str(column.format))
        parts.append(
            _problems_where(column, cells, present & dates.isna(), invalid_date(kind, str(column.format)))
        )
        limit = as_of.to_period("M").to_timestamp() if kind == "month" else as_of.normalize()
        late = dates > limit
        parts.append(
            _problems_where(
                column, cells, late, f"{kind} {AFTER_DELIVERY}", f"delivery date {as_of:%Y-%m-%d}"
            )
        )
        months = dates.where(~late).to_numpy(dtype="datetime64[M]").astype("datetime64[ms]")
        values = pd.Series(months, index=cells.index)
    elif kind == "year":
        valid = cells.str.fullmatch(r"[0-9]{4}").fillna(False).astype(bool)
        parts.append(_problems_where(column, cells, present & ~valid, NOT_A_YEAR))
        years = _to_float(cells.where(valid)).astype("Int64")
        late = years > as_of.year
        parts.append(
            _problems_where(column, cells, late, f"year {AFTER_DELIVERY}", f"delivery date {as_of:%Y-%m-%d}")
        )
        values = years.where(~late.fillna(False))
    elif kind == "number":
        valid = cells.str.fullmatch(NUMBER_TEXT).fillna(False).astype(bool)
        parts.append(_problems_where(column, cells, present & ~valid, NOT_A_NUMBER))
        values = (_to_float(cells.where(valid)) * column.scale).round(MONEY_DECIMALS)
    elif kind == "integer":
        valid = cells.str.fullmatch(INTEGER_TEXT).fillna(False).astype(bool)
        parts.append(_problems_where(column, cells, present & ~valid, NOT_AN_INTEGER))
        values = _to_float(cells.where(valid)).astype("Int64")
    elif kind in ("code", "flag"):
        known = cells.isin(list(column.codes)).fillna(False).astype(bool)
        allowed = "allowed: " + ", ".join(f"{code} ({value})" for code, value in column.codes.items())
        parts.append(_problems_where(column, cells, present & ~known, UNKNOWN_CODE, allowed))
        mapped = cells.map(column.codes)
        values = mapped.astype("boolean") if kind == "flag" else mapped.astype("string")
    else:
        # Free text is stored, so an identity number typed into it is masked like everywhere else.
        values = mask_identities_in_cells(cells).where(present).astype("string")
    problems = pd.concat([part for part in parts if len(part)] or [no_problems()], ignore_index=True)
    return Parsed(values=values, problems=problems)


def _parse_township(
    column: SourceColumn, cells: pd.Series, regions: RegionCodes, region_cells: pd.Series | None
) -> tuple[pd.Series, list[pd.DataFrame]]:
    """Check 9-digit township codes and move them under the current code of their county."""
    present = cells.notna()
    well_formed = cells.str.fullmatch(r"[0-9]{9}").fillna(False).astype(bool)
    parts = [_problems_where(column, cells, present & ~well_formed, TOWNSHIP_FORMAT)]
    values = cells.where(well_formed).astype("string")
    if region_cells is None:
        return values, parts
    outside = well_formed & region_cells.notna() & (cells.str.slice(0, 6) != region_cells)
    detail = "region code " + mask_identities_in_cells(region_cells)
    parts.append(_problems_where(column, cells, outside.fillna(False), TOWNSHIP_OUTSIDE_REGION, detail))
    current = regions.resolve(region_cells).current
    moved = current.fillna(values.str.slice(0, 6)) + values.str.slice(6, 9)
    return moved.where(well_formed & ~outside.fillna(False)).astype("string"), parts
