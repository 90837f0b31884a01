"""Writing record batches to Parquet files partitioned by event day, with checksums.

This is the one Parquet writer of logwarden: batch jobs, the streaming job and
retention compaction all go through it, so every file carries the schema
version.  A writer writes to a staging path; ``retention.commit`` publishes the
finished file into its partition (``retention.layout``), so a reader never sees
half a file.  Archive files are always encrypted (``retention.encryption``); a
writer is told explicitly when not to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from retention.encryption import ENCRYPTED_MAGIC, FileEncryption
from retention.layout import day_of_epoch_days
from schemas import SCHEMA_VERSION

WRITE_BUFFER_BYTES = 4 * 1024 * 1024
#: Arrow bytes of rows a writer holds before it writes them as a row group, even short of ``row_group_rows``.
ROW_GROUP_BYTES = 16 * 1024 * 1024
#: Integer columns whose values seldom repeat (times, offsets, sizes, durations), written delta-encoded instead of
#: with a dictionary: building a dictionary of a million distinct offsets cost more than the rest of their column
#: and made it larger, while near-sorted times and offsets take a few bits a row as deltas.
DELTA_COLUMNS = frozenset(
    {
        "timestamp",
        "log_offset",
        "line_number",
        "http_request_bytes",
        "http_response_body_bytes",
        "http_response_bytes",
        "event_duration_us",
        "http_upstream_response_time_us",
    }
)


class PlaintextFileError(RuntimeError):
    """An archive file came out without an encrypted footer; it is never published."""


def split_by_day(
    batch: pa.RecordBatch, column: str = "timestamp", undated_day: str | None = None
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Split a batch into one batch per UTC day of ``column``; rows without a time go to ``undated_day``."""
    if batch.num_rows == 0:
        return
    times = batch.column(column)
    if times.null_count:
        if undated_day is None:
            raise ValueError(f"{times.null_count} row(s) without {column} and no day to put them in")
        undated = pc.is_null(times)
        yield undated_day, batch.filter(undated)
        if times.null_count == batch.num_rows:
            return
        batch = batch.filter(pc.invert(undated))
    # Whole days since the epoch by integer division: formatting a million timestamps as text
    # just to compare them cost more than writing the Parquet file.
    micros = batch.column(column).cast(pa.int64())
    days = pc.floor(pc.divide(micros.cast(pa.float64()), 86_400_000_000.0)).cast(pa.int64())
    first, last = (v.as_py() for v in pc.min_max(days).values())
    if first == last:
        yield day_of_epoch_days(first), batch
        return
    for day in pc.unique(days).to_pylist():
        yield day_of_epoch_days(day), batch.filter(pc.equal(days, day))


class _HashingStream:
    """A write-only stream that computes the SHA-256 of what passes through it."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False
        self.tail = b""

    def write(self, data) -> int:
        data = bytes(data)
        self.sha256.update(data)
        self.size += len(data)
        self.tail = (self.tail + data[-4:])[-4:]
        return self._raw.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


@dataclasses.dataclass(frozen=True)
class WrittenFile:
    """A finished Parquet file and what its manifest entry says about it."""

    path: str
    rows: int
    size: int
    sha256: str
    min_timestamp: str | None
    max_timestamp: str | None
    schema_version: str = SCHEMA_VERSION
    key_ids: tuple[str, ...] = ()

    def manifest_entry(self, name: str) -> dict:
        entry = dataclasses.asdict(self)
        entry["file"] = name
        entry["key_ids"] = list(self.key_ids)
        del entry["path"]
        return entry


def _iso(value) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=32)
def _leaf_columns(schema: pa.Schema) -> tuple[str, ...]:
    """The Parquet leaf columns of ``schema`` as the writer names them (``labels.key_value.key``)."""
    empty = pa.BufferOutputStream()
    pq.ParquetWriter(empty, schema).close()
    parquet_schema = pq.read_metadata(pa.BufferReader(empty.getvalue())).schema
    return tuple(parquet_schema.column(i).path for i in range(len(parquet_schema)))


def column_options(schema: pa.Schema) -> dict:
    """``ParquetWriter`` arguments: ``DELTA_COLUMNS`` delta-encoded, every other leaf column with a dictionary."""
    delta = sorted(
        field.name
        for field in schema
        if field.name in DELTA_COLUMNS and (pa.types.is_integer(field.type) or pa.types.is_timestamp(field.type))
    )
    if not delta:
        return {}
    # Naming columns turns dictionaries off for every leaf not named, nested ones included: name them all.
    return {
        "use_dictionary": [leaf for leaf in _leaf_columns(schema) if leaf not in delta],
        "column_encoding": dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
    }


class ParquetFileWriter:
    """One Parquet file being written; batches in, a ``WrittenFile`` out on ``close``.

    Rows wait in memory until ``row_group_rows`` of them or ``row_group_bytes`` of Arrow data are pending,
    and are then written as row groups: a wide schema (enriched access events) gets row groups of about
    ``row_group_bytes`` rather than holding ``row_group_rows`` rows per open file (one per day and dataset)
    in memory, while narrow ones still get full row groups.

    ``encryption`` is required: ``None`` (plaintext) must be asked for, as only benches do.
    """

    def __init__(
        self,
        path: str,
        schema: pa.Schema,
        open_for_write: Callable[[str], BinaryIO],
        *,
        encryption: FileEncryption | None,
        compression: str = "zstd",
        row_group_rows: int = 128 * 1024,
        compression_level: int | None = None,
        row_group_bytes: int = ROW_GROUP_BYTES,
    ):
        self.path = path
        self._encryption = encryption
        self._stream = _HashingStream(open_for_write(path))
        self._sink = pa.BufferedOutputStream(pa.PythonFile(self._stream, mode="w"), buffer_size=WRITE_BUFFER_BYTES)
        self._writer = pq.ParquetWriter(
            # Buffered: encryption makes many small writes (per-page headers, nonces, tags), each a Python call.
            self._sink,
            schema,
            compression=None if compression == "none" else compression,
            compression_level=compression_level,  # None: the codec's default (the archive tier asks for more)
            encryption_properties=encryption.properties if encryption else None,
            **column_options(schema),
        )
        self._row_group_rows = row_group_rows
        self._row_group_bytes = row_group_bytes
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = self._pending_bytes = 0
        self.rows = 0
        self._min = None
        self._max = None

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        low, high = (
            pc.min_max(batch.column("timestamp")).values() if "timestamp" in batch.schema.names else (None, None)
        )
        if low is not None and low.is_valid:
            self._min = low.as_py() if self._min is None else min(self._min, low.as_py())
            self._max = high.as_py() if self._max is None else max(self._max, high.as_py())
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        if self._pending_rows >= self._row_group_rows or self._pending_bytes >= self._row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending)
            self._writer.write_table(table, row_group_size=self._row_group_rows)
            self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def close(self) -> WrittenFile:
        self._flush()
        self._writer.close()
        self._sink.close()
        self._stream.close()
        if self._encryption is not None and self._stream.tail != ENCRYPTED_MAGIC:
            raise PlaintextFileError(f"{self.path}: written without an encrypted footer; not publishing it")
        return WrittenFile(
            path=self.path,
            rows=self.rows,
            size=self._stream.size,
            sha256=self._stream.sha256.hexdigest(),
            min_timestamp=_iso(self._min),
            max_timestamp=_iso(self._max),
            key_ids=self._encryption.key_ids if self._encryption else (),
        )
