"""Finding and reading the table files of a dataset folder.

Each table is read whole into an Arrow table that has the contract's columns in
contract order. CSV cells are read as text. Parquet columns keep their type when
it fits the column's kind and are otherwise cast to text, so that both formats
go through the same checks. Text is trimmed, and an empty cell is a missing value.

Row numbers: ``row`` is the 1-based number of a data row in its file, not
counting the header. For a CSV file it counts every record after the header,
including blank lines and rows with the wrong number of fields, so row ``n`` is
line ``n + 1`` unless a quoted value spans several lines. For a Parquet file,
row ``n`` is the file's ``n``-th row.
"""

from __future__ import annotations

import codecs
import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warning.contract import TABLES, Column, Table
from warning.ingest.problems import PROBLEM_COLUMNS, IngestError, TableFileError, empty_problems
from warning.ingest.schemas import EMPTY_ROW, MALFORMED_ROW

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".parquet")
DATASET_FILE = "dataset.yaml"


@dataclass
class RawTable:
    """One table file as read, before validation."""

    table: Table
    path: Path
    data: pa.Table
    rows: np.ndarray
    malformed: pd.DataFrame = field(default_factory=empty_problems)
    dropped_columns: list[str] = field(default_factory=list)
    null_filled_columns: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Data rows in the file: the rows read plus the rows the CSV parser rejected."""
        return self.data.num_rows + len(self.malformed)

    def chunk(self, start: int, stop: int) -> pd.DataFrame:
        """Return rows ``start:stop`` (positions) as a pandas frame indexed by row number."""
        part = self.data.slice(start, stop - start)
        frame = part.to_pandas(types_mapper=_pandas_dtype, date_as_object=False)
        frame.index = pd.Index(self.rows[start:stop], name="row")
        return frame

    def cell_text(self, rows: np.ndarray, column: str) -> pd.Series:
        """Return the cells of ``column`` in the given rows as text, with '' for a missing value."""
        positions = pa.array(np.searchsorted(self.rows, rows))
        values = self.data.column(column).take(positions)
        if pa.types.is_timestamp(values.type):
            values = pc.strftime(values, format="%Y-%m-%d")
        text = values.cast(pa.string()).to_pandas(types_mapper=_pandas_dtype)
        return text.fillna("").set_axis(rows)

    def rows_frame(self, rows: np.ndarray) -> pd.DataFrame:
        """Return the given rows as read, with their row number as the first column."""
        positions = pa.array(np.searchsorted(self.rows, rows))
        frame = self.data.take(positions).to_pandas(types_mapper=_pandas_dtype, date_as_object=False)
        frame.insert(0, "row", rows)
        return frame


def _pandas_dtype(arrow_type: pa.DataType) -> object:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


def locate_table_files(source_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Return the file of each contract table present, and the names of the other files.

    Raises ``IngestError`` if the folder does not exist or if a table has both a
    CSV and a Parquet file, because neither can be chosen safely.
    """
    if not source_dir.is_dir():
        raise IngestError(f"source folder {source_dir} does not exist or is not a folder")
    found: dict[str, Path] = {}
    conflicts: list[str] = []
    for name in TABLES:
        candidates = [source_dir / f"{name}{suffix}" for suffix in TABLE_SUFFIXES]
        present = [path for path in candidates if path.is_file()]
        if len(present) > 1:
            conflicts.append(f"table {name} has both {present[0].name} and {present[1].name}")
        elif present:
            found[name] = present[0]
    if conflicts:
        raise IngestError(f"{'; '.join(conflicts)} in {source_dir}; keep one file per table")
    known = {path.name for path in found.values()} | {DATASET_FILE}
    others = sorted(
        path.name
        for path in source_dir.iterdir()
        if path.is_file() and path.name not in known and not path.name.startswith(".")
    )
    return found, others


def read_table_file(path: Path, table: Table) -> RawTable:
    """Read one table file; raises ``TableFileError`` for a problem with the whole file."""
    if path.stat().st_size == 0:
        raise TableFileError(table.name, path, "the file is empty")
    if path.suffix == ".csv":
        data, rows, malformed = _read_csv(path, table)
    else:
        data = _read_parquet(path, table)
        rows = np.arange(1, data.num_rows + 1, dtype="int64")
        malformed = empty_problems()
    data, dropped, null_filled = _conform_columns(data, table, path)
    if dropped:
        logger.warning(
            "Dropped columns %s of %s: the contract table %s has no such columns", dropped, path, table.name
        )
    if null_filled:
        logger.warning("Filled columns %s of %s with missing values: the file lacks them", null_filled, path)
    return RawTable(table, path, data, rows, malformed, dropped, null_filled)


