"""Reading one delivered feed file as text cells, with row numbers and the encoding used.

CSV files are read as UTF-8 (with or without a byte order mark). A file that
is not valid UTF-8 but decodes as GB18030, the superset of GBK that Chinese
government systems export, is decoded as such, and the report notes it. A file
that is neither is rejected whole with a message naming the first bad byte.
Parquet files are read and every column is turned into text, so that both
formats go through the same checks.

``row`` numbers data rows from 1, not counting the header, as ``warning.ingest`` does.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warning.feeds.identity import mask_identities_in_text

logger = logging.getLogger(__name__)

MALFORMED_ROW = "wrong number of fields"


class FeedFileError(Exception):
    """A delivered file that cannot be read as a whole."""

    def __init__(self, feed: str, path: Path, message: str) -> None:
        self.feed = feed
        self.path = Path(path)
        self.message = message
        super().__init__(f"feed {feed}, file {self.path.name}: {message}")


@dataclass
class FeedFile:
    """One delivered file as text: cells trimmed, an empty cell missing, rows numbered from 1."""

    feed: str
    path: Path
    frame: pd.DataFrame
    encoding: str
    malformed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.malformed)


def _decode(path: Path, feed: str) -> tuple[bytes, str]:
    """Return the file as UTF-8 bytes and the name of the encoding it was in."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            line = data[: utf8_error.start].count(b"\n") + 1
            raise FeedFileError(
                feed,
                path,
                f"not valid UTF-8 or GBK: byte {utf8_error.start} (line {line}) cannot be decoded; "
                "export the file as UTF-8",
            ) from utf8_error
        logger.warning("Decoded %s as GB18030 (GBK), because it is not valid UTF-8", path)
        return text.encode("utf-8"), "gb18030"
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :], "utf-8-sig"
    return data, "utf-8"


def _read_csv(path: Path, feed: str) -> FeedFile:
    data, encoding = _decode(path, feed)
    if not data.strip():
        raise FeedFileError(feed, path, "the file is empty")
    header = next(csv.reader(io.StringIO(data.split(b"\n", 1)[0].decode("utf-8"))), [])
    if not any(name.strip() for name in header):
        raise FeedFileError(feed, path, "the first line is blank; expected the header row")
    skipped: list[int] = []
    malformed: list[tuple[int, str]] = []

    def handle_invalid_row(row: pcsv.InvalidRow) -> str:
        # Row numbers count the header as row 1 when pyarrow reads on one thread.
        data_row = int(row.number) - 1 if row.number is not None else -1
        skipped.append(data_row)
        if row.text.strip():
            malformed.append((data_row, mask_identities_in_text(row.text)))
        return "skip"

    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(
                invalid_row_handler=handle_invalid_row, newlines_in_values=True, ignore_empty_lines=False
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise FeedFileError(feed, path, f"could not read as CSV: {error}") from error
    names = [name.strip() for name in table.column_names]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FeedFileError(feed, path, f"column names repeated in the header: {repeated}")
    frame = _text_frame(table.rename_columns(names))
    total = len(frame) + len(skipped)
    is_data = np.ones(total, dtype=bool)
    is_data[[row - 1 for row in skipped if row >= 1]] = False
    frame.index = pd.Index(np.arange(1, total + 1, dtype="int64")[is_data], name="row")
    return FeedFile(feed, path, frame, encoding, malformed)


def _read_parquet(path: Path, feed: str) -> FeedFile:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise FeedFileError(feed, path, f"could not read as Parquet: {error}") from error
    frame = _text_frame(table.rename_columns([name.strip() for name in table.column_names]))
    frame.index = pd.Index(np.arange(1, len(frame) + 1, dtype="int64"), name="row")
    return FeedFile(feed, path, frame, "parquet")


def _text_frame(table: pa.Table) -> pd.DataFrame:
    """Return every column as trimmed text, with an empty cell as missing."""
    columns = {}
    for name, values in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if pa.types.is_floating(values.type):
            # Whole numbers stored as floats print as "12.0"; keep them as "12" like a CSV export.
            whole = pc.equal(values, pc.floor(values))
            as_int = pc.cast(pc.if_else(whole, values, pa.scalar(None, values.type)), pa.int64(), safe=False)
            text = pc.if_else(whole, pc.cast(as_int, pa.string()), pc.cast(values, pa.string()))
        else:
            text = values.cast(pa.string())
        trimmed = pc.utf8_trim_whitespace(text)
        columns[name] = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    frame = (
        pa.table(columns).to_pandas(types_mapper=lambda _: pd.StringDtype()) if columns else pd.DataFrame()
    )
    return frame


def read_feed_file(path: Path, feed: str) -> FeedFile:
    """Read one delivered file; raises ``FeedFileError`` for a problem with the whole file."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise FeedFileError(feed, path, "the file is empty")
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, feed)
    if path.suffix.lower() in (".csv", ".txt"):
        return _read_csv(path, feed)
    raise FeedFileError(feed, path, f"unsupported file type {path.suffix!r}; deliver .csv or .parquet")
