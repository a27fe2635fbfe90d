"""Ingest one delivery of department feeds: check, link, hash, merge, then write the household store.

The run, in order:

1. Match each delivered file to an export of the feed specifications.
2. Read it (UTF-8, or GBK decoded), check every source column, and quarantine
   bad rows with the file, row, column, cell (identity numbers masked) and reason.
3. Replace identity numbers by keyed hashes and link persons to households
   through the household roster (households and members go first).
4. Map the rows onto the contract table of the export and check them with the
   contract's pandera schema (``warning.ingest.table_schema``).
5. Quarantine amounts far above the usual level of their person or household
   as likely unit errors.
6. Merge the rows into what the feed delivered before: the latest delivery wins
   and replaced rows go to a history table.
7. Build each contract table from every feed (two feeds with the same contract
   row: the latest delivery wins, then the lower ``precedence``), pass it
   through ``warning.ingest.ingest`` into the store, and write lineage, the
   households to re-score, the report and the quarantine.

Steps 2 to 4 are in ``warning.feeds.check``, steps 5 and 6 in
``warning.feeds.export``, and the table building of step 7 in
``warning.feeds.build``; this module runs them in order and commits the
delivery.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from warning.contract import TABLES
from warning.feeds.build import SHARED_TABLES, build_tables, combine_stores, ingest_partition
from warning.feeds.check import DeliveryRun, spill
from warning.feeds.export import UNIT_ERROR, ExportResult, merge_rows, read_export, read_spilled
from warning.feeds.identity import IdentityHasher, mask_identities_in_text, shown_file_name
from warning.feeds.install import INSTALL_DIR, commit, is_committing, recover, stage_appended, stage_frame
from warning.feeds.parse import NUMBER_TEXT, PROBLEM_COLUMNS
from warning.feeds.partitions import (
    LAYOUT_FILE,
    Layout,
    choose_partitions,
    column_maximum,
    partition_of,
    read_part,
    write_part,
)
from warning.feeds.regions import RegionCodes
from warning.feeds.report import FeedReport, FileReport, delivery_folder
from warning.feeds.rescore import no_rescore_rows, stage_rescore
from warning.feeds.spec import ExportSpec, load_specs
from warning.feeds.state import read_frame
from warning.ingest.pipeline import recover_replaced_store
from warning.settings import Settings, get_settings

logger = logging.getLogger(__name__)

FEEDS_DIR = "feeds"
DELIVERIES_FILE = "deliveries.json"
LOCK_FILE = ".ingest.lock"
WORK_PREFIX = "delivery-"
QUARANTINE_COLUMNS = ("feed", "file", *PROBLEM_COLUMNS)

SECRET_VARIABLE = "POVWARN_ID_HASH_SECRET"
MIN_SECRET_LENGTH = 16
MIN_SECRET_DISTINCT = 8
# 18-character resident identity numbers were introduced by GB 11643-1999.
EARLIEST_DELIVERY = pd.Timestamp("1999-01-01")


class FeedIngestError(Exception):
    """A problem with the delivery or the configuration that stops the run before anything is written."""


class MissingSecretError(FeedIngestError):
    """The key of the identity hash is not configured."""


def resolve_secret(secret: str | bytes | None, settings: Settings) -> bytes:
    """Return the identity hash key: ``secret`` if given, else ``POVWARN_ID_HASH_SECRET``.

    Raises ``MissingSecretError`` naming the variable when neither is set or
    the key is shorter than 16 characters.
    """
    if secret is None and settings.id_hash_secret is not None:
        secret = settings.id_hash_secret.get_secret_value()
    if not secret:
        raise MissingSecretError(
            f"{SECRET_VARIABLE} is not set: set it to a random secret of at least {MIN_SECRET_LENGTH} "
            "characters before ingesting feeds. It keys the hash that replaces identity numbers, "
            "so keep it stable and out of version control."
        )
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(secret) < MIN_SECRET_LENGTH:
        raise MissingSecretError(
            f"{SECRET_VARIABLE} is too short: use at least {MIN_SECRET_LENGTH} characters"
        )
    if len(set(secret.strip() if isinstance(secret, str) else key.strip())) < MIN_SECRET_DISTINCT:
        raise MissingSecretError(
            f"{SECRET_VARIABLE} has fewer than {MIN_SECRET_DISTINCT} different characters: use a random key"
        )
    return key


def parse_as_of(as_of: str | pd.Timestamp | None) -> pd.Timestamp:
    """Return the delivery date: ``as_of`` (YYYY-MM-DD), or today in UTC when it is None.

    Raises ``FeedIngestError`` for a value that is not a date written
    YYYY-MM-DD, a date before 1999, or a date after tomorrow, which would let
    months that have not happened yet through.
    """
    today = pd.Timestamp(datetime.now(UTC).date())
    if as_of is None:
        return today
    if isinstance(as_of, str):
        try:
            date = pd.Timestamp(datetime.strptime(as_of, "%Y-%m-%d"))
        except ValueError as error:
            raise FeedIngestError(f"invalid delivery date {as_of!r}: expected YYYY-MM-DD") from error
    else:
        date = pd.Timestamp(as_of)
    if pd.isna(date) or date.tz is not None:
        raise FeedIngestError(f"invalid delivery date {as_of!r}: expected YYYY-MM-DD")
    if date < EARLIEST_DELIVERY:
        raise FeedIngestError(
            f"delivery date {date.date()} is before {EARLIEST_DELIVERY.date()}, when 18-character "
            "identity numbers began; give the day the files were exported"
        )
    if date.normalize() > today + pd.Timedelta(days=1):
        raise FeedIngestError(
            f"delivery date {date.date()} is after today ({today.date()}): months up to it would pass "
            "the check for future months; give the day the files were exported"
        )
    return date.normalize()


def _match_files(source_dir: Path, specs: list[ExportSpec]) -> tuple[dict[str, list[Path]], list[str]]:
    if not source_dir.is_dir():
        raise FeedIngestError(f"delivery folder {source_dir} does not exist or is not a folder")
    matched: dict[str, list[Path]] = {spec.feed: [] for spec in specs}
    ignored: list[str] = []
    for path in sorted(source_dir.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        owners = [spec.feed for spec in specs if spec.matches(path.name)]
        if len(owners) > 1:
            raise FeedIngestError(
                f"file {shown_file_name(path)} matches several feeds {owners}; rename it or narrow the patterns"
            )
        if owners:
            matched[owners[0]].append(path)
        else:
            ignored.append(shown_file_name(path))
    return matched, ignored


def _previous_files(
    feeds_dir: Path,
) -> tuple[list[dict[str, object]], dict[tuple[str, str], tuple[int, int, int]]]:
    """Return the delivery log and, per (feed, file hash), its latest delivery, rows and quarantined rows.

    A log written before quarantined rows were recorded counts every row as
    quarantined, so that such a file is read again rather than skipped.
    """
    path = feeds_dir / DELIVERIES_FILE
    log = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    seen: dict[tuple[str, str], tuple[int, int, int]] = {}
    for entry in log:
        for item in entry["files"]:
            rows = int(item["rows"])
            seen[(item["feed"], item["sha256"])] = (int(entry["delivery"]), rows, int(item.get("quarantined", rows)))
    return log, seen


def _is_partitioned(spec: ExportSpec) -> bool:
    """Whether an export's rows are kept in partitions: every export of a contract table with households."""
    return spec.role == "table" and "household_id" in TABLES[str(spec.target)].column_names


