"""Compaction: many small online files of one segment -> a few large archive files, sorted for search.

Rows are sorted by client address, then time (``SORT_COLUMNS``, those the
schema has), so each row group's statistics cover a narrow address range and a
lookup of one address skips most of a segment.  Files are written with a
higher zstd level than the online tier and encrypted with the keys of the
segment's month, like everything else: compaction decrypts with the reader
role's keys and re-encrypts, so it needs the root key.

A segment larger than ``sort_rows`` is sorted in address ranges: one pass
reads the first sort column to choose range boundaries, a second spreads the
rows into one staged file per range (encrypted too: nothing personal is ever
written in plaintext, not even a spill), and each range is then sorted in
memory and appended.  Memory stays near one range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from retention import commit
from retention.encryption import ArchiveDecryptor, ArchiveEncryptor
from retention.keyring import ReaderKeys
from retention.parquet_files import ParquetFileWriter, WrittenFile

#: Sort order of archive-tier files: the columns of this list that a dataset has, in this order.
SORT_COLUMNS = ("source_ip", "timestamp", "log_file_path", "log_offset", "line_number")
READ_BATCH_ROWS = 64 * 1024


@dataclasses.dataclass(frozen=True)
class CompactionSettings:
    compression: str = "zstd"
    compression_level: int | None = 9
    row_group_rows: int = 128 * 1024
    max_file_rows: int = 4 * 1024 * 1024
    #: Rows sorted in memory at once (about 0.6 KiB each for access events); larger segments are sorted in
    #: address ranges of about this size.
    sort_rows: int = 1024 * 1024


def sort_keys(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(name, "ascending") for name in SORT_COLUMNS if name in schema.names]


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_batches(
    paths: Sequence[str], schema: pa.Schema, decryptor: ArchiveDecryptor, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Every row of ``paths``, decrypted, as batches of ``schema`` (or of ``columns`` of it)."""
    target = pa.schema([schema.field(c) for c in columns]) if columns else schema
    for path in paths:
        with _open(path) as handle:
            parquet = pq.ParquetFile(handle, decryption_properties=decryptor.file_properties())
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
                arrays = [batch.column(name) for name in target.names]
                # a cast copies even to the same type: only files of an older schema version need one
                arrays = [a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, target, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=target)


class _SegmentWriter:
    """Writes sorted tables into as many encrypted files as ``max_file_rows`` asks for."""

    def __init__(self, staging_root: str, run_id: str, schema, day: str, encryptor, settings: CompactionSettings):
        self._args = (staging_root, run_id, schema, day, encryptor, settings)
        self._writer: ParquetFileWriter | None = None
        self.files: list[WrittenFile] = []

    def _new(self) -> ParquetFileWriter:
        staging_root, run_id, schema, day, encryptor, settings = self._args
        return ParquetFileWriter(
            commit.staging_path(staging_root, run_id),
            schema,
            commit.create,
            encryption=encryptor.for_day(schema, day),
            compression=settings.compression,
            compression_level=settings.compression_level,
            row_group_rows=settings.row_group_rows,
        )

    def write(self, table: pa.Table) -> None:
        settings = self._args[5]
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._writer = self._new()
            room = settings.max_file_rows - self._writer.rows
            piece = table.slice(offset, room)
            for batch in piece.to_batches(max_chunksize=settings.row_group_rows):
                self._writer.write(batch)
            offset += piece.num_rows
            if self._writer.rows >= settings.max_file_rows:
                self.files.append(self._writer.close())
                self._writer = None

    def close(self) -> list[WrittenFile]:
        if self._writer is not None:
            self.files.append(self._writer.close())
            self._writer = None
        return self.files


def _write_sorted(out: _SegmentWriter, table: pa.Table, keys: list[tuple[str, str]], step: int) -> None:
    """Write ``table`` in ``keys`` order, taking one row group's rows at a time (no second sorted copy in memory)."""
    if not keys:
        out.write(table)
        return
    order = pc.sort_indices(table, sort_keys=keys)
    for start in range(0, len(order), step):
        out.write(table.take(order.slice(start, step)))


def _boundaries(values: pa.ChunkedArray, ranges: int) -> list:
    """``ranges - 1`` values splitting ``values`` (nulls left out) into ranges of about equal row counts."""
    counts = pc.value_counts(pc.drop_null(values))
    if len(counts) == 0:
        return []
    table = pa.table({"v": counts.field("values"), "n": counts.field("counts")}).sort_by("v")
    cumulative = pc.cumulative_sum(table["n"]).to_pylist()
    total = cumulative[-1]
    found, wanted = [], 1
    for value, running in zip(table["v"].to_pylist(), cumulative, strict=True):
        if wanted < ranges and running >= total * wanted / ranges:
            found.append(value)
            wanted += 1
    return found


def _range_of(column: pa.Array, boundaries: list) -> pa.Array:
    """For each row, the index of its range: values <= boundaries[0] in 0, …; nulls in the last range."""
    index = pa.array([0] * len(column), pa.int32())
    for boundary in boundaries:
        above = pc.fill_null(pc.greater(column, pa.scalar(boundary, column.type)), True)
        index = pc.add(index, pc.cast(above, pa.int32()))
    return index


def compact(
    inputs: Sequence[str],
    schema: pa.Schema,
    day: str,
    reader: ReaderKeys,
    staging_root: str,
    run_id: str,
    settings: CompactionSettings,
    total_rows: int,
) -> list[WrittenFile]:
    """Write every row of ``inputs`` sorted into staged archive files for the segment starting ``day``."""
    decryptor = ArchiveDecryptor(reader)
    encryptor = ArchiveEncryptor(reader)
    keys = sort_keys(schema)
    out = _SegmentWriter(staging_root, run_id, schema, day, encryptor, settings)
    if total_rows <= settings.sort_rows or not keys:
        table = pa.Table.from_batches(list(read_batches(inputs, schema, decryptor)), schema=schema)
        _write_sorted(out, table, keys, settings.row_group_rows)
        return out.close()

    first = keys[0][0]
    column = pa.chunked_array(
        [b.column(0) for b in read_batches(inputs, schema, decryptor, [first])], type=schema.field(first).type
    )
    boundaries = _boundaries(column, -(-total_rows // settings.sort_rows))
    del column
    spill_settings = dataclasses.replace(settings, compression="lz4", compression_level=None, max_file_rows=1 << 62)
    spills = [
        _SegmentWriter(staging_root, run_id, schema, day, encryptor, spill_settings) for _ in range(len(boundaries) + 1)
    ]
    for batch in read_batches(inputs, schema, decryptor):
        ranges = _range_of(batch.column(first), boundaries)
        for number, spill in enumerate(spills):
            part = batch.filter(pc.equal(ranges, number))
            if part.num_rows:
                spill.write(pa.Table.from_batches([part], schema=schema))
    for spill in spills:
        files = spill.close()
        if not files:
            continue
        table = pa.Table.from_batches(list(read_batches([f.path for f in files], schema, decryptor)), schema=schema)
        _write_sorted(out, table, keys, settings.row_group_rows)
        del table
        FileSystems.delete([f.path for f in files])
    return out.close()
