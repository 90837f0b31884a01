"""Parsing whole files without Beam (``logwarden parse``, tests, benchmarks)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import BinaryIO

from parsers.reader import DEFAULT_CHUNK_BYTES, DEFAULT_MAX_LINE_BYTES, ReadStats, head_lines, iter_chunks
from parsers.registry import parse_chunk, resolve_format
from parsers.result import ParseResult


@dataclasses.dataclass
class FileParse:
    """How one file went: the format used, and the counts that must balance."""

    path: str
    how: str = ""
    lines_read: int = 0
    #: Lines that went into events (an nginx error entry may span several lines).
    parsed: int = 0
    events: int = 0
    dead_lettered: int = 0
    #: Blank lines and W3C directives: not requests, not errors.
    skipped: int = 0
    stats: ReadStats = dataclasses.field(default_factory=ReadStats)


def parse_file(
    open_raw: Callable[[str], BinaryIO],
    path: str,
    format_spec: str = "auto",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    report: FileParse | None = None,
    timezone: str = "UTC",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[ParseResult]:
    """Parse one file chunk by chunk; ``report`` is filled in as it goes.

    ``timezone`` is the zone of timestamps written without one (error logs).
    """
    report = report if report is not None else FileParse(path)
    if format_spec == "auto":
        with open_raw(path) as raw:
            format_spec, report.how = resolve_format(format_spec, head_lines(raw, path))
    else:
        report.how = f"format {format_spec} as given"
    with open_raw(path) as raw:
        for chunk in iter_chunks(
            raw, path, chunk_bytes, report.stats, format_spec, timezone, max_line_bytes=max_line_bytes
        ):
            result = parse_chunk(chunk)
            report.lines_read += result.lines_read
            report.parsed += result.lines_parsed
            report.events += result.events.num_rows
            report.dead_lettered += result.dead_letters.num_rows
            report.skipped += result.lines_skipped
            yield result
