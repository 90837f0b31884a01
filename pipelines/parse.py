"""Parse transform: chunks of lines to typed event batches, with dead letters on the side."""

from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from pipelines import metrics

ACCESS = "access"
ERROR = "error"
DEAD_LETTERS = "dead_letters"


class ParseChunkFn(beam.DoFn):
    def __init__(self):
        self._read = metrics.counter(metrics.LINES_READ)
        self._parsed = metrics.counter(metrics.LINES_PARSED)
        self._dead = metrics.counter(metrics.LINES_DEAD_LETTERED)

    def process(self, chunk: LineChunk):
        result = parse_chunk(chunk)
        self._read.inc(result.lines_read)
        self._parsed.inc(result.lines_parsed)
        self._dead.inc(result.dead_letters.num_rows)
        if result.events.num_rows:
            if result.kind == ACCESS:
                yield result.events
            else:
                yield pvalue.TaggedOutput(ERROR, result.events)
        if result.dead_letters.num_rows:
            yield pvalue.TaggedOutput(DEAD_LETTERS, result.dead_letters)


class ParseChunks(beam.PTransform):
    """Chunks in; outputs ``access`` (main), ``error`` and ``dead_letters``, each of record batches."""

    def expand(self, chunks):
        return chunks | "ParseChunk" >> beam.ParDo(ParseChunkFn()).with_outputs(ERROR, DEAD_LETTERS, main=ACCESS)
