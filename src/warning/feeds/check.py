"""Read, check and link one delivered file, block by block.

Each block of a file is parsed column by column against its export's
declared source schema. Its identity numbers are then hashed and its persons
linked to households through the roster. Last, its rows are mapped onto the
contract table and checked with the contract's pandera schema. A row that
fails any check goes to the problems with the file, row, column, cell
(identity numbers masked) and reason. The other rows are kept, or spilled
to disk by partition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandera.errors import SchemaErrors

from warning.contract import TABLES
from warning.feeds.identity import (
    IdentityHasher,
    mask_identities,
    mask_identities_in_cells,
    mask_identities_in_text,
)
from warning.feeds.parse import MISSING_COLUMN, MISSING_VALUE, no_problems, parse_column, problem_frame
from warning.feeds.partitions import partition_of
from warning.feeds.read import MALFORMED_ROW, FeedFile, FeedFileError, iter_feed_file
from warning.feeds.regions import RegionCodes
from warning.feeds.report import FileReport
from warning.feeds.spec import ExportSpec
from warning.feeds.state import key_columns
from warning.ingest import table_schema
from warning.ingest.schemas import VALIDATION_DTYPES, row_rules

logger = logging.getLogger(__name__)

EMPTY_ROW = "empty row"
NOT_IN_ROSTER = "person not in the household roster"
HEAD_NOT_IN_ROSTER = "head's household not in the household roster"


@dataclass
class DeliveryRun:
    """Configuration and roster shared by the exports of one delivery."""

    delivery: int
    as_of: pd.Timestamp
    regions: RegionCodes
    hasher: IdentityHasher
    feeds_dir: Path
    unit_error_ratio: float
    unit_min_rows: int
    unit_level_quantile: float
    block_bytes: int
    households: pd.Index = field(default_factory=lambda: pd.Index([], dtype="string"))
    members: pd.Series = field(default_factory=lambda: pd.Series(dtype="string"))
    latest_month_before: pd.Timestamp | None = None


def _check_file(
    spec: ExportSpec, feed_file: FeedFile, run: DeliveryRun, report: FileReport
) -> tuple[pd.DataFrame, dict[str, pd.Series], pd.DataFrame]:
    """Parse the declared columns of one file block.

    Returns the block without its empty rows, the typed columns of those
    rows, and the problems of every row (an empty row is one).
    """
    frame = feed_file.frame
    dropped = [mask_identities_in_text(str(name)) for name in frame.columns if name not in spec.columns]
    if dropped and not report.dropped_columns:
        logger.warning(
            "Ignored columns %s of %s: feed %s does not declare them", dropped, report.file, spec.feed
        )
    report.dropped_columns = dropped
    absent = [name for name in spec.columns if name not in frame.columns]
    report.missing_columns = [name for name in absent if not spec.columns[name].optional]
    parts = [
        problem_frame(
            pd.Index([row for row, _ in feed_file.malformed]),
            "",
            pd.Series([text for _, text in feed_file.malformed], dtype=object),
            MALFORMED_ROW,
        )
    ]
    empty = frame.isna().all(axis=1) if len(frame.columns) else pd.Series(True, index=frame.index)
    parts.append(problem_frame(frame.index[empty], "", "", EMPTY_ROW))
    frame = frame[~empty]
    found = mask_identities_in_text(", ".join(str(name) for name in frame.columns))
    for name in report.missing_columns:
        parts.append(problem_frame(frame.index, name, "", MISSING_COLUMN, f"the file has columns {found}"))
    typed: dict[str, pd.Series] = {}
    for name, column in spec.columns.items():
        if name not in frame.columns:
            typed[name] = pd.Series(pd.NA, index=frame.index, dtype="string")
            continue
        region_cells = frame[column.region_column] if column.region_column in frame.columns else None
        parsed = parse_column(
            column, frame[name], as_of=run.as_of, regions=run.regions, region_cells=region_cells
        )
        typed[name] = parsed.values
        parts.append(parsed.problems)
    problems = pd.concat([part for part in parts if len(part)] or [no_problems()], ignore_index=True)
    return frame, typed, problems


def _unlinked_rows(
    spec: ExportSpec, frame: pd.DataFrame, column: str, missing: pd.Series, reason: str, detail: pd.Series
) -> pd.DataFrame:
    """Return the problems of rows whose id in ``column`` is not in the household roster, with cells masked."""
    rows = frame.index[missing]
    return problem_frame(rows, column, _shown_cells(spec, frame, column, rows), reason, detail)


def _shown_cells(spec: ExportSpec, frame: pd.DataFrame, column: str, rows: np.ndarray) -> pd.Series:
    if column not in frame.columns:
        return pd.Series("", index=rows, dtype="string")
    cells = frame[column].reindex(rows)
    if spec.columns[column].type == "identity":
        return mask_identities(cells)
    return mask_identities_in_cells(cells)


def _link(
    spec: ExportSpec, typed: dict[str, pd.Series], frame: pd.DataFrame, run: DeliveryRun
) -> tuple[dict[str, pd.Series], pd.DataFrame, pd.Series]:
    """Hash identity numbers and look households up; return mapped columns, problems and which rows linked."""
    index = frame.index
    mapped: dict[str, pd.Series] = {}
    parts = []
    linked = pd.Series(False, index=index)
    for item in spec.mapping:
        if item.value is not None:
            mapped[item.target] = pd.Series(item.value, index=index)
            continue
        values = typed[str(item.source)]
        if spec.role == "members" and item.target == "head":
            households = run.hasher.hash_series("household", values)
            known = households.isin(run.households).fillna(False).astype(bool)
            missing = values.notna() & ~known
            detail = "household id " + households[missing].fillna("")
            parts.append(_unlinked_rows(spec, frame, str(item.source), missing, HEAD_NOT_IN_ROSTER, detail))
            mapped["household_id"] = households.where(known)
            linked = known
        elif spec.role == "members" or item.link == "person":
            mapped["person" if spec.role == "members" else item.target] = run.hasher.hash_series(
                "person", values
            )
        elif item.link == "head":
            mapped[item.target] = run.hasher.hash_series("household", values)
            linked = values.notna()
        elif item.link == "household":
            persons = run.hasher.hash_series("person", values)
            positions = run.members.index.get_indexer(persons.fillna(""))
            households = pd.Series(
                np.where(
                    positions >= 0,
                    run.members.to_numpy(dtype=object)[np.maximum(positions, 0)]
                    if len(run.members)
                    else None,
                    None,
                ),
                index=index,
                dtype="string",
            )
            missing = values.notna() & households.isna()
            detail = "person id " + persons[missing].fillna("")
            parts.append(_unlinked_rows(spec, frame, str(item.source), missing, NOT_IN_ROSTER, detail))
            mapped[item.target] = households
            linked = households.notna()
        else:
            mapped[item.target] = values
    problems = pd.concat([part for part in parts if len(part)] or [no_problems()], ignore_index=True)
    return mapped, problems, linked


def _contract_frame(spec: ExportSpec, mapped: dict[str, pd.Series], index: pd.Index) -> pd.DataFrame:
    """Return the mapped rows as a contract table in the validation dtypes of ``warning.ingest``."""
    table = TABLES[str(spec.target)]
    dtypes = VALIDATION_DTYPES
    columns = {}
    for column in table.columns:
        values = mapped.get(column.name, pd.Series(pd.NA, index=index))
        columns[column.name] = values.astype(dtypes[column.kind])
    return pd.DataFrame(columns, index=index)


def _contract_problems(spec: ExportSpec, contract: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Check mapped rows with the contract schema and return a problem per failed check."""
    table = TABLES[str(spec.target)]
    try:
        table_schema(table, validation_dtypes=True).validate(contract, lazy=True)
    except SchemaErrors as error:
        cases = error.failure_cases
    else:
        return no_problems()
    rule_columns = {rule.reason: rule.column for rule in row_rules(0.01)}
    cases = cases[cases["index"].notna()]
    sources = {item.target: item.source for item in spec.mapping}
    parts = []
    for (check, column), group in cases.groupby(["check", "column"], dropna=False):
        reason = MISSING_VALUE if check == "not_nullable" else str(check)
        target = rule_columns.get(reason, column)
        rows = np.unique(group["index"].astype("int64").to_numpy())
        source = sources.get(str(target)) or str(target)
        shown = (
            _shown_cells(spec, frame, source, rows) if source in spec.columns else pd.Series("", index=rows)
        )
        detail = f"contract column {table.name}.{target}"
        parts.append(problem_frame(pd.Index(rows), source, shown, reason, detail))
    problems = pd.concat(parts, ignore_index=True) if parts else no_problems()
    return problems.drop_duplicates(["row", "column", "reason"])


