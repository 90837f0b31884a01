"""Parse transform: chunks of lines to typed event batches, with dead letters on the side."""

from __future__ import annotations

import time

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.utils.timestamp import Timestamp

from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from parsers.result import ParseResult
from pipelines import coders, metrics, progress
from retention.expiry import drop_expired
from retention.keyring import Keyring

ACCESS = "access"
ERROR = "error"
DEAD_LETTERS = "dead_letters"


#: Seconds between re-reads of the keyring's tombstones (a stream runs for months).
TOMBSTONES_REFRESH_SECONDS = 60


class ParseChunkFn(beam.DoFn):
    """Parse one chunk and count its lines.

    read = parsed + dead-lettered + skipped (blank lines, W3C directives) + expired (months shredded).
    """

    def __init__(self, keyring: str | None = None):
        self._keyring = keyring
        self._expired = metrics.counter(metrics.LINES_EXPIRED)
        self._read = metrics.counter(metrics.LINES_READ)
        self._parsed = metrics.counter(metrics.LINES_PARSED)
        self._dead = metrics.counter(metrics.LINES_DEAD_LETTERED)
        self._skipped = metrics.counter(metrics.LINES_SKIPPED)
        self._truncated = metrics.counter(metrics.LINES_TRUNCATED)

    def setup(self):
        self._destroyed, self._read_at = frozenset(), -float("inf")

    def _destroyed_months(self) -> frozenset[str]:
        if self._keyring and time.monotonic() - self._read_at > TOMBSTONES_REFRESH_SECONDS:
            self._destroyed, self._read_at = frozenset(Keyring(self._keyring).destroyed()), time.monotonic()
        return self._destroyed

    def process(self, chunk: LineChunk):
        result = drop_expired(parse_chunk(chunk), chunk, self._destroyed_months())
        if result.lines_expired:
            self._expired.inc(result.lines_expired)
        self._read.inc(result.lines_read)
        self._parsed.inc(result.lines_parsed)
        self._dead.inc(result.dead_letters.num_rows)
        if result.lines_skipped:
            self._skipped.inc(result.lines_skipped)
        if result.lines_truncated:
            self._truncated.inc(result.lines_truncated)
        progress.record_chunk(chunk.path, chunk.format, len(chunk.data), result)
        yield result


def with_event_time(batch: pa.RecordBatch) -> beam.window.TimestampedValue | pa.RecordBatch:
    """A batch stamped with its earliest event time, so windowing and watermarks downstream follow the
    log's clock, not the reader's (a batch of lines that name no time keeps the chunk's timestamp)."""
    earliest = pc.min(batch.column("timestamp")).value
    if earliest is None:
        return batch
    return beam.window.TimestampedValue(batch, Timestamp(micros=earliest))


def _events(result: ParseResult, kind: str):
    if result.kind == kind and result.events.num_rows:
        yield with_event_time(result.events)


def _dead_letters(result: ParseResult):
    if result.dead_letters.num_rows:
        yield with_event_time(result.dead_letters)


class ParseChunks(beam.PTransform):
    """Chunks in; a dict of ``access``, ``error`` and ``dead_letters`` PCollections of record batches.

    With ``keyring``, lines of months whose keys were destroyed are dropped and counted as expired.
    """

    def __init__(self, keyring: str | None = None):
        super().__init__()
        self._keyring = keyring

    def expand(self, chunks):
        coders.register()
        results = chunks | "ParseChunk" >> beam.ParDo(ParseChunkFn(self._keyring)).with_output_types(ParseResult)
        return {
            ACCESS: results | "AccessEvents" >> beam.FlatMap(_events, ACCESS).with_output_types(pa.RecordBatch),
            ERROR: results | "ErrorEvents" >> beam.FlatMap(_events, ERROR).with_output_types(pa.RecordBatch),
            DEAD_LETTERS: results | "DeadLetters" >> beam.FlatMap(_dead_letters).with_output_types(pa.RecordBatch),
        }
