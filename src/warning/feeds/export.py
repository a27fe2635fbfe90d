"""Read every file of one export in a delivery, then merge its checked rows into the export's stored rows.

``read_export`` reads the files and gathers their counts and problems. It
skips a file delivered before unless some of its rows were quarantined. ``merge_rows`` quarantines likely unit
errors and merges the other rows with ``warning.feeds.state.merge_delivery``,
so the latest delivery wins.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from warning.feeds.check import DeliveryRun, read_file, value_columns
from warning.feeds.identity import shown_file_name
from warning.feeds.parse import no_problems
from warning.feeds.read import FeedFileError
from warning.feeds.report import FeedCounts, FileReport
from warning.feeds.rescore import rescore_rows
from warning.feeds.spec import ExportSpec
from warning.feeds.state import LINEAGE_COLUMNS, MergeResult, key_columns, merge_delivery

logger = logging.getLogger(__name__)

UNIT_ERROR = "likely unit error: amount far above the usual level"
ALREADY_DELIVERED = "file already delivered"


@dataclass
class ExportResult:
    """What one export's files did in this delivery, gathered over files and partitions."""

    spec: ExportSpec
    counts: FeedCounts
    files: list[FileReport]
    problem_parts: list[pd.DataFrame] = field(default_factory=list)
    rejected: pd.DataFrame = field(default_factory=pd.DataFrame)
    # The checked rows of this delivery, for an export kept whole (roster and poverty lines).
    delivered: pd.DataFrame | None = None
    already_merged: int = 0
    changed: bool = False
    history: pd.DataFrame | None = None
    rescore_parts: list[pd.DataFrame] = field(default_factory=list)

    @property
    def problems(self) -> pd.DataFrame:
        parts = [part for part in self.problem_parts if len(part)]
        return pd.concat(parts, ignore_index=True) if parts else no_problems().assign(feed="", file="")

    def add_merge(self, merge: MergeResult, latest_before: pd.Timestamp | None) -> None:
        """Count what merging the delivered rows of one partition (or of the whole feed) did."""
        self.counts.kept += len(merge.kept)
        self.counts.corrected += len(merge.corrected_before)
        self.counts.merged += len(merge.merged_rows)
        self.changed |= merge.changed
        rescore = rescore_rows(self.spec, merge, latest_before)
        if len(rescore):
            self.rescore_parts.append(rescore)

    def finish(self) -> None:
        """Complete the counts once every partition is merged, and check that no row was lost."""
        problems = self.problems
        self.counts.merged += self.already_merged
        self.counts.quarantined = (
            int(problems[["file", "row"]].drop_duplicates().shape[0]) if len(problems) else 0
        )
        self.counts.problems = {
            str(reason): int(count) for reason, count in problems["reason"].value_counts().items()
        }
        if len(problems):
            per_file = problems[["file", "row"]].drop_duplicates()["file"].value_counts()
            for report in self.files:
                if report.status == "read":
                    report.quarantined = int(per_file.get(report.file, 0))
        self.counts.check_balance()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _shown_names(paths: list[Path]) -> list[str]:
    """Return the masked name of each file, numbered where two files of an export mask to the same name.

    Counts and quarantine rows are kept per shown name, so two files must not share one.
    """
    names: list[str] = []
    for path in paths:
        name = shown_file_name(path)
        copy = 2
        while name in names:
            name = f"{shown_file_name(path)} ({copy})"
            copy += 1
        names.append(name)
    return names


def read_export(
    spec: ExportSpec,
    paths: list[Path],
    run: DeliveryRun,
    seen: dict[tuple[str, str], tuple[int, int, int]],
    spill_dir: Path | None,
    partitions: int,
) -> ExportResult:
    """Read, check and link the files of one export, one file in memory at a time.

    The checked rows of a partitioned export go to ``spill_dir``, one file
    per delivered file and partition; those of other exports are kept in
    ``delivered``.
    """
    names = _shown_names(paths)
    counts = FeedCounts(feed=spec.feed, files=names)
    result = ExportResult(spec, counts, files=[])
    rejected_parts: list[pd.DataFrame] = []
    row_parts: list[pd.DataFrame] = []
    for position, path in enumerate(paths):
        report = FileReport(file=names[position], feed=spec.feed, status="read", sha256=_sha256(path))
        result.files.append(report)
        previous = seen.get((spec.feed, str(report.sha256)))
        if previous is not None and previous[2]:
            # Rows quarantined for want of another record (a roster, a household) may pass now.
            logger.info(
                "Reading %s of feed %s again: %d of its rows were quarantined in delivery %d",
                report.file,
                spec.feed,
                previous[2],
                previous[0],
            )
        elif previous is not None:
            report.status = f"{ALREADY_DELIVERED} in delivery {previous[0]}"
            report.rows = previous[1]
            result.counts.read += previous[1]
            result.already_merged += previous[1]
            logger.info(
                "Skipped %s of feed %s: the same file came in delivery %d",
                report.file,
                spec.feed,
                previous[0],
            )
            continue
        try:
            read = read_file(spec, path, run, report, spill_dir, position, partitions)
        except FeedFileError as error:
            report.status = "failed"
            report.error = error.message
            logger.error("Could not read %s: %s", report.file, error.message)
            continue
        result.counts.read += read.rows
        result.counts.linked += read.linked
        result.problem_parts.extend(read.problems)
        rejected_parts.extend(read.rejected)
        row_parts.extend(read.kept)
    if row_parts:
        result.delivered = pd.concat(row_parts, ignore_index=True)
    if rejected_parts:
        result.rejected = pd.concat(rejected_parts, ignore_index=True)
    return result


