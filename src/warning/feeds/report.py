"""The record of one feed delivery: counts per feed, files, problems, conflicts and re-scoring."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path


def delivery_folder(feeds_dir: Path, delivery: int) -> Path:
    """Return the folder of one delivery's report, summary and quarantine under a store's ``feeds`` folder."""
    return Path(feeds_dir) / "deliveries" / f"{delivery:04d}"


@dataclass
class FeedCounts:
    """Rows of one feed in one delivery.

    Every row read ends in exactly one of ``kept`` (stored as current),
    ``quarantined`` (rejected with a reason) and ``merged`` (a repeat of a
    stored row, replaced by a later row of the same delivery, or a row of a
    file delivered before, whatever became of it then). ``linked``
    counts rows whose identity number matched a person of the household
    roster, ``corrected`` the kept rows that replaced a stored row with other
    values, and ``superseded`` the contract rows of this feed that another
    feed's row replaced.
    """

    feed: str
    files: list[str] = field(default_factory=list)
    read: int = 0
    linked: int = 0
    kept: int = 0
    corrected: int = 0
    quarantined: int = 0
    merged: int = 0
    superseded: int = 0
    problems: dict[str, int] = field(default_factory=dict)

    def check_balance(self) -> None:
        """Raise ``RuntimeError`` unless read = kept + quarantined + merged."""
        if self.read != self.kept + self.quarantined + self.merged:
            raise RuntimeError(
                f"feed {self.feed}: {self.read} rows read but {self.kept} kept, "
                f"{self.quarantined} quarantined and {self.merged} merged"
            )


@dataclass
class FileReport:
    """One delivered file: which feed read it, in which encoding, and what was wrong with it as a whole."""

    file: str
    feed: str | None
    status: str
    rows: int = 0
    encoding: str | None = None
    sha256: str | None = None
    # Rows of this file that the delivery quarantined; a file with any is read again when delivered again.
    quarantined: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    error: str | None = None

    def notes(self) -> list[str]:
        """Return what a reader of the report should know about the file, empty when it was read cleanly."""
        notes = [] if self.status == "read" else [self.status]
        if self.error:
            notes.append(self.error)
        if self.encoding == "gb18030":
            notes.append("decoded as GB18030 (GBK)")
        if self.dropped_columns:
            notes.append(f"ignored columns {', '.join(self.dropped_columns)}")
        if self.missing_columns:
            notes.append(f"missing columns {', '.join(self.missing_columns)}{self._renamed_hint()}")
        return notes

    def _renamed_hint(self) -> str:
        """Return which ignored columns look like a missing one renamed, such as 身份证号码 for 身份证号."""
        pairs = []
        for name in self.missing_columns:
            close = difflib.get_close_matches(name, self.dropped_columns, n=1, cutoff=0.6)
            if close:
                pairs.append(f"{close[0]} for {name}")
        return f" (perhaps renamed: {', '.join(pairs)})" if pairs else ""


@dataclass
class FeedReport:
    """The outcome of one delivery, written as ``feeds/report.json`` and kept per delivery."""

    delivery: int
    source_dir: str
    store_dir: str
    as_of: str
    started_at: str
    feeds: dict[str, FeedCounts]
    files: list[FileReport] = field(default_factory=list)
    changed: bool = False
    conflicts: dict[str, int] = field(default_factory=dict)
    unit_errors: int = 0
    rescore_households: int = 0
    store_rows: dict[str, int] = field(default_factory=dict)
    contract_quarantined: int = 0
    elapsed_seconds: float = 0.0
    # Seconds spent reading and checking files, merging into the feed state, and building the store.
    phase_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def problems(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for feed in self.feeds.values():
            counts.update(feed.problems)
        return dict(counts.most_common())

    @property
    def totals(self) -> dict[str, int]:
        names = ("read", "linked", "kept", "corrected", "quarantined", "merged", "superseded")
        return {name: sum(getattr(feed, name) for feed in self.feeds.values()) for name in names}

    def to_dict(self) -> dict[str, object]:
        body = asdict(self)
        body["totals"] = self.totals
        body["problems"] = self.problems
        return body

    def write(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(
            json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    @classmethod
    def read(cls, path: Path) -> FeedReport:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
        body.pop("totals", None)
        body.pop("problems", None)
        body["feeds"] = {name: FeedCounts(**counts) for name, counts in body["feeds"].items()}
        body["files"] = [FileReport(**entry) for entry in body["files"]]
        return cls(**body)

    def summary(self) -> str:
        """Return a table of counts per feed, then file problems, conflicts and problem counts."""
        lines = [
            f"Delivery {self.delivery} from {self.source_dir} into {self.store_dir} "
            f"(as of {self.as_of}) in {self.elapsed_seconds:.1f} s",
            f"{'feed':<44}{'read':>10}{'linked':>10}{'kept':>10}{'corrected':>10}{'quarantined':>12}"
            f"{'merged':>10}{'superseded':>11}",
        ]
        for counts in [*self.feeds.values()]:
            if not counts.read and not counts.superseded:
                continue
            lines.append(
                f"{counts.feed:<44}{counts.read:>10,}{counts.linked:>10,}{counts.kept:>10,}"
                f"{counts.corrected:>10,}{counts.quarantined:>12,}{counts.merged:>10,}{counts.superseded:>11,}"
            )
        totals = self.totals
        lines.append(
            f"{'total':<44}{totals['read']:>10,}{totals['linked']:>10,}{totals['kept']:>10,}"
            f"{totals['corrected']:>10,}{totals['quarantined']:>12,}{totals['merged']:>10,}{totals['superseded']:>11,}"
        )
        for entry in self.files:
            notes = entry.notes()
            if notes:
                lines.append(f"File {entry.file}: {'; '.join(notes)}")
        for table, count in self.conflicts.items():
            lines.append(
                f"{count:,} rows of {table} in the store lost to another feed's row with the same key "
                "(the latest delivery wins, then the lower precedence; see feeds/conflicts/)"
            )
        if self.unit_errors:
            lines.append(f"{self.unit_errors:,} rows quarantined as likely unit errors")
        if self.rescore_households:
            lines.append(f"{self.rescore_households:,} households marked for re-scoring (rescore.parquet)")
        if not self.changed:
            lines.append("The delivery changed nothing in the store")
        if self.problems:
            quarantine = delivery_folder(Path(self.store_dir) / "feeds", self.delivery) / "quarantine.csv"
            lines.append(f"Quarantined rows by reason (file, row, column, masked value and reason in {quarantine}):")
        for feed in self.feeds.values():
            for reason, count in feed.problems.items():
                lines.append(f"{count:>10,}  {feed.feed}: {reason}")
        return "\n".join(line.rstrip() for line in lines)
