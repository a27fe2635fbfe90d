"""The record of one ingest run: counts per table, problems by reason, files and time."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

TableStatus = Literal["ingested", "absent", "failed"]


@dataclass
class TableReport:
    """What happened to one contract table.

    ``status`` is ``ingested`` when the table was validated and written,
    ``absent`` when the dataset has no file for it, and ``failed`` when its file
    could not be read as a whole (``error`` gives the reason). Counts are rows, so a row
    with three problems counts once in ``rows_quarantined`` and three times in
    ``problems``.
    """

    table: str
    status: TableStatus
    file: str | None = None
    rows_read: int = 0
    rows_kept: int = 0
    rows_quarantined: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    dropped_columns: list[str] = field(default_factory=list)
    null_filled_columns: list[str] = field(default_factory=list)
    quarantine_file: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.rows_read != self.rows_kept + self.rows_quarantined:
            raise ValueError(
                f"table {self.table}: {self.rows_read} rows read but {self.rows_kept} kept "
                f"and {self.rows_quarantined} quarantined"
            )


@dataclass
class IngestReport:
    """The outcome of one ingest run, written as ``ingest_report.json`` in the store folder."""

    source_dir: str
    store_dir: str
    dataset: str
    tables: dict[str, TableReport]
    ignored_files: list[str] = field(default_factory=list)
    started_at: str = ""
    elapsed_seconds: float = 0.0

    @property
    def problems(self) -> dict[str, int]:
        """Return the number of problems per reason over all tables, most frequent first."""
        counts: Counter[str] = Counter()
        for table in self.tables.values():
            counts.update(table.problems)
        return dict(counts.most_common())

    @property
    def failed_tables(self) -> list[str]:
        return [name for name, table in self.tables.items() if table.status == "failed"]

    @property
    def rows_quarantined(self) -> int:
        return sum(table.rows_quarantined for table in self.tables.values())

    def to_dict(self) -> dict[str, object]:
        body = asdict(self)
        body["problems"] = self.problems
        return body

    def write(self, path: Path) -> None:
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> IngestReport:
        """Read a report written by ``write``."""
        body = json.loads(Path(path).read_text(encoding="utf-8"))
        body.pop("problems", None)
        body["tables"] = {name: TableReport(**table) for name, table in body["tables"].items()}
        return cls(**body)

    def summary(self) -> str:
        """Return a few lines for a terminal: one per table, then the problem counts per table and reason."""
        lines = [
            f"Ingested {self.dataset} from {self.source_dir} into {self.store_dir} "
            f"in {self.elapsed_seconds:.1f} s",
            f"{'table':<16}{'file':<24}{'read':>12}{'kept':>12}{'quarantined':>13}",
        ]
        for table in self.tables.values():
            if table.status == "ingested":
                lines.append(
                    f"{table.table:<16}{table.file or '':<24}{table.rows_read:>12,}{table.rows_kept:>12,}"
                    f"{table.rows_quarantined:>13,}"
                )
            elif table.status == "absent":
                lines.append(f"{table.table:<16}{'(no file)':<24}")
            else:
                lines.append(f"{table.table:<16}{table.file or '':<24}  FAILED: {table.error}")
        for table in self.tables.values():
            if table.dropped_columns:
                lines.append(f"{table.file}: dropped unknown columns {', '.join(table.dropped_columns)}")
        if self.ignored_files:
            lines.append(f"Ignored files: {', '.join(self.ignored_files)}")
        if self.problems:
            lines.append("Problems, with the rows in quarantine/ of the store:")
        for table in self.tables.values():
            for reason, count in table.problems.items():
                lines.append(f"{count:>12,}  {table.table}: {reason}")
        return "\n".join(line.rstrip() for line in lines)
