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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warning.feeds.identity import mask_identities_in_text, shown_file_name

logger = logging.getLogger(__name__)

MALFORMED_ROW = "wrong number of fields"
# Rows are read in blocks of about this many bytes of text.
DEFAULT_BLOCK_BYTES = 64 * 2**20
_CHECK_BLOCK_BYTES = 16 * 2**20


class FeedFileError(Exception):
    """A delivered file that cannot be read as a whole."""

    def __init__(self, feed: str, path: Path, message: str) -> None:
        self.feed = feed
        self.path = Path(path)
        # Messages can quote header cells and byte sequences, which may hold identity numbers.
        self.message = mask_identities_in_text(message)
        super().__init__(f"feed {feed}, file {shown_file_name(self.path)}: {self.message}")


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


def _scan(path: Path, feed: str) -> str:
    """Return the encoding of a CSV file (``utf-8``, ``utf-8-sig`` or ``gb18030``), checking it block by block.

    Raises ``FeedFileError`` when a quoted field is never closed: the CSV
    reader would otherwise take the rest of the file as one cell. Quotes are
    counted as bytes, which is safe in GB18030 too (0x22 is never part of a
    multi-byte character there).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    lines = 0
    quotes = 0
    with path.open("rb") as handle:
        first = handle.read(len(codecs.BOM_UTF8))
        handle.seek(0)
        while block := handle.read(_CHECK_BLOCK_BYTES):
            quotes += block.count(b'"')
            try:
                decoder.decode(block)
            except UnicodeDecodeError as utf8_error:
                bad_byte = offset + utf8_error.start
                line = lines + block[: utf8_error.start].count(b"\n") + 1
                break
            offset += len(block)
            lines += block.count(b"\n")
        else:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as utf8_error:
                bad_byte, line = offset + utf8_error.start, lines + 1
            else:
                _check_quotes(path, feed, quotes)
                return "utf-8-sig" if first == codecs.BOM_UTF8 else "utf-8"
    gbk = codecs.getincrementaldecoder("gb18030")()
    quotes = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(_CHECK_BLOCK_BYTES):
                quotes += block.count(b'"')
                gbk.decode(block)
        gbk.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise FeedFileError(
            feed,
            path,
            f"not valid UTF-8 or GBK: byte {bad_byte} (line {line}) cannot be decoded; export the file as UTF-8",
        ) from error
    _check_quotes(path, feed, quotes)
    logger.warning("Decoding %s as GB18030 (GBK), because it is not valid UTF-8", shown_file_name(path))
    return "gb18030"


def _check_quotes(path: Path, feed: str, quotes: int) -> None:
    # A closed quoted field has an even number of quote characters, since a quote inside it is doubled.
    if quotes % 2:
        raise FeedFileError(
            feed,
            path,
            f"a quoted field is never closed: the file has an odd number ({quotes}) of double quotes; "
            "close the quote or double the quote character inside the field",
        )


def _header(path: Path, feed: str, encoding: str) -> list[str]:
    """Return the header's column names; raise ``FeedFileError`` when the file or its first line is blank."""
    with path.open("r", encoding=encoding, newline="") as handle:
        first_line = handle.readline()
        rest = first_line.strip() or handle.read(_CHECK_BLOCK_BYTES).strip()
    if not rest:
        raise FeedFileError(feed, path, "the file is empty")
    header = next(csv.reader(io.StringIO(first_line)), [])
    if not any(name.strip() for name in header):
        raise FeedFileError(feed, path, "the first line is blank; expected the header row")
    return header


def _data_rows(ordinals: np.ndarray, skipped: np.ndarray) -> np.ndarray:
    """Return the data row number of each good row, given by its ordinal among good rows (from 1).

    A good row's number is its ordinal plus the skipped rows before it, so it is
    the ordinal-th positive number not in ``skipped`` (sorted).
    """
    rows = ordinals.copy()
    while True:
        moved = ordinals + np.searchsorted(skipped, rows, side="right")
        if np.array_equal(moved, rows):
            return rows
        rows = moved


