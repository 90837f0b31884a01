"""Source transform: log files (globs, directories, compressed) to chunks of whole lines."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parsers.reader import DEFAULT_CHUNK_BYTES, ReadStats, head_lines
from parsers.regex_format import RegexFormat
from parsers.registry import UNKNOWN_PREFIX, UnknownFormatError, get_format, resolve_format
from parsers.splits import DEFAULT_RANGE_BYTES, FileRange, plan_ranges, read_range
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


def splittable(format_spec: str) -> bool:
    """Formats whose lines parse independently can be read from the middle of a file."""
    if format_spec.startswith(UNKNOWN_PREFIX):
        return True
    try:
        return isinstance(get_format(format_spec), RegexFormat)
    except UnknownFormatError:
        return True


class PlanRangesFn(beam.DoFn):
    """Decide one file's format, then cut it into line-aligned ranges for parallel reading."""

    def __init__(self, format_spec: str, range_bytes: int):
        self._format_spec = format_spec
        self._range_bytes = range_bytes
        self._files = metrics.counter(metrics.FILES_READ)

    def process(self, file_metadata):
        path = file_metadata.path
        format_spec = format_for_file(path, self._format_spec)
        self._files.inc()
        if not splittable(format_spec) or file_metadata.size_in_bytes <= self._range_bytes:
            yield FileRange(path, 0, None, 1, format_spec)
            return
        with open_raw(path) as raw:
            yield from plan_ranges(raw, path, format_spec, self._range_bytes)


class ReadRangeFn(beam.DoFn):
    """Read one range of a file as ``LineChunk``s."""

    def __init__(self, chunk_bytes: int):
        self._chunk_bytes = chunk_bytes
        self._truncated = metrics.counter(metrics.FILES_TRUNCATED)
        self._bytes = metrics.counter(metrics.BYTES_READ)

    def process(self, file_range: FileRange):
        stats = ReadStats()
        with open_raw(file_range.path) as raw:
            yield from read_range(raw, file_range, self._chunk_bytes, stats)
        self._bytes.inc(stats.bytes_read)
        if stats.truncated:
            self._truncated.inc()
            _LOG.warning("%s: %s; every line before that point was read", file_range.path, stats.problem)


class ReadLogChunks(beam.PTransform):
    """Match file patterns and read every file as chunks of whole lines, large files in parallel ranges."""

    def __init__(
        self,
        patterns: list[str],
        format_spec: str = "auto",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        range_bytes: int = DEFAULT_RANGE_BYTES,
    ):
        super().__init__()
        self._patterns = list(patterns)
        self._format_spec = format_spec
        self._chunk_bytes = chunk_bytes
        self._range_bytes = range_bytes

    def expand(self, pbegin):
        return (
            pbegin
            | "FilePatterns" >> beam.Create(self._patterns)
            | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            | "PlanRanges" >> beam.ParDo(PlanRangesFn(self._format_spec, self._range_bytes))
            | "SpreadRanges" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(ReadRangeFn(self._chunk_bytes))
        )