def _latest_month(
    states: dict[str, pd.DataFrame], specs: list[ExportSpec], state_dir: Path
) -> pd.Timestamp | None:
    """Return the latest month stored by any feed, reading only the month column of partitioned state."""
    latest = None
    for spec in specs:
        if spec.role != "table" or "month" not in TABLES[str(spec.target)].column_names:
            continue
        if _is_partitioned(spec):
            value = column_maximum(state_dir, spec.feed, "month")
        else:
            state = states.get(spec.feed)
            value = state["month"].max() if state is not None and len(state) else None
        if value is not None and pd.notna(value) and (latest is None or pd.Timestamp(value) > latest):
            latest = pd.Timestamp(value)
    return latest


def ingest_feeds(
    source_dir: Path,
    store_dir: Path,
    *,
    secret: str | bytes | None = None,
    as_of: str | pd.Timestamp | None = None,
    settings: Settings | None = None,
    specs: list[ExportSpec] | None = None,
    regions: RegionCodes | None = None,
) -> FeedReport:
    """Ingest one delivery of department feed files from ``source_dir`` into the store at ``store_dir``.

    ``secret`` keys the identity hash; without it ``POVWARN_ID_HASH_SECRET`` is
    used, and ``MissingSecretError`` is raised when neither is set.
    ``as_of`` is the delivery date (default: today, UTC); months, dates and
    birth dates after it are rejected. Feed state, history, lineage, conflicts
    and per-delivery reports go to ``store_dir/feeds``; households to re-score
    go to ``store_dir/rescore.parquet``; the contract tables are written by
    ``warning.ingest.ingest``, one household partition at a time
    (``warning.feeds.partitions``). Ingesting the same delivery again changes
    no table. Raises ``FeedIngestError`` before writing anything in these
    cases: the folder is missing or has no file of any feed, a file matches
    two feeds, the store was not built from feeds, the key is not the one the
    store was built with, or a required contract table would be empty.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    settings = settings or get_settings()
    hasher = IdentityHasher(resolve_secret(secret, settings))
    specs = specs if specs is not None else load_specs(settings.feed_specs_dir)
    regions = regions if regions is not None else RegionCodes.load(settings.region_codes_path)
    # Resolved, so that a symbolic link or "." names the same lock and folder as the store itself.
    source_dir, store_dir = Path(source_dir), Path(store_dir).resolve()
    as_of_date = parse_as_of(as_of)
    feeds_dir = store_dir / FEEDS_DIR
    matched, ignored = _match_files(source_dir, specs)
    shown_source = mask_identities_in_text(str(source_dir))
    if ignored:
        logger.warning("Ignored files in %s that match no feed: %s", shown_source, ignored)
    if not any(matched.values()):
        raise FeedIngestError(
            f"delivery folder {shown_source} has no file of any feed (found: {', '.join(ignored) or 'none'}); "
            "`povwarn feeds list` shows the file names each feed expects"
        )
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    with _store_lock(store_dir):
        recover_replaced_store(store_dir)
        if (store_dir / "households.parquet").is_file() and not (feeds_dir / LAYOUT_FILE).is_file():
            raise FeedIngestError(
                f"store {store_dir} holds tables that were not built from feeds (written by `povwarn ingest`); "
                "ingest feeds into a new store folder"
            )
        feeds_dir.mkdir(parents=True, exist_ok=True)
        recover(store_dir, WORK_PREFIX)
        new_store = not (feeds_dir / LAYOUT_FILE).is_file()
        try:
            return _ingest_delivery(
                source_dir=source_dir,
                store_dir=store_dir,
                matched=matched,
                ignored=ignored,
                settings=settings,
                specs=specs,
                regions=regions,
                hasher=hasher,
                as_of_date=as_of_date,
                started=started,
                started_at=started_at,
            )
        except FeedIngestError:
            if new_store and not (store_dir / "households.parquet").is_file():
                # A first delivery that stored nothing fixes neither the key nor the partition count.
                (feeds_dir / LAYOUT_FILE).unlink(missing_ok=True)
            raise


@contextmanager
def _store_lock(store_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the store for one ingest; raise ``FeedIngestError`` if another holds it.

    The lock file is beside the store, not in it, because building the
    tables moves the store folder aside for a moment.
    """
    path = store_dir.parent / f".{store_dir.name}{LOCK_FILE}"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise FeedIngestError(
                f"another ingest into {store_dir} is running (lock {path}); wait for it to finish"
            ) from error
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ingest_delivery(
    *,
    source_dir: Path,
    store_dir: Path,
    matched: dict[str, list[Path]],
    ignored: list[str],
    settings: Settings,
    specs: list[ExportSpec],
    regions: RegionCodes,
    hasher: IdentityHasher,
    as_of_date: pd.Timestamp,
    started: float,
    started_at: str,
) -> FeedReport:
    feeds_dir = store_dir / FEEDS_DIR
    state_dir = feeds_dir / "state"
    layout = Layout.load(feeds_dir)
    if layout is not None and settings.feed_partitions not in (None, layout.partitions):
        logger.warning(
            "POVWARN_FEED_PARTITIONS=%d is ignored: store %s was created with %d partitions, which stay fixed",
            settings.feed_partitions,
            store_dir,
            layout.partitions,
        )
    if layout is None:
        if state_dir.is_dir() and any(state_dir.iterdir()):
            raise FeedIngestError(
                f"{feeds_dir} holds feed state without {LAYOUT_FILE}; it was written by an earlier "
                "version, so ingest its deliveries again into a new store"
            )
        delivered_bytes = sum(path.stat().st_size for paths in matched.values() for path in paths)
        layout = Layout(
            choose_partitions(delivered_bytes, settings.feed_partitions, settings.feed_partition_megabytes)
        )
    fingerprint = hasher.fingerprint()
    if layout.key_fingerprint not in (None, fingerprint):
        raise FeedIngestError(
            f"{SECRET_VARIABLE} is not the key that store {store_dir} was built with, so its person and "
            "household ids would not match the stored ones; set the store's key, or ingest into a new store"
        )
    layout = Layout(layout.partitions, fingerprint)
    # Written before any state, so that a run stopped part way leaves a store the next run can use.
    layout.write(feeds_dir)
    log, seen = _previous_files(feeds_dir)
    delivery = len(log) + 1
    previous_as_of = log[-1].get("as_of") if log else None
    if previous_as_of is not None and as_of_date < pd.Timestamp(str(previous_as_of)):
        logger.warning(
            "Delivery %d is dated %s, before delivery %d (%s); check --as-of if that is not intended",
            delivery,
            as_of_date.date(),
            delivery - 1,
            previous_as_of,
        )
    by_feed = {spec.feed: spec for spec in specs}
    whole_states: dict[str, pd.DataFrame] = {}
    for spec in specs:
        state = None if _is_partitioned(spec) else read_frame(state_dir / f"{spec.feed}.parquet")
        if state is not None:
            whole_states[spec.feed] = state
    run = DeliveryRun(
        delivery=delivery,
        as_of=as_of_date,
        regions=regions,
        hasher=hasher,
        feeds_dir=feeds_dir,
        unit_error_ratio=settings.feed_unit_error_ratio,
        unit_min_rows=settings.feed_unit_min_rows,
        unit_level_quantile=settings.feed_unit_level_quantile,
        block_bytes=int(settings.feed_block_megabytes * 2**20),
        latest_month_before=_latest_month(whole_states, specs, state_dir),
    )
    logger.info(
        "Ingesting delivery %d from %s into %s (as of %s, %d partitions)",
        delivery,
        mask_identities_in_text(str(source_dir)),
        store_dir,
        as_of_date.date(),
        layout.partitions,
    )
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{delivery:04d}-", dir=feeds_dir))
    try:
        phases: dict[str, float] = {}
        results = _read_and_merge(specs, matched, whole_states, by_feed, run, seen, work, layout, phases)
        changed = any(result.changed for result in results)
        report = FeedReport(
            delivery=delivery,
            source_dir=mask_identities_in_text(str(source_dir)),
            store_dir=str(store_dir),
            as_of=str(as_of_date.date()),
            started_at=started_at,
            feeds={result.spec.feed: result.counts for result in results},
            files=[entry for result in results for entry in result.files]
            + [FileReport(file=name, feed=None, status="ignored: matches no feed (see povwarn feeds list)") for name in ignored],
            changed=changed,
            unit_errors=sum(result.counts.problems.get(UNIT_ERROR, 0) for result in results),
        )
        if changed or not (store_dir / "households.parquet").is_file():
            began = time.perf_counter()
            _build_store(specs, whole_states, report, store_dir, work, layout)
            _stage_state(results, whole_states, work, store_dir)
            phases["build"] = time.perf_counter() - began
        report.phase_seconds = {name: round(seconds, 3) for name, seconds in phases.items()}
        rescore = pd.concat(
            [part for result in results for part in result.rescore_parts] or [no_rescore_rows()],
            ignore_index=True,
        )
        report.rescore_households = stage_rescore(store_dir, work, rescore, delivery)
        report.elapsed_seconds = round(time.perf_counter() - started, 3)
        _stage_delivery(_staged_feeds(work), report, results, log)
        commit(store_dir, work)
    finally:
        if not is_committing(feeds_dir, work):
            shutil.rmtree(work, ignore_errors=True)
    logger.info(
        "Delivery %d done in %.1f s: %s",
        delivery,
        report.elapsed_seconds,
        ", ".join(f"{name} {count}" for name, count in report.totals.items()),
    )
    return report


