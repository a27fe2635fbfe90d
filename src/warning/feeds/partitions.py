"""Partitions of the feed store, so that a large delivery is merged and built one part at a time.

A feed whose rows belong to households keeps its current rows and history
as one Parquet file per partition, ``<name>.parquet/part-NNNN.parquet``
(``pandas.read_parquet`` reads such a folder whole). A row's partition is
the CRC-32 of the person id in its key modulo the number of partitions, so
every row of a key stays in one partition even when the person moves to
another household, and merging a delivery needs one partition in memory.
To build the contract tables, the rows are regrouped by the partition of
their household id, so that every row of a household, in every feed, is
built together; lineage and conflicts are kept per household partition.

The number of partitions is fixed when the store's first delivery arrives
(``feeds/layout.json``): ``POVWARN_FEED_PARTITIONS`` if set, else one
partition per ``POVWARN_FEED_PARTITION_MEGABYTES`` of delivered files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

LAYOUT_FILE = "layout.json"
MAX_PARTITIONS = 1024


@dataclass(frozen=True)
class Layout:
    """How a store splits its feed rows, and the fingerprint of the identity hash key it was built with.

    ``key_fingerprint`` is None in a layout written before fingerprints were
    kept; the next ingest adds it.
    """

    partitions: int
    key_fingerprint: str | None = None

    @classmethod
    def load(cls, feeds_dir: Path) -> Layout | None:
        path = feeds_dir / LAYOUT_FILE
        if not path.is_file():
            return None
        body = json.loads(path.read_text(encoding="utf-8"))
        return cls(partitions=int(body["partitions"]), key_fingerprint=body.get("key_fingerprint"))

    def write(self, feeds_dir: Path) -> None:
        """Write ``layout.json`` through a temporary file, so that a stopped run never leaves half of it."""
        body = {"partitions": self.partitions, "key_fingerprint": self.key_fingerprint}
        pending = feeds_dir / f"{LAYOUT_FILE}.tmp"
        pending.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(pending, feeds_dir / LAYOUT_FILE)


def choose_partitions(delivered_bytes: int, partitions: int | None, partition_megabytes: float) -> int:
    """Return the partitions of a new store: ``partitions`` if given, else one per ``partition_megabytes`` delivered."""
    if partitions is not None:
        return max(1, min(MAX_PARTITIONS, partitions))
    wanted = math.ceil(delivered_bytes / (partition_megabytes * 2**20))
    return max(1, min(MAX_PARTITIONS, wanted))


def partition_of(ids: pd.Series, partitions: int) -> np.ndarray:
    """Return the partition of each person or household id; a missing id goes to partition 0."""
    if partitions == 1:
        return np.zeros(len(ids), dtype=np.int64)
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    # Hashed once per distinct id. CRC-32 is stable across runs and machines, unlike hash().
    parts = np.array([zlib.crc32(str(value).encode("utf-8")) % partitions for value in uniques] + [0])
    return parts[codes].astype(np.int64)


def part_path(folder: Path, name: str, part: int) -> Path:
    return folder / f"{name}.parquet" / f"part-{part:04d}.parquet"


def read_part(folder: Path, name: str, part: int) -> pd.DataFrame | None:
    path = part_path(folder, name, part)
    return pd.read_parquet(path) if path.is_file() else None


def write_part(folder: Path, name: str, part: int, frame: pd.DataFrame) -> None:
    path = part_path(folder, name, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def column_maximum(folder: Path, name: str, column: str) -> object | None:
    """Return the largest value of ``column`` over every partition of ``name``, reading only that column."""
    parts = sorted((folder / f"{name}.parquet").glob("part-*.parquet"))
    values = []
    for path in parts:
        table = pq.read_table(path, columns=[column])
        if table.num_rows:
            value = pc.max(table[column]).as_py()
            if value is not None:
                values.append(value)
    return max(values) if values else None


def concatenate_parquet(paths: list[Path], target: Path) -> int:
    """Write the rows of several Parquet files with one schema into ``target``, one file in memory at a time."""
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    rows = 0
    try:
        for path in paths:
            table = pq.read_table(path)
            if schema is None:
                schema = table.schema
                writer = pq.ParquetWriter(target, schema)
            else:
                table = table.cast(schema)
            assert writer is not None
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
