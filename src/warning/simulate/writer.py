"""Stream contract tables to Parquet or CSV files in batches, with exactly the contract columns."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from warning.contract import Table

logger = logging.getLogger(__name__)

FileFormat = Literal["parquet", "csv"]

ARROW_TYPES = {
    "id": pa.string(),
    "text": pa.string(),
    "region": pa.string(),
    "category": pa.string(),
    "month": pa.string(),
    "year": pa.int64(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
}


def table_schema(table: Table) -> pa.Schema:
    return pa.schema(
        [pa.field(column.name, ARROW_TYPES[column.kind], nullable=True) for column in table.columns]
    )


def lookup(labels: pa.Array, codes: np.ndarray) -> pa.Array:
    """Return ``labels[codes]``, with a negative code giving null (used for ids, months and categories)."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0
    indices = pa.array(np.where(mask, 0, codes), type=pa.int64(), mask=mask if mask.any() else None)
    return labels.take(indices)


def _as_arrow(values: pa.Array | np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array):
        return values if values.type == arrow_type else values.cast(arrow_type)
    return pa.array(values, type=arrow_type)


class TableWriter:
    """Buffer record batches of one table and write them to ``<name>.<format>``.

    Parquet output gets one row group per flush, and CSV output is appended batch
    by batch with a single header row.
    """

    def __init__(
        self, folder: Path, name: str, schema: pa.Schema, file_format: FileFormat, flush_rows: int = 1_000_000
    ):
        self.path = Path(folder) / f"{name}.{file_format}"
        self.name = name
        self.schema = schema
        self.file_format = file_format
        self.flush_rows = flush_rows
        self.rows = 0
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None

    def append(self, columns: dict[str, pa.Array | np.ndarray]) -> None:
        """Queue rows given as one array of equal length per contract column."""
        missing = [field.name for field in self.schema if field.name not in columns]
        extra = [name for name in columns if name not in self.schema.names]
        if missing or extra:
            raise ValueError(
                f"table {self.name}: rows lack columns {missing} or have unknown columns {extra}"
            )
        arrays = [_as_arrow(columns[field.name], field.type) for field in self.schema]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if batch.num_rows == 0:
            return
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        if self._buffered >= self.flush_rows:
            self._flush()

    def _open(self) -> None:
        if self.file_format == "parquet":
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        else:
            self._writer = pa_csv.CSVWriter(self.path, self.schema)

    def _flush(self) -> None:
        if self._writer is None:
            self._open()
        if not self._buffer:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        assert self._writer is not None
        self._writer.write_table(table)
        self.rows += table.num_rows
        self._buffer = []
        self._buffered = 0

    def close(self) -> int:
        """Write what is buffered, close the file and return the number of rows written."""
        self._flush()
        assert self._writer is not None
        self._writer.close()
        logger.info("Wrote %d rows of %s to %s", self.rows, self.name, self.path)
        return self.rows
