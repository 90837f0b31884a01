"""Source transform: log files (globs, directories, compressed) to chunks of whole lines."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parsers.reader import ReadStats, head_lines, iter_chunks
from parsers.registry import UNKNOWN_PREFIX, resolve_format
from pipelines import metrics

_LOG = logging.getLogger("logwarden")


def open_raw(path: str):
    """Open any Beam filesystem path as raw bytes; logwarden does its own decompression."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def format_for_file(path: str, format_spec: str) -> str:
    """Resolve ``auto`` for one file from its first lines, and log what was chosen."""
    if format_spec != "auto":
        return format_spec
    with open_raw(path) as raw:
        spec, how = resolve_format(format_spec, head_lines(raw, path))
    if spec.startswith(UNKNOWN_PREFIX):
        _LOG.warning("%s: %s; its lines go to the dead letters", path, how)
    else:
        _LOG.info("%s: %s", path, how)
    return spec


class ReadChunksFn(beam.DoFn):
    """Read one matched file into ``LineChunk``s, detecting its format first when asked to."""

    def __init__(self, format_spec: str, chunk_bytes: int, timezone: str = "UTC"):
        self._format_spec = format_spec
        self._chunk_bytes = chunk_bytes
        self._timezone = timezone
        self._files = metrics.counter(metrics.FILES_READ)
        self._truncated = metrics.counter(metrics.FILES_TRUNCATED)
        self._bytes = metrics.counter(metrics.BYTES_READ)

    def process(self, file_metadata):
        path = file_metadata.path
        format_spec = format_for_file(path, self._format_spec)
        stats = ReadStats()
        with open_raw(path) as raw:
            yield from iter_chunks(raw, path, self._chunk_bytes, stats, format_spec, self._timezone)
        self._files.inc()
        self._bytes.inc(stats.bytes_read)
        if stats.truncated:
            self._truncated.inc()
            _LOG.warning("%s: %s; every line before that point was read", path, stats.problem)


class ReadLogChunks(beam.PTransform):
    """Match file patterns and read every file as chunks of whole lines."""

    def __init__(
        self,
        patterns: list[str],
        format_spec: str = "auto",
        chunk_bytes: int = 4 * 1024 * 1024,
        timezone: str = "UTC",
    ):
        super().__init__()
        self._patterns = list(patterns)
        self._format_spec = format_spec
        self._chunk_bytes = chunk_bytes
        self._timezone = timezone

    def expand(self, pbegin):
        return (
            pbegin
            | "FilePatterns" >> beam.Create(self._patterns)
            | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadChunks" >> beam.ParDo(ReadChunksFn(self._format_spec, self._chunk_bytes, self._timezone))
        )