def _read_and_merge(
    specs: list[ExportSpec],
    matched: dict[str, list[Path]],
    whole_states: dict[str, pd.DataFrame],
    by_feed: dict[str, ExportSpec],
    run: DeliveryRun,
    seen: dict[tuple[str, str], tuple[int, int, int]],
    work: Path,
    layout: Layout,
    phases: dict[str, float],
) -> list[ExportResult]:
    """Read every export (roster first), merge the whole ones, then merge the partitioned ones part by part.

    New state and history of partitioned exports go to ``work`` until the
    store is built; whole exports keep theirs in their result.
    """
    began = time.perf_counter()
    results: list[ExportResult] = []
    _refresh_roster(whole_states, by_feed, run)
    for spec in sorted(specs, key=_process_order):
        spill = work / "delivered" / spec.feed if _is_partitioned(spec) else None
        result = read_export(spec, matched[spec.feed], run, seen, spill, layout.partitions)
        results.append(result)
        if result.delivered is not None and len(result.delivered):
            merge = merge_rows(result, result.delivered, whole_states.get(spec.feed), run)
            result.delivered = None
            if merge.changed:
                whole_states[spec.feed] = merge.state
                result.history = merge.history
                if spec.role != "table":
                    _refresh_roster(whole_states, by_feed, run)
    phases["read"] = time.perf_counter() - began
    began = time.perf_counter()
    partitioned = [result for result in results if _is_partitioned(result.spec)]
    state_dir = run.feeds_dir / "state"
    for part in range(layout.partitions):
        for result in partitioned:
            delivered = read_spilled(work / "delivered" / result.spec.feed, part)
            if delivered is None:
                continue
            merge = merge_rows(result, delivered, read_part(state_dir, result.spec.feed, part), run)
            if merge.changed:
                write_part(_staged_feeds(work) / "state", result.spec.feed, part, merge.state)
            if len(merge.history):
                write_part(work / "history", result.spec.feed, part, merge.history)
        if layout.partitions > 1:
            logger.info("Merged partition %d of %d", part + 1, layout.partitions)
    shutil.rmtree(work / "delivered", ignore_errors=True)
    phases["merge"] = time.perf_counter() - began
    for result in results:
        result.finish()
        if result.counts.read:
            counts = result.counts
            logger.info(
                "Feed %s: %d read, %d linked, %d kept, %d corrected, %d quarantined, %d merged",
                counts.feed,
                counts.read,
                counts.linked,
                counts.kept,
                counts.corrected,
                counts.quarantined,
                counts.merged,
            )
    return results


