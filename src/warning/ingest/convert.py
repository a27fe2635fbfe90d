"""Conversion of checked raw values to the typed columns of the store.

The functions expect values that passed ``raw_schema``: a cell that failed a
parse check must already be missing. Numbers are parsed by pyarrow, because
pandas 3.1 (``astype``, ``to_numeric``) took about 20 times longer on 12 million values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from warning.contract import Column, Table
from warning.ingest.schemas import BOOLEAN_VALUES, PARSE_REASONS, VALIDATION_DTYPES
from warning.store import PANDAS_DTYPES


def _text_to_float(values: pd.Series) -> np.ndarray:
    parsed = pc.cast(pa.array(values, from_pandas=True), pa.float64())
    return parsed.to_numpy(zero_copy_only=False)


def _floor_to_month(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    months = values.to_numpy().astype("datetime64[M]").astype("datetime64[ms]")
    return pd.Series(months, index=values.index)


def _text_to_month(values: pd.Series) -> pd.Series:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # Both YYYY-MM and YYYY-MM-DD start with the year and month.
    unique_months = pd.to_datetime(pd.Series(uniques, dtype="string").str.slice(0, 7), format="%Y-%m")
    months = unique_months.to_numpy(dtype="datetime64[ms]")
    result = np.full(len(values), np.datetime64("NaT", "ms"))
    present = codes >= 0
    result[present] = months[codes[present]]
    return pd.Series(result, index=values.index)


def convert_column(values: pd.Series, column: Column) -> pd.Series:
    """Convert one checked column to its validation dtype (``VALIDATION_DTYPES``)."""
    kind = column.kind
    is_text = pd.api.types.is_string_dtype(values.dtype)
    if kind == "month":
        return _text_to_month(values) if is_text else _floor_to_month(values)
    if kind == "bool":
        if is_text:
            return values.str.lower().map(BOOLEAN_VALUES).astype("boolean")
        return values.astype("boolean")
    if kind in ("int", "year") and pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64")
    if kind in ("int", "year", "float"):
        numbers = _text_to_float(values) if is_text else values.to_numpy(dtype="float64", na_value=np.nan)
        return pd.Series(numbers, index=values.index).astype(VALIDATION_DTYPES[kind])
    if kind not in PANDAS_DTYPES or kind in PARSE_REASONS:
        raise ValueError(f"column {column.name!r} has kind {kind!r}, which ingest cannot convert")
    return values.astype("string")


def convert_table(raw: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Convert every column of a checked raw frame; the index is kept."""
    return pd.DataFrame({column.name: convert_column(raw[column.name], column) for column in table.columns})


def to_store_dtypes(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Cast validated columns to the store dtypes (``PANDAS_DTYPES``).

    Raises ``ValueError`` if an integer or boolean column still has a missing value.
    """
    return frame.astype({column.name: PANDAS_DTYPES[column.kind] for column in table.columns})
