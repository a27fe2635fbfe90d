"""The clean, typed household store: one Parquet file per contract table.

Ingest writes it; every later stage reads it. Typed means: ids and text as
strings, months as ``datetime64[ms]`` on the first day of the month, years and
counts as ``int64``, amounts as ``float64`` and flags as ``bool``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from warning.contract import TABLES, DatasetInfo, Table

logger = logging.getLogger(__name__)

# Households whose stored history changed after they were scored (written by feed ingest, cleared by scoring).
RESCORE_FILE = "rescore.parquet"

PANDAS_DTYPES = {
    "id": "string",
    "text": "string",
    "region": "string",
    "category": "string",
    "month": "datetime64[ms]",
    "year": "int64",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
}


def empty_table(table: Table) -> pd.DataFrame:
    """Return a frame with the table's columns and typed dtypes and no rows."""
    return pd.DataFrame({column.name: pd.Series(dtype=PANDAS_DTYPES[column.kind]) for column in table.columns})


@dataclass
class Store:
    """The typed tables of one dataset, with what its ``dataset.yaml`` states."""

    folder: Path
    info: DatasetInfo
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def subset(self, household_ids: pd.Series) -> Store:
        """Return a store with only these households' rows; tables without households stay whole."""
        kept_ids = pd.Index(household_ids.astype(str).unique())
        tables = {
            name: (frame[frame["household_id"].astype(str).isin(kept_ids)] if "household_id" in frame.columns else frame)
            for name, frame in self.tables.items()
        }
        return Store(folder=self.folder, info=self.info, tables=tables)

    def table(self, name: str) -> pd.DataFrame:
        """Return a table, or an empty typed frame when the dataset has none."""
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; the contract has {sorted(TABLES)}")
        if name in self.tables:
            return self.tables[name]
        return empty_table(TABLES[name])


def write_table(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    logger.info("Wrote %d rows of %s to %s", len(frame), name, path)
    return path


def read_store(folder: Path) -> Store:
    """Read every table present in a store folder written by ingest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"store folder {folder} does not exist; run `povwarn ingest` first")
    store = Store(folder=folder, info=DatasetInfo.read(folder))
    for name in TABLES:
        path = folder / f"{name}.parquet"
        if path.exists():
            store.tables[name] = pd.read_parquet(path)
    missing = [name for name, table in TABLES.items() if table.required and name not in store.tables]
    if missing:
        raise FileNotFoundError(f"store {folder} lacks required tables {missing}")
    logger.info("Read store %s: %s", folder, {name: len(frame) for name, frame in store.tables.items()})
    return store
