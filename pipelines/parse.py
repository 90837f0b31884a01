"""Parse transform: chunks of lines to typed event batches, with dead letters on the side."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from parsers.result import ParseResult
from pipelines import coders, metrics, progress  # noqa: F401 - coders registers Beam coders for these element types

ACCESS = "access"
ERROR = "error"
DEAD_LETTERS = "dead_letters"


class ParseChunkFn(beam.DoFn):
    """Parse one chunk and count its lines: read = parsed + dead-lettered + skipped (blank, directives)."""

    def __init__(self):
        self._read = metrics.counter(metrics.LINES_READ)
        self._parsed = metrics.counter(metrics.LINES_PARSED)
        self._dead = metrics.counter(metrics.LINES_DEAD_LETTERED)
        self._skipped = metrics.counter(metrics.LINES_SKIPPED)

    def process(self, chunk: LineChunk):
        result = parse_chunk(chunk)
        self._read.inc(result.lines_read)
        self._parsed.inc(result.lines_parsed)
        self._dead.inc(result.dead_letters.num_rows)
        if result.lines_skipped:
            self._skipped.inc(result.lines_skipped)
        progress.record_chunk(chunk.path, chunk.format, len(chunk.data), result)
        yield result


def _events(result: ParseResult, kind: str):
    if result.kind == kind and result.events.num_rows:
        yield result.events


def _dead_letters(result: ParseResult):
    if result.dead_letters.num_rows:
        yield result.dead_letters


class ParseChunks(beam.PTransform):
    """Chunks in; a dict of ``access``, ``error`` and ``dead_letters`` PCollections of record batches."""

    def expand(self, chunks):
        results = chunks | "ParseChunk" >> beam.ParDo(ParseChunkFn()).with_output_types(ParseResult)
        return {
            ACCESS: results | "AccessEvents" >> beam.FlatMap(_events, ACCESS).with_output_types(pa.RecordBatch),
            ERROR: results | "ErrorEvents" >> beam.FlatMap(_events, ERROR).with_output_types(pa.RecordBatch),
            DEAD_LETTERS: results | "DeadLetters" >> beam.FlatMap(_dead_letters).with_output_types(pa.RecordBatch),
        }
