"""Build the contract tables from the feeds' current rows and write them into the store, partition by partition.

Each contract table is built from every feed that maps onto it: two feeds
with the same contract row are resolved by the latest delivery, then the
lower ``precedence``. A partition's tables go through
``warning.ingest.ingest`` on their own (every household with all its rows,
and the shared poverty lines), and the partitions' stores are then joined
into the one store, table by table, without holding a whole table in memory.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from warning.contract import TABLES, DatasetInfo
from warning.feeds.partitions import concatenate_parquet
from warning.feeds.spec import ExportSpec
from warning.feeds.state import LINEAGE_COLUMNS
from warning.ingest import ingest
from warning.ingest.pipeline import QUARANTINE_DIR, REPORT_FILE, new_staging_dir, replace_store
from warning.ingest.report import IngestReport, TableReport
from warning.store import PANDAS_DTYPES

logger = logging.getLogger(__name__)

# Contract tables without households, built whole and written once, not per partition.
SHARED_TABLES = frozenset(name for name, table in TABLES.items() if "household_id" not in table.column_names)


def _candidates(spec: ExportSpec, state: pd.DataFrame, first: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the contract rows one feed contributes, and the lineage of each (feed row to contract row).

    With ``aggregate: sum`` the rows of a contract key add up, so several feed
    rows (the wages of each member) make one contract row. Candidates are
    numbered from ``first`` in ``_candidate``, and each lineage row carries
    the number of the candidate it went into.
    """
    table = TABLES[str(spec.target)]
    key = list(table.key)
    frame = state[table.column_names + list(LINEAGE_COLUMNS)]
    if spec.aggregate == "sum" and len(frame):
        amounts = [
            column.name for column in table.columns if column.kind == "float" and column.name not in key
        ]
        others = [name for name in table.column_names if name not in key and name not in amounts]
        grouped = frame.groupby(key, sort=False, dropna=False)
        summed = grouped[amounts].sum(min_count=1)
        firsts = grouped[others + ["_file", "_row"]].last()
        latest = grouped["_delivery"].max()
        rows = pd.concat([summed, firsts, latest], axis=1).reset_index()
        # With sort=False both number the groups in order of first appearance.
        sources = grouped.ngroup().to_numpy(dtype=np.int64)
    else:
        rows = frame.reset_index(drop=True)
        sources = np.arange(len(frame), dtype=np.int64)
    rows = rows.assign(_feed=spec.feed, _precedence=spec.precedence, _candidate=first + np.arange(len(rows)))
    lineage = state[key + list(LINEAGE_COLUMNS)].assign(_feed=spec.feed, _candidate=first + sources)
    return rows, lineage