def _iter_csv(path: Path, feed: str, block_bytes: int) -> Iterator[FeedFile]:
    encoding = _scan(path, feed)
    header = _header(path, feed, encoding)
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
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(
                use_threads=False, block_size=block_bytes, encoding="utf8" if encoding != "gb18030" else encoding
            ),
            parse_options=pcsv.ParseOptions(
                invalid_row_handler=handle_invalid_row, newlines_in_values=True, ignore_empty_lines=False
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
            ),
        )
        names = [name.strip() for name in reader.schema.names]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise FeedFileError(feed, path, f"column names repeated in the header: {repeated}")
        good = 0
        reported = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            frame = _text_frame(pa.Table.from_batches([batch]).rename_columns(names))
            ordinals = np.arange(good + 1, good + len(frame) + 1, dtype="int64")
            frame.index = pd.Index(_data_rows(ordinals, np.sort(np.array(skipped, dtype="int64"))), name="row")
            good += len(frame)
            last = int(frame.index[-1]) if len(frame) else 0
            # Malformed lines before this block's last row belong to it; later ones to the next block.
            own = [entry for entry in malformed[reported:] if entry[0] <= last]
            reported += len(own)
            yield FeedFile(feed, path, frame, encoding, own)
    except pa.ArrowInvalid as error:
        if "straddling" in str(error):
            raise FeedFileError(
                feed,
                path,
                f"a row is longer than the read block of {block_bytes} bytes; "
                "raise POVWARN_FEED_BLOCK_MEGABYTES or check the file for a broken line",
            ) from error
        raise FeedFileError(feed, path, f"could not read as CSV: {error}") from error
    if reported < len(malformed) or good == 0:
        empty = pd.DataFrame({name: pd.Series(dtype="string") for name in names})
        empty.index = pd.Index([], dtype="int64", name="row")
        yield FeedFile(feed, path, empty, encoding, malformed[reported:])


def _iter_parquet(path: Path, feed: str, block_bytes: int) -> Iterator[FeedFile]:
    try:
        parquet = pq.ParquetFile(path)
        rows_per_batch = max(1, block_bytes // max(1, parquet.metadata.num_columns * 16))
        start = 1
        batches = parquet.iter_batches(batch_size=rows_per_batch)
        names = [name.strip() for name in parquet.schema_arrow.names]
        first = True
        for batch in batches:
            frame = _text_frame(pa.Table.from_batches([batch]).rename_columns(names))
            frame.index = pd.Index(np.arange(start, start + len(frame), dtype="int64"), name="row")
            start += len(frame)
            first = False
            yield FeedFile(feed, path, frame, "parquet")
        if first:
            frame = _text_frame(parquet.schema_arrow.empty_table().rename_columns(names))
            frame.index = pd.Index([], dtype="int64", name="row")
            yield FeedFile(feed, path, frame, "parquet")
    except (pa.ArrowException, OSError) as error:
        raise FeedFileError(feed, path, f"could not read as Parquet: {error}") from error


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


def iter_feed_file(path: Path, feed: str, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[FeedFile]:
    """Read one delivered file in blocks of about ``block_bytes``, so that a file of any size fits in memory.

    Each block keeps the file's row numbers. Raises ``FeedFileError`` for a
    problem with the whole file, before the first block when it can be seen
    from the start (empty file, blank header, bad encoding, repeated names).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise FeedFileError(feed, path, "the file is empty")
    if path.suffix.lower() == ".parquet":
        return _iter_parquet(path, feed, block_bytes)
    if path.suffix.lower() in (".csv", ".txt"):
        return _iter_csv(path, feed, block_bytes)
    raise FeedFileError(feed, path, f"unsupported file type {path.suffix!r}; deliver .csv or .parquet")


def read_feed_file(path: Path, feed: str) -> FeedFile:
    """Read one delivered file whole; raises ``FeedFileError`` for a problem with the whole file."""
    blocks = list(iter_feed_file(path, feed))
    frame = pd.concat([block.frame for block in blocks])
    malformed = [entry for block in blocks for entry in block.malformed]
    return FeedFile(feed, Path(path), frame, blocks[0].encoding, malformed)
