"""Beam coders for logwarden's large elements.

Beam samples element sizes for its metrics by encoding elements, and without a
coder of their own chunks and record batches fall back to pickle: every sample
pickled megabytes.  These coders encode Arrow data as Arrow IPC (compact, fast,
what other Arrow-aware workers read) and estimate sizes from the objects
themselves.  Importing this module registers them.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
import pyarrow as pa

from parsers.lines import LineChunk
from parsers.result import ParseResult
from pipelines.reports.traffic import TrafficPartial


def encode_batch(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def decode_batch(data: bytes) -> pa.RecordBatch:
    return pa.ipc.open_stream(data).read_next_batch()


class RecordBatchCoder(beam.coders.Coder):
    """Arrow record batches as Arrow IPC streams."""

    def encode(self, batch: pa.RecordBatch) -> bytes:
        return encode_batch(batch)

    def decode(self, data: bytes) -> pa.RecordBatch:
        return decode_batch(data)

    def estimate_size(self, batch: pa.RecordBatch) -> int:
        return batch.nbytes

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return pa.RecordBatch


class _PickledWithCheapSize(beam.coders.Coder):
    """Pickle for the bytes on the wire; a size estimate that does not encode anything."""

    type_hint: type = object

    def encode(self, value) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes):
        return pickle.loads(data)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return self.type_hint


class LineChunkCoder(_PickledWithCheapSize):
    type_hint = LineChunk

    def estimate_size(self, chunk: LineChunk) -> int:
        return len(chunk.data) + len(chunk.path) + 64


class ParseResultCoder(_PickledWithCheapSize):
    type_hint = ParseResult

    def estimate_size(self, result: ParseResult) -> int:
        return result.events.nbytes + result.dead_letters.nbytes


class TrafficPartialCoder(_PickledWithCheapSize):
    type_hint = TrafficPartial

    def estimate_size(self, partial: TrafficPartial) -> int:
        return 32 * len(partial.seconds) + 64 * sum(len(v) for v in partial.breakdown.values()) + 4096


CODERS = {
    pa.RecordBatch: RecordBatchCoder,
    LineChunk: LineChunkCoder,
    ParseResult: ParseResultCoder,
    TrafficPartial: TrafficPartialCoder,
}


def register() -> None:
    """Tell Beam's coder registry about logwarden's element types; every transform that moves them calls this
    in ``expand`` (idempotent), so no import has to be made for its side effect."""
    for element_type, coder in CODERS.items():
        beam.coders.registry.register_coder(element_type, coder)