def _required_tables_missing(
    specs: list[ExportSpec], whole_states: dict[str, pd.DataFrame], state_dirs: list[Path]
) -> list[str]:
    """Return the required contract tables that no feed has rows for, before or in this delivery."""
    filled = set()
    for spec in specs:
        if spec.role == "members":
            continue
        if _is_partitioned(spec):
            has_rows = any(any((folder / f"{spec.feed}.parquet").glob("part-*.parquet")) for folder in state_dirs)
        else:
            state = whole_states.get(spec.feed)
            has_rows = state is not None and len(state) > 0
        if has_rows:
            filled.add(str(spec.target))
    return [name for name, table in TABLES.items() if table.required and name not in filled]


def _build_store(
    specs: list[ExportSpec],
    whole_states: dict[str, pd.DataFrame],
    report: FeedReport,
    store_dir: Path,
    work: Path,
    layout: Layout,
) -> None:
    """Build the contract tables partition by partition and write them into the store, with lineage and conflicts."""
    state_dir = store_dir / FEEDS_DIR / "state"
    staged = _staged_feeds(work)
    missing = _required_tables_missing(specs, whole_states, [state_dir, staged / "state"])
    if missing:
        raise FeedIngestError(
            f"no rows yet for required contract tables {missing}: deliver the feeds that fill them "
            "(households from civil_affairs.households, income from hrss.wages and the income feeds, "
            f"poverty_lines from rural_revitalisation.monitoring_lines){_unstored_causes(report)}"
        )
    household_parts = {
        feed: partition_of(state["household_id"], layout.partitions)
        for feed, state in whole_states.items()
        if "household_id" in state.columns
    }
    by_household = work / "by_household"
    _split_by_household(specs, [staged / "state", state_dir], by_household, layout.partitions)
    # Created even when empty, so that committing them removes the lineage and conflicts of the last build.
    (staged / "lineage").mkdir(parents=True, exist_ok=True)
    (staged / "conflicts").mkdir(parents=True, exist_ok=True)
    part_stores = []
    conflicts_by_feed: dict[str, int] = {}
    conflicts_by_table: dict[str, int] = {}
    for part in range(layout.partitions):
        states = {}
        for spec in specs:
            if _is_partitioned(spec):
                state = read_spilled(by_household / spec.feed, part)
            else:
                state = whole_states.get(spec.feed)
                if state is not None and spec.feed in household_parts:
                    state = state[household_parts[spec.feed] == part]
            if state is not None:
                states[spec.feed] = state
        tables, lineages, conflicts = build_tables(specs, states)
        for spec in specs:
            shutil.rmtree(by_household / spec.feed / f"part-{part:04d}", ignore_errors=True)
        store = ingest_partition(tables, work, part)
        if store is None:
            continue
        part_stores.append(store)
        # Shared tables are the same in every partition; keep their lineage and conflicts once.
        first = len(part_stores) == 1
        for name, frame in lineages.items():
            if first or name not in SHARED_TABLES:
                write_part(staged / "lineage", name, part, frame)
        for name, frame in conflicts.items():
            if not first and name in SHARED_TABLES:
                continue
            write_part(staged / "conflicts", name, part, frame)
            conflicts_by_table[name] = conflicts_by_table.get(name, 0) + len(frame)
            for feed, count in frame["_feed"].value_counts().items():
                conflicts_by_feed[str(feed)] = conflicts_by_feed.get(str(feed), 0) + int(count)
        if layout.partitions > 1:
            logger.info("Built partition %d of %d", part + 1, layout.partitions)
    ingest_report = combine_stores(part_stores, store_dir)
    report.store_rows = {
        name: entry.rows_kept for name, entry in ingest_report.tables.items() if entry.status == "ingested"
    }
    report.contract_quarantined = ingest_report.rows_quarantined
    if report.contract_quarantined:
        logger.error(
            "The contract ingest quarantined %d rows that passed the feed checks: %s",
            report.contract_quarantined,
            ingest_report.problems,
        )
    for feed, count in conflicts_by_feed.items():
        report.feeds[feed].superseded += count
    report.conflicts = {name: count for name, count in conflicts_by_table.items() if count}


