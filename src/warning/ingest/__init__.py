"""Ingest: validate a dataset folder against the data contract and write the typed store.

``ingest(source_dir, store_dir)`` reads each contract table, checks it with
pandera schemas built from ``warning.contract.TABLES``, writes the rows that pass
with ``warning.store.write_table`` and quarantines the others with the reason,
so that no row is lost silently.
"""

from warning.ingest.pipeline import QUARANTINE_DIR, REPORT_FILE, ingest
from warning.ingest.problems import QUARANTINE_COLUMNS, IngestError, TableFileError
from warning.ingest.report import IngestReport, TableReport
from warning.ingest.schemas import key_schema, raw_schema, table_schema

__all__ = [
    "QUARANTINE_COLUMNS",
    "QUARANTINE_DIR",
    "REPORT_FILE",
    "IngestError",
    "IngestReport",
    "TableFileError",
    "TableReport",
    "ingest",
    "key_schema",
    "raw_schema",
    "table_schema",
]