def _keys(
    spec: ExportSpec, typed: dict[str, pd.Series], frame: pd.DataFrame, run: DeliveryRun
) -> pd.DataFrame:
    """Return the feed's own key: person ids for identity columns, other cells as delivered."""
    keys = {}
    for name, position in zip(spec.key, key_columns(len(spec.key)), strict=True):
        if spec.columns[name].type == "identity":
            keys[position] = run.hasher.hash_series("person", typed[name])
        else:
            keys[position] = (
                frame[name].astype("string")
                if name in frame.columns
                else pd.Series(pd.NA, index=frame.index, dtype="string")
            )
    return pd.DataFrame(keys, index=frame.index)


def value_columns(spec: ExportSpec) -> list[str]:
    if spec.role == "members":
        return ["person", "household_id"]
    return TABLES[str(spec.target)].column_names


@dataclass
class FileRows:
    """What reading one delivered file gave: rows read and linked, problems, rejected rows, checked rows."""

    rows: int = 0
    linked: int = 0
    problems: list[pd.DataFrame] = field(default_factory=list)
    rejected: list[pd.DataFrame] = field(default_factory=list)
    kept: list[pd.DataFrame] = field(default_factory=list)


def read_file(
    spec: ExportSpec,
    path: Path,
    run: DeliveryRun,
    report: FileReport,
    spill_dir: Path | None,
    position: int,
    partitions: int,
) -> FileRows:
    """Read, check and link one file block by block; checked rows are spilled or returned in ``kept``.

    Raises ``FeedFileError`` for a problem with the whole file, after removing
    what its earlier blocks spilled, so that a file is taken whole or not at all.
    """
    read = FileRows()
    values = value_columns(spec)
    try:
        for block, feed_file in enumerate(iter_feed_file(path, spec.feed, run.block_bytes)):
            report.encoding = feed_file.encoding
            read.rows += feed_file.rows_read
            frame, typed, problems = _check_file(spec, feed_file, run, report)
            clean = ~frame.index.isin(problems["row"])
            mapped, link_problems, linked = _link(spec, typed, frame, run)
            read.linked += int((linked & clean).sum())
            problems = pd.concat(
                [problems, link_problems[link_problems["row"].isin(frame.index[clean])]], ignore_index=True
            )
            clean = ~frame.index.isin(problems["row"])
            if spec.role == "members":
                rows = pd.DataFrame({name: mapped[name] for name in values}, index=frame.index)
            else:
                rows = _contract_frame(spec, mapped, frame.index)
                contract_problems = _contract_problems(spec, rows[clean], frame)
                problems = pd.concat([problems, contract_problems], ignore_index=True)
            clean = ~frame.index.isin(problems["row"])
            rows = pd.concat([_keys(spec, typed, frame, run), rows], axis=1)[clean]
            rows = rows.assign(
                _delivery=run.delivery, _file=report.file, _row=rows.index.to_numpy(dtype="int64")
            )
            if spill_dir is None:
                read.kept.append(rows)
            else:
                spill(
                    rows.reset_index(drop=True),
                    _entity_column(spec),
                    spill_dir,
                    f"{position:06d}-{block:06d}",
                    partitions,
                )
            read.problems.append(problems.assign(feed=spec.feed, file=report.file))
            if len(problems):
                bad_rows = np.unique(problems["row"].to_numpy(dtype="int64"))
                read.rejected.append(_rejected_rows(spec, feed_file, bad_rows, report.file))
    except FeedFileError:
        if spill_dir is not None:
            for spilled in spill_dir.glob(f"part-*/{position:06d}-*.parquet"):
                spilled.unlink()
        raise
    report.rows = read.rows
    return read