def _unstored_causes(report: FeedReport) -> str:
    """Return what kept this delivery's rows out: files that failed, and feeds with every row quarantined."""
    causes = [f"file {entry.file}: {entry.error or entry.status}" for entry in report.files if entry.status == "failed"]
    for counts in report.feeds.values():
        if counts.read and not counts.kept and counts.quarantined:
            reason, count = max(counts.problems.items(), key=lambda item: item[1])
            causes.append(f"{counts.feed}: all {counts.read:,} rows quarantined, {count:,} for {reason}")
    return ". In this delivery, " + "; ".join(causes) if causes else ""


def _split_by_household(specs: list[ExportSpec], state_dirs: list[Path], target: Path, partitions: int) -> None:
    """Copy the current rows of every partitioned export into ``target``, partitioned by household.

    State is kept by person (see ``_entity_column``), but a contract table is
    built from all rows of a household. Each state file is read once, the
    first of ``state_dirs`` that has it winning.
    """
    for spec in specs:
        if not _is_partitioned(spec):
            continue
        for part in range(partitions):
            state = None
            for folder in state_dirs:
                state = read_part(folder, spec.feed, part)
                if state is not None:
                    break
            if state is not None and len(state):
                spill(state, "household_id", target / spec.feed, f"{part:06d}", partitions)


