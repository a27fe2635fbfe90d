"""The households a delivery changed in months already stored, listed in ``rescore.parquet`` for re-scoring.

A late correction changes a household's history, and with it the features
and score of every month after the change. The list gives each household
the earliest month changed (missing: every month) and the last delivery
that touched it; scoring removes the households it has scored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from warning.contract import TABLES
from warning.feeds.install import stage_frame
from warning.feeds.spec import ExportSpec
from warning.feeds.state import MergeResult, key_columns, read_frame
from warning.store import RESCORE_FILE

logger = logging.getLogger(__name__)


def no_rescore_rows() -> pd.DataFrame:
    """Return an empty frame of re-scoring rows (household id and month)."""
    return pd.DataFrame({"household_id": pd.Series(dtype="string"), "month": pd.Series(dtype="datetime64[ms]")})


def row_months(table: str, frame: pd.DataFrame) -> pd.Series:
    """Return the month each contract row dates from; missing for the households table (every month)."""
    columns = TABLES[table].column_names
    if "month" in columns:
        return frame["month"].astype("datetime64[ms]")
    if "start_month" in columns:
        return frame["start_month"].astype("datetime64[ms]")
    if "year" in columns:
        return pd.to_datetime(frame["year"].astype("Int64").astype("string") + "-01", format="%Y-%m").astype(
            "datetime64[ms]"
        )
    return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ms]")


def rescore_rows(spec: ExportSpec, merge: MergeResult, latest_before: pd.Timestamp | None) -> pd.DataFrame:
    """Return (household_id, month) of rows a delivery corrected, or added to months already stored.

    A corrected row counts with both its old and its new household and month.
    Rows of months after the latest month stored before the delivery are new
    data, not corrections, and are left to regular scoring.
    """
    empty = no_rescore_rows()
    if spec.role == "members" or not len(merge.kept):
        return empty
    table = str(spec.target)
    if "household_id" not in TABLES[table].column_names:
        return empty
    keys = key_columns(len(spec.key))
    corrected = merge.corrected_before
    kept = merge.kept
    touched = pd.Series(False, index=kept.index)
    if len(corrected):
        touched |= kept.set_index(keys).index.isin(corrected.set_index(keys).index)
    if latest_before is not None:
        touched |= (row_months(table, kept) <= latest_before).fillna(False).to_numpy(dtype=bool)
    parts = [frame for frame in (corrected, kept[touched.to_numpy(dtype=bool)]) if len(frame)]
    if not parts:
        return empty
    return pd.concat(
        [
            pd.DataFrame({"household_id": frame["household_id"], "month": row_months(table, frame)})
            for frame in parts
        ],
        ignore_index=True,
    )


def stage_rescore(store_dir: Path, work: Path, rows: pd.DataFrame, delivery: int) -> int:
    """Stage ``rescore.parquet`` with these households added, each with the earliest month changed.

    A missing month means every month. The file accumulates over deliveries
    until scoring removes the households it scored (``warning.score``).
    Returns the households this delivery marked.
    """
    path = store_dir / RESCORE_FILE
    previous = read_frame(path)
    if not len(rows) and previous is None:
        return 0
    rows = rows.assign(delivery=delivery)
    if previous is not None:
        earlier = previous.rename(columns={"earliest_month": "month", "last_delivery": "delivery"})
        rows = pd.concat([earlier, rows], ignore_index=True)
    # A missing month (a change to the household itself) sorts first, so it wins the minimum.
    sentinel = np.datetime64("1000-01-01", "ms")
    months = rows["month"].astype("datetime64[ms]").fillna(pd.Timestamp(sentinel))
    grouped = pd.DataFrame(
        {"household_id": rows["household_id"].astype("string"), "month": months, "delivery": rows["delivery"]}
    )
    table = (
        grouped.groupby("household_id", sort=True)
        .agg(earliest_month=("month", "min"), last_delivery=("delivery", "max"))
        .reset_index()
    )
    table["earliest_month"] = table["earliest_month"].mask(table["earliest_month"] == pd.Timestamp(sentinel))
    table = table.astype(
        {"household_id": "string", "earliest_month": "datetime64[ms]", "last_delivery": "int64"}
    )
    added = int(rows.loc[rows["delivery"] == delivery, "household_id"].nunique())
    if previous is not None and len(previous) == len(table) and previous.reset_index(drop=True).equals(table):
        return added
    stage_frame(work, RESCORE_FILE, table)
    logger.info("Marked %d households for re-scoring, %d listed in %s", added, len(table), path)
    return added