def _entity_column(spec: ExportSpec) -> str:
    """Return the column that places a partitioned export's rows: the person id of its key's identity number.

    Placing rows by person, not household, keeps every row of a key in one
    partition when the roster moves the person to another household, so a
    later row for that key still replaces the stored one.
    """
    for name, column in zip(spec.key, key_columns(len(spec.key)), strict=True):
        if spec.columns[name].type == "identity":
            return column
    return "household_id"


def spill(rows: pd.DataFrame, column: str, spill_dir: Path, name: str, partitions: int) -> None:
    """Write one block's checked rows to ``spill_dir/part-NNNN/<name>.parquet``, partitioned by ``column``."""
    parts = partition_of(rows[column], partitions)
    for part in np.unique(parts):
        folder = spill_dir / f"part-{part:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        rows[parts == part].to_parquet(folder / f"{name}.parquet", index=False)


def _rejected_rows(spec: ExportSpec, feed_file: FeedFile, rows: np.ndarray, file: str) -> pd.DataFrame:
    """Return the rejected rows as read, identity numbers masked, with file and row number first."""
    frame = feed_file.frame.reindex(rows[np.isin(rows, feed_file.frame.index)]).copy()
    for name in frame.columns:
        if name in spec.columns and spec.columns[name].type == "identity":
            frame[name] = mask_identities(frame[name])
        else:
            frame[name] = mask_identities_in_cells(frame[name])
    frame.columns = [mask_identities_in_text(str(name)) for name in frame.columns]
    frame.insert(0, "row", frame.index.to_numpy())
    frame.insert(0, "file", file)
    return frame.reset_index(drop=True)