def _staged_feeds(work: Path) -> Path:
    """Return the folder where this delivery stages the store's ``feeds`` folder (see ``warning.feeds.install``)."""
    return work / INSTALL_DIR / FEEDS_DIR


def _stage_state(
    results: list[ExportResult], whole_states: dict[str, pd.DataFrame], work: Path, store_dir: Path
) -> None:
    """Stage the changed state of whole exports and every export's history with this delivery's rows added."""
    for result in results:
        feed = result.spec.feed
        if not result.changed:
            continue
        if _is_partitioned(result.spec):
            for path in sorted((work / "history" / f"{feed}.parquet").glob("part-*.parquet")):
                relative = f"{FEEDS_DIR}/history/{feed}.parquet/{path.name}"
                stage_appended(store_dir, work, relative, pd.read_parquet(path))
        else:
            stage_frame(work, f"{FEEDS_DIR}/state/{feed}.parquet", whole_states[feed])
            if result.history is not None:
                stage_appended(store_dir, work, f"{FEEDS_DIR}/history/{feed}.parquet", result.history)


def _process_order(spec: ExportSpec) -> tuple[int, str]:
    return ({"households": 0, "members": 1}.get(spec.role, 2), spec.feed)


def _refresh_roster(states: dict[str, pd.DataFrame], by_feed: dict[str, ExportSpec], run: DeliveryRun) -> None:
    """Load the household ids and person-to-household links that the other exports are checked against."""
    households = [
        state["household_id"] for feed, state in states.items() if by_feed[feed].role == "households"
    ]
    # The households export is keyed by the head's identity number, so each head is a member of its
    # household even where the members export leaves the head out. Where both link a person, the
    # members export wins.
    heads = [
        state[["key_0", "household_id"]].rename(columns={"key_0": "person"})
        for feed, state in states.items()
        if by_feed[feed].role == "households"
    ]
    members = [state[["person", "household_id"]] for feed, state in states.items() if by_feed[feed].role == "members"]
    if households:
        run.households = pd.Index(pd.concat(households).dropna().unique(), dtype="string")
    if heads or members:
        links = pd.concat([*heads, *members], ignore_index=True).dropna()
        links = links.drop_duplicates("person", keep="last")
        run.members = pd.Series(
            links["household_id"].to_numpy(), index=pd.Index(links["person"].astype("string")), dtype="string"
        )


