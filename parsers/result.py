"""What parsing one chunk yields: typed events, dead letters, and the count of lines read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers import timestamps
from parsers.lines import LineChunk, SplitLines, split_lines
from schemas import DEAD_LETTER, schema_for_kind


@dataclasses.dataclass(frozen=True)
class ParseResult:
    """``lines_read == lines_parsed + dead_letters.num_rows + lines_skipped + lines_expired`` always holds.

    ``lines_parsed`` counts the lines that went into events: one per event for
    access logs, more where one entry spans several lines (nginx error logs).
    ``lines_skipped`` counts lines that carry no request and nothing wrong: blank
    lines and W3C directives (``#Fields:`` ...), see ``set_aside_non_requests``.
    """

    kind: str
    events: pa.RecordBatch
    dead_letters: pa.RecordBatch
    lines_read: int
    lines_parsed: int = -1
    #: Dead letters that are lines cut at the maximum line length.
    lines_truncated: int = 0
    #: Lines of months whose keys were destroyed: counted, never written (``retention.expiry``).
    lines_expired: int = 0
    lines_skipped: int = 0

    def __post_init__(self) -> None:
        if self.lines_parsed < 0:
            object.__setattr__(self, "lines_parsed", self.events.num_rows)
        if self.lines_parsed < self.events.num_rows or (
            self.lines_parsed + self.dead_letters.num_rows + self.lines_skipped + self.lines_expired != self.lines_read
        ):
            raise AssertionError(
                f"line accounting broken: {self.lines_read} read, {self.lines_parsed} parsed "
                f"into {self.events.num_rows} events, {self.dead_letters.num_rows} dead-lettered, "
                f"{self.lines_skipped} skipped, {self.lines_expired} expired"
            )


def set_aside_non_requests(result: ParseResult, directive_reason: str) -> ParseResult:
    """The same result with blank lines and W3C directive lines counted as skipped, not dead-lettered.

    They are not requests and nothing about them is wrong, so an operator reading the
    dead letters must not have to wade through them (or think a W3C log half broken).
    """
    dead = result.dead_letters
    if not dead.num_rows:
        return result
    raw = dead.column("raw")
    skip = pc.fill_null(pc.equal(dead.column("reason"), directive_reason), False).to_numpy(zero_copy_only=False)
    short = np.flatnonzero(pc.less_equal(pc.binary_length(raw), 64).to_numpy(zero_copy_only=False))
    for row in short:  # blank lines are short; raw bytes need not be UTF-8, so they are tested as bytes
        if not raw[int(row)].as_py().strip():
            skip[row] = True
    skipped = int(skip.sum())
    if not skipped:
        return result
    kept = dead.filter(pa.array(~skip))
    return dataclasses.replace(result, dead_letters=kept, lines_skipped=result.lines_skipped + skipped)


def _constant(value, n: int, type_: pa.DataType) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n) if n else pa.array([], type_)


def assemble_events(schema: pa.Schema, dataset: str, chunk: LineChunk, lines: SplitLines, pieces) -> pa.RecordBatch:
    """One record batch in ``schema`` from the pieces each pattern variant matched, in line order.

    ``pieces`` holds ``(rows, columns, keep, flag)``: chunk line indices, the converted
    columns for all matched rows, which of them to keep, and an optional ``log_flags`` value.
    """
    batches = []
    for rows, columns, keep, flag in pieces:
        if not len(rows):
            continue
        keep_mask = pa.array(keep)
        n = len(rows)
        arrays = []
        for field in schema:
            if field.name in columns.values:
                values = columns.values[field.name]
                if not keep.all():
                    values = values.filter(keep_mask)
                if values.type != field.type:
                    values = values.cast(field.type)
            elif field.name == "event_dataset":
                values = _constant(dataset, n, pa.string())
            elif field.name == "log_file_path":
                values = _constant(chunk.path, n, pa.string())
            elif field.name == "log_offset":
                values = pa.array(chunk.offset + lines.starts[rows], pa.int64())
            elif field.name == "log_flags" and flag:
                values = _constant([flag], n, field.type)
            else:
                values = pa.nulls(n, field.type)
            arrays.append(values)
        batches.append((rows, pa.RecordBatch.from_arrays(arrays, schema=schema)))
    if not batches:
        return empty_batch(schema)
    if len(batches) == 1:
        return batches[0][1]
    return _merge_in_line_order(batches, schema)


def _merge_in_line_order(batches: list[tuple[np.ndarray, pa.RecordBatch]], schema: pa.Schema) -> pa.RecordBatch:
    """Interleave batches by line number.  Usually a few slow-path rows fall between long
    fast-path runs, so the result is stitched from slices (a copy) rather than gathered row by row."""
    all_rows = np.concatenate([rows for rows, _ in batches])
    order = np.argsort(all_rows, kind="stable")
    table = pa.Table.from_batches([b for _, b in batches], schema=schema)
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    if len(breaks) > len(order) // 16:
        return table.take(pa.array(order)).combine_chunks().to_batches()[0]
    runs = np.split(order, breaks)
    stitched = pa.concat_tables([table.slice(int(run[0]), len(run)) for run in runs]).combine_chunks()
    return stitched.to_batches()[0] if stitched.num_rows else empty_batch(schema)


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def dead_letter_batch(
    chunk: LineChunk, lines: SplitLines, rows: np.ndarray, reasons: list[str], dataset: str | None
) -> pa.RecordBatch:
    """Dead letters for the given chunk line indices, raw bytes kept exactly."""
    n = len(rows)
    if not n:
        return empty_batch(DEAD_LETTER)
    index = pa.array(rows)
    return pa.RecordBatch.from_arrays(
        [
            lines.raw.take(index),
            _constant(chunk.path, n, pa.string()),
            pa.array(chunk.offset + lines.starts[rows], pa.int64()),
            pa.array(chunk.line_number + rows, pa.int64()),
            pa.array(reasons, pa.string()),
            _constant(dataset, n, pa.string()),
            timestamps.recover_times(lines.text.take(index), chunk.timezone),
        ],
        schema=DEAD_LETTER,
    )


def all_dead(chunk: LineChunk, kind: str, reason: str, dataset: str | None = None) -> ParseResult:
    """Every line of a chunk dead-lettered with one reason (unknown format, unreadable file…)."""
    lines = split_lines(chunk.data)
    rows = np.arange(len(lines))
    dead = dead_letter_batch(chunk, lines, rows, [reason] * len(rows), dataset)
    return ParseResult(kind, empty_batch(schema_for_kind(kind)), dead, len(lines))


def with_truncated_line(chunk: LineChunk, parse) -> ParseResult:
    """``parse`` the chunk's whole lines; its last line, cut at the maximum length, becomes a dead letter."""
    data = chunk.data
    start = data.rfind(b"\n") + 1
    head = parse(dataclasses.replace(chunk, data=data[:start], truncated_from=0))
    last = dataclasses.replace(chunk, offset=chunk.offset + start, line_number=chunk.line_number + data.count(b"\n"))
    lines = split_lines(data[start:])
    reason = (
        f"line of {chunk.truncated_from} bytes is longer than input.max_line_bytes; "
        f"kept cut at its first {len(data) - start} bytes"
    )
    dead = dead_letter_batch(last, lines, np.array([0]), [reason], None)
    dead_letters = pa.Table.from_batches([head.dead_letters, dead]).combine_chunks().to_batches()
    return dataclasses.replace(
        head, dead_letters=dead_letters[0], lines_read=head.lines_read + 1, lines_truncated=head.lines_truncated + 1
    )
