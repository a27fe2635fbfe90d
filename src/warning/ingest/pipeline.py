"""The ingest run: read a dataset folder, validate every table, write the store and the quarantine."""

from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import yaml

from warning.contract import TABLES, DatasetInfo
from warning.ingest.problems import QUARANTINE_COLUMNS, IngestError, TableFileError
from warning.ingest.read import DATASET_FILE, RawTable, locate_table_files, read_table_file
from warning.ingest.report import IngestReport, TableReport
from warning.ingest.validate import HouseholdIds, ValidatedTable, validate_table
from warning.store import write_table

logger = logging.getLogger(__name__)

REPORT_FILE = "ingest_report.json"
QUARANTINE_DIR = "quarantine"


def ingest(
    source_dir: Path,
    store_dir: Path,
    *,
    chunk_rows: int = 1_000_000,
    cost_tolerance: float = 0.01,
    as_of: date | None = None,
    require_rows: bool = True,
) -> IngestReport:
    """Validate the tables of a dataset folder and write the clean, typed store.

    Each contract table is read from ``<table>.csv`` or ``<table>.parquet`` in
    ``source_dir`` and checked with the pandera schemas of
    ``warning.ingest.schemas``. Rows that pass are written to
    ``store_dir/<table>.parquet`` in the store dtypes. Rows that fail go to
    ``store_dir/quarantine/<table>.csv``, one record per problem (table, file,
    row, column, value, reason, detail), and the rows as read go to
    ``quarantine/<table>_rows.csv``. ``row`` is 1-based and does not count the
    header, so row 1 is the first data row. ``warning.ingest.read`` explains
    how blank lines and quoted line breaks in a CSV file are counted.
    ``dataset.yaml`` is copied, or written with defaults when the folder has
    none, and the run's ``IngestReport`` is written to
    ``store_dir/ingest_report.json``.

    The store is replaced as a whole: everything is written to a staging
    folder beside ``store_dir`` that takes the place of the old store only
    when every table succeeded. Files in the old store that ingest does not
    write, such as the history of feed deliveries, move to the new store.
    If the run fails, the old store is left as it was.

    Raises ``IngestError`` when the folder is missing, a required table has no
    file, a table has both a CSV and a Parquet file, ``dataset.yaml`` is
    invalid, a required table's file cannot be read as a whole (empty, not
    UTF-8, unreadable, or missing a non-nullable column), or a required table
    has no valid rows. Such a file problem in an optional table is logged as an
    error, the table is left out of the store, and its report has status
    ``failed``. Unknown columns are dropped with a warning. A nullable column
    absent from the file is filled with missing values.

    ``chunk_rows`` bounds how many rows are validated at once.
    ``require_rows=False`` accepts a required table without valid rows (one
    part of a larger dataset, whose caller checks the whole).
    ``cost_tolerance`` is how far, in the currency of the data,
    reimbursed plus out-of-pocket costs may exceed the total cost before a
    claim is rejected, to allow for rounding. Months after the month of
    ``as_of`` (default: today) are quarantined as in the future.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    source_dir = Path(source_dir)
    store_dir = Path(store_dir)
    if store_dir.exists() and source_dir.exists() and source_dir.resolve() == store_dir.resolve():
        raise IngestError(f"store folder {store_dir} is the source folder; write the store to another folder")
    if store_dir.exists() and not store_dir.is_dir():
        raise IngestError(f"store folder {store_dir} is a file; remove it or choose another folder")
    files, ignored = locate_table_files(source_dir)
    if ignored:
        logger.warning("Ignored files in %s that name no contract table: %s", source_dir, ignored)
    missing = [name for name, table in TABLES.items() if table.required and name not in files]
    if missing:
        expected = ", ".join(f"{name}.csv or {name}.parquet" for name in missing)
        raise IngestError(f"source folder {source_dir} lacks required tables {missing}: expected {expected}")
    info = _read_dataset_info(source_dir)

    raw_tables, failures = _read_files(files)
    required_failures = [str(error) for name, error in failures.items() if TABLES[name].required]
    if required_failures:
        raise IngestError("invalid required table files: " + "; ".join(required_failures))

    # A symbolic link to the store is followed, so that the folder it points to is replaced.
    location = store_dir.resolve()
    staging = new_staging_dir(location)
    try:
        reports = _ingest_tables(
            raw_tables, failures, files, staging, chunk_rows, cost_tolerance, as_of, require_rows
        )
        info.write(staging)
        report = IngestReport(
            source_dir=str(source_dir),
            store_dir=str(store_dir),
            dataset=info.name,
            tables={name: reports[name] for name in TABLES},
            ignored_files=ignored,
            started_at=started_at,
            elapsed_seconds=round(time.perf_counter() - clock, 3),
        )
        report.write(staging / REPORT_FILE)
        replace_store(staging, location)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "Ingested %s into %s in %.1f s: %d rows quarantined, failed tables %s",
        source_dir,
        store_dir,
        report.elapsed_seconds,
        report.rows_quarantined,
        report.failed_tables,
    )
    return report


def _read_dataset_info(source_dir: Path) -> DatasetInfo:
    path = source_dir / DATASET_FILE
    try:
        return DatasetInfo.read(source_dir)
    except ValueError as error:
        # DatasetInfo.read names the file in its messages.
        raise IngestError(str(error)) from error
    except yaml.YAMLError as error:
        raise IngestError(f"{path} is not valid YAML: {error}") from error


def _read_files(files: dict[str, Path]) -> tuple[dict[str, RawTable], dict[str, TableFileError]]:
    raw_tables: dict[str, RawTable] = {}
    failures: dict[str, TableFileError] = {}
    for name, path in files.items():
        try:
            raw_tables[name] = read_table_file(path, TABLES[name])
        except TableFileError as error:
            failures[name] = error
            if not TABLES[name].required:
                logger.error("Skipped optional table %s, which the store will lack: %s", name, error)
    return raw_tables, failures


def _ingest_tables(
    raw_tables: dict[str, RawTable],
    failures: dict[str, TableFileError],
    files: dict[str, Path],
    out_dir: Path,
    chunk_rows: int,
    cost_tolerance: float,
    as_of: date | None,
    require_rows: bool = True,
) -> dict[str, TableReport]:
    """Validate every table and write it to ``out_dir``.

    Raises ``IngestError`` as soon as a required table keeps no row, unless ``require_rows`` is False.
    """
    reports: dict[str, TableReport] = {}
    households: HouseholdIds | None = None
    # The households table goes first, because the other tables are checked against its ids.
    for name in sorted(TABLES, key=lambda table_name: table_name != "households"):
        if name in failures:
            reports[name] = TableReport(name, "failed", file=files[name].name, error=failures[name].message)
        elif name not in raw_tables:
            reports[name] = TableReport(name, "absent")
        else:
            raw = raw_tables.pop(name)
            reports[name], validated = _ingest_table(
                raw, out_dir, households, chunk_rows, cost_tolerance, as_of
            )
            if require_rows and TABLES[name].required and reports[name].rows_kept == 0:
                raise IngestError(_no_valid_rows_message(reports[name]))
            if name == "households":
                households = _household_ids(raw, validated)
    return reports


def _no_valid_rows_message(report: TableReport) -> str:
    message = f"table {report.table} has no valid rows; nothing to build features from ({report.file}: "
    if report.rows_read == 0:
        return message + "no data rows)"
    reasons = list(report.problems.items())[:5]
    reasons_text = ", ".join(f"{reason} ({count})" for reason, count in reasons)
    return message + f"all {report.rows_read} rows quarantined; problems: {reasons_text})"


# Entries of the store folder that every run writes anew; any other entry moves to the new store.
_STORE_OUTPUTS = frozenset(
    {*(f"{name}.parquet" for name in TABLES), QUARANTINE_DIR, REPORT_FILE, DATASET_FILE}
)


def new_staging_dir(location: Path) -> Path:
    """Create an empty staging folder beside the store.

    It is on the same file system as the store, so renaming it into place is atomic.
    """
    location.parent.mkdir(parents=True, exist_ok=True)
    staging = location.parent / f".{location.name}.staging-{os.getpid()}"
    if staging.exists():
        logger.warning("Removed the staging folder %s that an interrupted run left", staging)
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def recover_replaced_store(location: Path) -> None:
    """Finish or undo a ``replace_store`` that a stopped run left part way, then remove staging folders.

    The store is moved aside before the staging folder takes its place. A run
    stopped between the two leaves no store at ``location``: the old store is
    moved back, with the entries already carried into the staging folder. A
    run stopped after the two leaves only the old store to remove. Call it
    while no other run writes the store.
    """
    prefix = f".{location.name}."
    for previous in sorted(location.parent.glob(f"{prefix}previous-*")):
        staging = location.parent / f"{prefix}staging-{previous.name.rsplit('-', 1)[-1]}"
        if location.exists():
            logger.warning("Removing %s, the store that an interrupted run replaced", previous)
            shutil.rmtree(previous)
            continue
        logger.warning("Restoring store %s from %s, which an interrupted run moved aside", location, previous)
        if staging.is_dir():
            for entry in sorted(staging.iterdir()):
                if entry.name not in _STORE_OUTPUTS and not (previous / entry.name).exists():
                    entry.rename(previous / entry.name)
        previous.rename(location)
    for staging in sorted(location.parent.glob(f"{prefix}staging-*")):
        logger.warning("Removing %s, left by an interrupted run", staging)
        shutil.rmtree(staging)


def replace_store(staging: Path, location: Path) -> None:
    """Put the staging folder in place of the store, moving over the entries that ingest does not write."""
    if not location.exists():
        staging.rename(location)
        logger.info("Created store %s", location)
        return
    previous = location.parent / f".{location.name}.previous-{os.getpid()}"
    if previous.exists():
        shutil.rmtree(previous)
    carried = sorted(entry.name for entry in location.iterdir() if entry.name not in _STORE_OUTPUTS)
    location.rename(previous)
    try:
        for name in carried:
            (previous / name).rename(staging / name)
        staging.rename(location)
    except OSError:
        logger.exception("Failed to replace store %s; restoring the previous store", location)
        for name in carried:
            if (staging / name).exists():
                (staging / name).rename(previous / name)
        previous.rename(location)
        raise
    shutil.rmtree(previous)
    logger.info("Replaced store %s, keeping its other entries %s", location, carried)


def _ingest_table(
    raw: RawTable,
    store_dir: Path,
    households: HouseholdIds | None,
    chunk_rows: int,
    cost_tolerance: float,
    as_of: date | None,
) -> tuple[TableReport, ValidatedTable]:
    clock = time.perf_counter()
    name = raw.table.name
    link = households if "household_id" in raw.table.column_names and name != "households" else None
    validated = validate_table(
        raw, households=link, chunk_rows=chunk_rows, cost_tolerance=cost_tolerance, as_of=as_of
    )
    write_table(store_dir, name, validated.frame)
    quarantine_file = _write_quarantine(store_dir, raw, validated)
    report = TableReport(
        table=name,
        status="ingested",
        file=raw.path.name,
        rows_read=validated.rows_read,
        rows_kept=validated.rows_kept,
        rows_quarantined=validated.rows_quarantined,
        problems=validated.problem_counts(),
        dropped_columns=raw.dropped_columns,
        null_filled_columns=raw.null_filled_columns,
        quarantine_file=quarantine_file,
        seconds=round(time.perf_counter() - clock, 3),
    )
    logger.info(
        "Ingested %s from %s: %d rows read, %d kept, %d quarantined",
        name,
        raw.path,
        report.rows_read,
        report.rows_kept,
        report.rows_quarantined,
    )
    if report.problems:
        logger.warning(
            "Quarantined %d rows of %s, problems by reason: %s",
            report.rows_quarantined,
            name,
            report.problems,
        )
    return report, validated


def _write_quarantine(store_dir: Path, raw: RawTable, validated: ValidatedTable) -> str | None:
    """Write the problems and the rejected rows of a table; return the problems file relative to the store."""
    if not len(validated.problems):
        return None
    folder = store_dir / QUARANTINE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = raw.table.name
    problems = validated.problems.assign(table=name, file=raw.path.name)[list(QUARANTINE_COLUMNS)]
    problems.to_csv(folder / f"{name}.csv", index=False)
    # Rows the CSV parser rejected have no cells; their text is the problem's value.
    rows = validated.problems["row"].unique()
    raw.rows_frame(rows[pd.Index(rows).isin(raw.rows)]).to_csv(folder / f"{name}_rows.csv", index=False)
    logger.info("Wrote %d problems of %s to %s", len(problems), name, folder / f"{name}.csv")
    return f"{QUARANTINE_DIR}/{name}.csv"


def _household_ids(raw: RawTable, validated: ValidatedTable) -> HouseholdIds:
    kept = pd.Index(validated.frame["household_id"].dropna().unique())
    rows = validated.problems["row"].unique()
    rows = rows[pd.Index(rows).isin(raw.rows)]
    rejected = pd.Index(raw.cell_text(rows, "household_id").unique())
    return HouseholdIds(kept=kept, quarantined=rejected.difference(kept))