# A spreadsheet runs a cell that starts with one of these as a formula, and one that starts with "-"
# unless the cell is a plain number.
_FORMULA_START = r"^[=+@\t\r-]"
_PLAIN_NUMBER = rf"^{NUMBER_TEXT}$"


def _inert_text(cells: pd.Series) -> pd.Series:
    cells = cells.astype("string")
    risky = cells.str.contains(_FORMULA_START, regex=True) & ~cells.str.fullmatch(_PLAIN_NUMBER)
    risky = risky.fillna(False).astype(bool)
    return cells.where(~risky, "'" + cells) if risky.any() else cells


def _inert_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Return rejected cells and column names with a leading apostrophe where a spreadsheet would run them.

    Quarantine files are opened by staff in spreadsheets, and a delivered cell
    such as ``=HYPERLINK(...)`` would otherwise run there.
    """
    frame = frame.copy()
    for name in frame.columns:
        if frame[name].dtype == object or pd.api.types.is_string_dtype(frame[name]):
            frame[name] = _inert_text(frame[name])
    frame.columns = list(_inert_text(pd.Series([str(name) for name in frame.columns], dtype="string")))
    return frame


def _stage_delivery(
    feeds_dir: Path, report: FeedReport, results: list[ExportResult], log: list[dict[str, object]]
) -> None:
    """Write the delivery's report, summary and quarantine, and the delivery log with it, under ``feeds_dir``."""
    folder = delivery_folder(feeds_dir, report.delivery)
    folder.mkdir(parents=True, exist_ok=True)
    report.write(folder / "report.json")
    report.write(feeds_dir / "report.json")
    (folder / "summary.txt").write_text(report.summary() + "\n", encoding="utf-8")
    problems = [frame for frame in (result.problems for result in results) if len(frame)]
    if problems:
        quarantine = pd.concat(problems, ignore_index=True)[list(QUARANTINE_COLUMNS)]
        _inert_formulas(quarantine).to_csv(folder / "quarantine.csv", index=False)
    for result in results:
        if len(result.rejected):
            rejected_dir = folder / "rejected"
            rejected_dir.mkdir(exist_ok=True)
            _inert_formulas(result.rejected).to_csv(rejected_dir / f"{result.spec.feed}.csv", index=False)
    files = [
        {
            "feed": entry.feed,
            "file": entry.file,
            "sha256": entry.sha256,
            "rows": entry.rows,
            "quarantined": entry.quarantined,
        }
        for entry in report.files
        if entry.feed is not None and entry.status == "read"
    ]
    log.append(
        {
            "delivery": report.delivery,
            "started_at": report.started_at,
            "as_of": report.as_of,
            "source_dir": report.source_dir,
            "files": files,
        }
    )
    (feeds_dir / DELIVERIES_FILE).write_text(
        json.dumps(log, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