def _read_csv(path: Path, table: Table) -> tuple[pa.Table, np.ndarray, pd.DataFrame]:
    header = _read_csv_header(path, table)
    names = [name.strip() for name in header]
    _check_unique_names(names, table, path)
    skipped: list[int] = []
    malformed: list[dict[str, object]] = []

    def handle_invalid_row(row: pcsv.InvalidRow) -> str:
        if row.number is None:
            # pyarrow numbers rows only when it reads on one thread, as below.
            raise RuntimeError(f"pyarrow gave no row number for an invalid row of {path}")
        data_row = row.number - 1
        skipped.append(data_row)
        if row.text.strip():
            detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
            malformed.append(dict(zip(PROBLEM_COLUMNS, (data_row, "", row.text, MALFORMED_ROW, detail))))
        else:
            # A line of spaces; an empty line comes through as a row of empty cells instead.
            malformed.append(dict(zip(PROBLEM_COLUMNS, (data_row, "", "", EMPTY_ROW, ""))))
        return "skip"

    try:
        data = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=handle_invalid_row,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        if "UTF8" in str(error):
            raise TableFileError(table.name, path, _encoding_message(path)) from error
        raise TableFileError(table.name, path, f"could not read as CSV: {error}") from error
    data = data.rename_columns(names)
    total = data.num_rows + len(skipped)
    is_data = np.ones(total, dtype=bool)
    is_data[np.asarray(skipped, dtype="int64") - 1] = False
    rows = np.arange(1, total + 1, dtype="int64")[is_data]
    if not malformed:
        return data, rows, empty_problems()
    malformed_frame = pd.DataFrame(malformed, columns=list(PROBLEM_COLUMNS))
    return data, rows, malformed_frame.astype(empty_problems().dtypes.to_dict())


def _read_csv_header(path: Path, table: Table) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as error:
        raise TableFileError(table.name, path, _encoding_message(path)) from error
    except csv.Error as error:
        raise TableFileError(table.name, path, f"could not read the CSV header: {error}") from error
    if not header or not any(name.strip() for name in header):
        with path.open("rb") as handle:
            start = handle.read(1 << 20)
        if not start.removeprefix(codecs.BOM_UTF8).strip():
            raise TableFileError(table.name, path, "the file is empty")
        raise TableFileError(table.name, path, "the first line is blank; expected the header row")
    return header


def _encoding_message(path: Path) -> str:
    """Describe where a file stops being valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    newlines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                position = offset + error.start
                line = newlines + block[: error.start].count(b"\n") + 1
                return (
                    f"not valid UTF-8: byte {position} (line {line}) cannot be decoded; "
                    "save the file as UTF-8 (GBK or GB18030 exports must be converted)"
                )
            offset += len(block)
            newlines += block.count(b"\n")
    return "not valid UTF-8; save the file as UTF-8"


def _read_parquet(path: Path, table: Table) -> pa.Table:
    try:
        data = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise TableFileError(table.name, path, f"could not read as Parquet: {error}") from error
    names = [name.strip() for name in data.column_names]
    _check_unique_names(names, table, path)
    return data.rename_columns(names)


def _check_unique_names(names: list[str], table: Table, path: Path) -> None:
    seen: set[str] = set()
    repeated = sorted({name for name in names if name in seen or seen.add(name)})
    if repeated:
        names_text = ", ".join(map(repr, repeated))
        raise TableFileError(table.name, path, f"column names repeated in the header: {names_text}")


def _conform_columns(data: pa.Table, table: Table, path: Path) -> tuple[pa.Table, list[str], list[str]]:
    """Return the table with exactly the contract columns, and the columns dropped and filled."""
    names = data.column_names
    dropped = [name for name in names if name not in table.column_names]
    absent = [column for column in table.columns if column.name not in names]
    required = [column.name for column in absent if not column.nullable]
    if required:
        label = "column" if len(required) == 1 else "columns"
        required_text = ", ".join(map(repr, required))
        found_text = ", ".join(map(repr, names))
        message = f"missing required {label} {required_text} (the file has {found_text})"
        raise TableFileError(table.name, path, message)
    arrays = [
        _normalise_column(data.column(column.name), column, table, path)
        if column.name in names
        else pa.chunked_array([pa.nulls(data.num_rows, pa.string())])
        for column in table.columns
    ]
    return pa.table(arrays, names=table.column_names), dropped, [column.name for column in absent]


def _normalise_column(values: pa.ChunkedArray, column: Column, table: Table, path: Path) -> pa.ChunkedArray:
    """Keep a column's Arrow type if it fits the column's kind, else cast it to text."""
    kind = column.kind
    arrow_type = values.type
    if pa.types.is_dictionary(arrow_type):
        values = values.cast(arrow_type.value_type)
        arrow_type = values.type
    if pa.types.is_floating(arrow_type):
        # A NaN from a Parquet file is a missing value, as pandas writes it.
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, arrow_type), values)
    numeric = pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
    if kind in ("int", "year") and numeric:
        return values
    if kind == "float" and (numeric or pa.types.is_decimal(arrow_type)):
        return values.cast(pa.float64())
    if kind == "month" and pa.types.is_timestamp(arrow_type):
        return values
    if kind == "month" and pa.types.is_date(arrow_type):
        return values.cast(pa.timestamp("ms"))
    if kind == "bool" and pa.types.is_boolean(arrow_type):
        return values
    try:
        text = values.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as error:
        raise TableFileError(
            table.name, path, f"column {column.name!r} has type {arrow_type}, which cannot be read as {kind}"
        ) from error
    trimmed = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
