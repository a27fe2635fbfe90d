"""Errors that stop ingest, and the shape of the per-row problems that quarantine rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# One problem of one row. ``row`` is the 1-based data row of the file (see
# ``warning.ingest.read``), ``value`` the cell as read, ``detail`` the context a
# reader needs to fix it (other cells, allowed values, the first row of a key).
PROBLEM_COLUMNS = ("row", "column", "value", "reason", "detail")
QUARANTINE_COLUMNS = ("table", "file", *PROBLEM_COLUMNS)


class IngestError(Exception):
    """A problem with the dataset folder that stops the ingest run."""


class TableFileError(IngestError):
    """A problem with a whole table file: unreadable, empty, wrong encoding or missing a column."""

    def __init__(self, table: str, path: Path, message: str) -> None:
        self.table = table
        self.path = Path(path)
        self.message = message
        super().__init__(f"table {table}, file {self.path.name}: {message}")


_EMPTY_PROBLEMS = pd.DataFrame(
    {
        "row": pd.Series(dtype="int64"),
        **{name: pd.Series(dtype="string") for name in PROBLEM_COLUMNS[1:]},
    }
)


def empty_problems() -> pd.DataFrame:
    """Return a problem frame with no rows."""
    return _EMPTY_PROBLEMS.copy()