def read_spilled(spill_dir: Path, part: int) -> pd.DataFrame | None:
    """Return the spilled rows of one partition in delivery order (file order, then row)."""
    paths = sorted((spill_dir / f"part-{part:04d}").glob("*.parquet"))
    if not paths:
        return None
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)


def unit_errors(
    spec: ExportSpec, rows: pd.DataFrame, state: pd.DataFrame | None, run: DeliveryRun
) -> tuple[np.ndarray, np.ndarray]:
    """Flag rows whose amount is ``unit_error_ratio`` times the usual level of their entity or more.

    The entity is the feed key without its month or date columns (a person for
    wages, a household and income source for household income). Its usual
    level is a high quantile (``unit_level_quantile``, taken at a row, not
    between rows) of the entity's stored and delivered amounts: not the
    median, because a business closed for most months and then reopened has
    a median near zero and would have every month of trade flagged. With the
    upper quartile, up to a quarter of an entity's rows can be unit errors and
    still be caught. Only entities with at least ``unit_min_rows`` rows are
    judged. Returns the flags and the usual levels, in the order of ``rows``.
    """
    column = str(spec.unit_check)
    dated = {"month", "date"}
    entity = [
        key
        for name, key in zip(spec.key, key_columns(len(spec.key)), strict=True)
        if spec.columns[name].type not in dated
    ]
    pool = rows[entity + [column]]
    if state is not None and len(state):
        pool = pd.concat([state[entity + [column]], pool], ignore_index=True)
    grouped = pool[column].abs().groupby([pool[name] for name in entity], dropna=False)
    level = grouped.quantile(run.unit_level_quantile, interpolation="lower")
    stats = pd.DataFrame({"_level": level, "_count": grouped.size()}).reset_index()
    stats.columns = entity + ["_level", "_count"]
    joined = rows[entity + [column]].reset_index(drop=True).merge(stats, on=entity, how="left")
    usual = joined["_level"].to_numpy(dtype="float64")
    judged = (joined["_count"] >= run.unit_min_rows).to_numpy() & (usual > 0)
    flagged = judged & (joined[column].abs().to_numpy(dtype="float64") >= run.unit_error_ratio * usual)
    return flagged, usual


def merge_rows(
    result: ExportResult, delivered: pd.DataFrame, state: pd.DataFrame | None, run: DeliveryRun
) -> MergeResult:
    """Quarantine likely unit errors among delivered rows, then merge the rest into ``state``."""
    spec = result.spec
    values = value_columns(spec)
    if spec.unit_check is not None:
        flagged, usual = unit_errors(spec, delivered, state, run)
        if flagged.any():
            bad = delivered[flagged]
            result.problem_parts.append(
                pd.DataFrame(
                    {
                        "row": bad["_row"].to_numpy(),
                        "column": next(
                            item.source for item in spec.mapping if item.target == spec.unit_check
                        ),
                        "value": bad[spec.unit_check].astype(str).to_numpy(),
                        "reason": UNIT_ERROR,
                        "detail": [f"usual level {value:.2f}" for value in usual[flagged]],
                        "feed": spec.feed,
                        "file": bad["_file"].to_numpy(),
                    }
                )
            )
            delivered = delivered[~flagged]
            logger.warning("Quarantined %d rows of %s as likely unit errors", len(bad), spec.feed)
    keys = key_columns(len(spec.key))
    columns = keys + values + list(LINEAGE_COLUMNS)
    merge = merge_delivery(
        state if state is not None else delivered.iloc[0:0][columns],
        delivered[columns],
        keys,
        values,
        run.delivery,
    )
    result.add_merge(merge, run.latest_month_before)
    return merge