def _resolve(candidates: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the winning candidate of every contract key, and the candidates that lost to another.

    The latest delivery wins, then the lower precedence, then the later file
    and row. Only keys with several candidates are sorted: in a store without
    conflicts that is none.
    """
    contested = candidates.duplicated(key, keep=False).to_numpy()
    if not contested.any():
        return candidates, candidates.iloc[0:0]
    order = candidates[contested].sort_values(
        key + ["_delivery", "_precedence", "_file", "_row"],
        ascending=[True] * len(key) + [False, True, False, False],
        na_position="first",
        kind="stable",
    )
    repeated = order.duplicated(key, keep="first").to_numpy()
    winners = pd.concat([candidates[~contested], order[~repeated]], ignore_index=True)
    return winners, order[repeated].reset_index(drop=True)


def build_tables(
    specs: list[ExportSpec], states: dict[str, pd.DataFrame]
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Return each contract table, its lineage, and the rows that lost to another row with the same key."""
    tables, lineages, conflicts = {}, {}, {}
    by_target: dict[str, list[ExportSpec]] = {}
    for spec in specs:
        if spec.role != "members":
            by_target.setdefault(str(spec.target), []).append(spec)
    for name, table_specs in by_target.items():
        table = TABLES[name]
        key = list(table.key)
        parts, lineage_parts = [], []
        for spec in table_specs:
            state = states.get(spec.feed)
            if state is None or not len(state):
                continue
            rows, lineage = _candidates(spec, state, sum(len(part) for part in parts))
            parts.append(rows)
            lineage_parts.append(lineage)
        if not parts:
            continue
        winners, losers = _resolve(pd.concat(parts, ignore_index=True), key)
        conflicts[name] = losers.drop(columns="_candidate")
        tables[name] = winners[table.column_names].reset_index(drop=True)
        lineage = pd.concat(lineage_parts, ignore_index=True)
        chosen = np.isin(lineage["_candidate"].to_numpy(), winners["_candidate"].to_numpy())
        lineages[name] = (
            lineage[chosen]
            .drop(columns="_candidate")
            .reset_index(drop=True)
            .rename(columns={"_feed": "feed", "_file": "file", "_row": "row", "_delivery": "delivery"})
        )
    return tables, lineages, conflicts


def store_dtypes(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    kinds = {column.name: column.kind for column in TABLES[name].columns}
    return frame.astype({column: PANDAS_DTYPES[kind] for column, kind in kinds.items()})


def ingest_partition(tables: dict[str, pd.DataFrame], work_dir: Path, part: int) -> Path | None:
    """Validate one partition's contract tables with ``warning.ingest.ingest``; return its store folder.

    Returns None for a partition without households (a small store spread
    over many partitions). A required table without rows in this partition
    is written empty: the caller checks that the whole store has rows for it.
    """
    households = tables.get("households")
    if households is None or not len(households):
        return None
    source = work_dir / f"tables-{part:04d}"
    source.mkdir(parents=True, exist_ok=True)
    store = work_dir / f"store-{part:04d}"
    try:
        for name, table in TABLES.items():
            frame = tables.get(name)
            if frame is None and table.required:
                frame = pd.DataFrame({column: pd.Series(dtype="object") for column in table.column_names})
            if frame is not None:
                store_dtypes(name, frame).to_parquet(source / f"{name}.parquet", index=False)
        DatasetInfo(name="feeds", period="month").write(source)
        ingest(source, store, require_rows=False)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return store


def _combined_report(reports: list[IngestReport], store_dir: Path) -> IngestReport:
    tables: dict[str, TableReport] = {}
    for name in TABLES:
        entries = [report.tables[name] for report in reports if name in report.tables]
        if name in SHARED_TABLES:
            entries = entries[:1]
        ingested = [entry for entry in entries if entry.status == "ingested"]
        if not ingested:
            tables[name] = entries[0] if entries else TableReport(name, "absent")
            continue
        problems: dict[str, int] = {}
        for entry in ingested:
            for reason, count in entry.problems.items():
                problems[reason] = problems.get(reason, 0) + count
        tables[name] = TableReport(
            table=name,
            status="ingested",
            file=f"{name}.parquet",
            rows_read=sum(entry.rows_read for entry in ingested),
            rows_kept=sum(entry.rows_kept for entry in ingested),
            rows_quarantined=sum(entry.rows_quarantined for entry in ingested),
            problems=problems,
            quarantine_file=f"{QUARANTINE_DIR}/{name}.csv" if problems else None,
            seconds=round(sum(entry.seconds for entry in ingested), 3),
        )
    return IngestReport(
        source_dir="feeds",
        store_dir=str(store_dir),
        dataset="feeds",
        tables=tables,
        started_at=reports[0].started_at if reports else "",
        elapsed_seconds=round(sum(report.elapsed_seconds for report in reports), 3),
    )


def combine_stores(part_stores: list[Path], store_dir: Path) -> IngestReport:
    """Join the partitions' stores into the store at ``store_dir``, replacing its contract tables.

    Tables are concatenated file by file; a shared table (poverty lines) is
    taken from the first partition, where every partition holds the same
    rows. The store is replaced as ``warning.ingest.ingest`` replaces it, so
    feed state and other entries beside the tables are kept.
    """
    location = Path(store_dir).resolve()
    staging = new_staging_dir(location)
    try:
        for name in TABLES:
            paths = [store / f"{name}.parquet" for store in part_stores if (store / f"{name}.parquet").is_file()]
            if name in SHARED_TABLES:
                paths = paths[:1]
            if paths:
                rows = concatenate_parquet(paths, staging / f"{name}.parquet")
                logger.info("Wrote %d rows of %s from %d partitions", rows, name, len(paths))
            for suffix in ("", "_rows"):
                found = [store / QUARANTINE_DIR / f"{name}{suffix}.csv" for store in part_stores]
                found = [path for path in found if path.is_file()]
                if found:
                    (staging / QUARANTINE_DIR).mkdir(exist_ok=True)
                    frame = pd.concat([pd.read_csv(path, dtype=str) for path in found], ignore_index=True)
                    frame.to_csv(staging / QUARANTINE_DIR / f"{name}{suffix}.csv", index=False)
        report = _combined_report([IngestReport.read(store / REPORT_FILE) for store in part_stores], store_dir)
        DatasetInfo(
            name="feeds",
            period="month",
            description="Built from department feeds; see feeds/ for lineage, history and reports.",
        ).write(staging)
        report.write(staging / REPORT_FILE)
        replace_store(staging, location)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report
