"""Source transform: log files (globs, directories, compressed) to chunks of whole lines."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from parsers import w3c
from parsers.lines import LineChunk
from parsers.reader import DEFAULT_CHUNK_BYTES, DEFAULT_MAX_LINE_BYTES, ReadStats, count_newlines, head_lines
from parsers.registry import UNKNOWN_PREFIX, entry_start, resolve_format
from parsers.splits import DEFAULT_RANGE_BYTES, FileRange, plan_ranges, range_size, read_range
from pipelines import coders, metrics
from pipelines.inputs import open_local
from pipelines.options import usable_cores
from retention.ledger import FilePlan

_LOG = logging.getLogger("logwarden")


def open_raw(path: str, follow_symlinks: bool = False):
    """Open any Beam filesystem path as raw bytes; logwarden does its own decompression.

    A local path must be a regular file (and not a link, unless ``follow_symlinks``).
    """
    if "://" not in path:
        return open_local(path, follow_symlinks)
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def format_for_file(path: str, format_spec: str, follow_symlinks: bool = False) -> str:
    """Resolve ``auto`` for one file from its first lines, and log what was chosen."""
    if format_spec != "auto":
        return format_spec
    with open_raw(path, follow_symlinks) as raw:
        spec, how = resolve_format(format_spec, head_lines(raw, path))
    if spec.startswith(UNKNOWN_PREFIX):
        _LOG.warning("%s: %s; its lines go to the dead letters", path, how)
    else:
        _LOG.info("%s: %s", path, how)
    return spec


def splittable(format_spec: str) -> bool:
    """Only formats whose lines parse independently can be read from the middle of a file.

    Multi-line entries (nginx error logs) and W3C logs, whose ``#Fields`` header
    governs the lines after it, are read whole.
    """
    return entry_start(format_spec) is None and w3c.family_of(format_spec) is None


class PlanRangesFn(beam.DoFn):
    """Decide one file's format, then cut what is to be read of it into line-aligned ranges for parallel reading.

    Takes a matched file (read whole) or a ``FilePlan`` of the ingest ledger (read from where earlier runs stopped).
    With ``workers`` local workers, each file is cut into equal shares for them (``parsers.splits.range_size``).
    """

    def __init__(self, format_spec: str, range_bytes: int, follow_symlinks: bool = False, workers: int = 1):
        self._format_spec = format_spec
        self._range_bytes = range_bytes
        self._follow = follow_symlinks
        self._workers = workers
        self._files = metrics.counter(metrics.FILES_READ)

    def process(self, item):
        if isinstance(item, FilePlan):
            path, start, first_line, end = item.path, item.start, item.first_line, item.end
            size = (end if end is not None else FileSystems.match([path])[0].metadata_list[0].size_in_bytes) - start
        else:
            path, start, first_line, end, size = item.path, 0, 1, None, item.size_in_bytes
        format_spec = format_for_file(path, self._format_spec, self._follow)
        self._files.inc()
        range_bytes = range_size(size, self._range_bytes, self._workers)
        if not splittable(format_spec) or size <= range_bytes:
            yield FileRange(path, start, end, first_line, format_spec)
            return
        with open_raw(path, self._follow) as raw:
            yield from plan_ranges(raw, path, format_spec, range_bytes, start, first_line, end, usable_cores())


class ReadRangeFn(beam.DoFn):
    """Read one range of a file as ``LineChunk``s."""

    def __init__(
        self,
        chunk_bytes: int,
        timezone: str,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        follow_symlinks: bool = False,
    ):
        self._chunk_bytes = chunk_bytes
        self._timezone = timezone
        self._max_line_bytes = max_line_bytes
        self._follow = follow_symlinks
        self._truncated = metrics.counter(metrics.FILES_TRUNCATED)
        self._bytes = metrics.counter(metrics.BYTES_READ)

    def process(self, file_range: FileRange):
        stats = ReadStats()
        read_bytes = read_lines = 0
        with open_raw(file_range.path, self._follow) as raw:
            for chunk in read_range(raw, file_range, self._chunk_bytes, stats, self._timezone, self._max_line_bytes):
                read_bytes += chunk.span
                read_lines += count_newlines(chunk.data) + (not chunk.data.endswith(b"\n"))
                yield chunk
        self._bytes.inc(stats.bytes_read)
        metrics.counter(metrics.input_counter_name(metrics.INPUT_BYTES, file_range.path)).inc(read_bytes)
        metrics.counter(metrics.input_counter_name(metrics.INPUT_LINES, file_range.path)).inc(read_lines)
        if stats.truncated:
            self._truncated.inc()
            _LOG.warning("%s: %s; every line before that point was read", file_range.path, stats.problem)


class ReadLogChunks(beam.PTransform):
    """Match file patterns and read every file as chunks of whole lines, large files in parallel ranges.

    With ``plans`` (the ingest ledger's) instead of patterns, each file is read from where earlier runs stopped.
    ``workers``: how many local workers share the ranges (equal shares for each; 1 on any other runner).
    """

    def __init__(
        self,
        patterns: list[str] | None = None,
        format_spec: str = "auto",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        range_bytes: int = DEFAULT_RANGE_BYTES,
        timezone: str = "UTC",
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        follow_symlinks: bool = False,
        plans: list[FilePlan] | None = None,
        workers: int = 1,
    ):
        super().__init__()
        self._workers = workers
        self._max_line_bytes = max_line_bytes
        self._follow = follow_symlinks
        self._patterns = list(patterns or ())
        self._plans = plans
        self._format_spec = format_spec
        self._chunk_bytes = chunk_bytes
        self._range_bytes = range_bytes
        self._timezone = timezone

    def expand(self, pbegin):
        coders.register()
        if self._plans is not None:
            files = pbegin | "FilePlans" >> beam.Create([p for p in self._plans if not p.nothing_to_read])
        else:
            files = (
                pbegin
                | "FilePatterns" >> beam.Create(self._patterns)
                | "MatchFiles" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
            )
        return (
            files
            | "PlanRanges"
            >> beam.ParDo(PlanRangesFn(self._format_spec, self._range_bytes, self._follow, self._workers))
            | "SpreadRanges" >> beam.Reshuffle()
            | "ReadRanges"
            >> beam.ParDo(
                ReadRangeFn(self._chunk_bytes, self._timezone, self._max_line_bytes, self._follow)
            ).with_output_types(LineChunk)
        )
