"""Splitting large uncompressed files into line-aligned ranges that workers read in parallel.

A planner scans the file once, counting newlines (fast: no parsing), and cuts
it at line boundaries near every ``range_bytes``; each range knows its first
byte offset and first line number, so offsets and line numbers stay exact
however the work is spread.  Compressed files cannot be entered in the middle
and stay whole, as do formats whose lines depend on earlier ones.

A large file is cut into a multiple of 4 ranges of equal size (of N, with N
local workers other than 1, 2 or 4; ``range_size``): the local runner hands each
worker every N-th range, so equal ranges give equal shares and no worker waits
for the other at the end, and 1, 2 or 4 workers read the same ranges.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import dataclasses
import io
import itertools
import os
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from parsers.lines import LineChunk
from parsers.reader import DEFAULT_CHUNK_BYTES, DEFAULT_MAX_LINE_BYTES, ReadStats, compression_of, iter_chunks

DEFAULT_RANGE_BYTES = 64 * 1024 * 1024
_SCAN_BYTES = 8 * 1024 * 1024
#: What is read at a time looking for the newline after a cut.
_PROBE_BYTES = 64 * 1024
_NEWLINE = ord("\n")
#: Ranges cut for balance are never smaller than this (or than ``range_bytes``, when that is smaller).
MIN_RANGE_BYTES = 1024 * 1024


#: A file larger than one range is cut into a multiple of this many equal ranges when 1, 2 or 4 workers read it:
#: they then read the very same ranges, so the same chunks and batches, and raise byte-identical alerts (which
#: lines an alert quotes depends on the batches).
RANGE_SHARES = 4


def range_size(size: int, range_bytes: int = DEFAULT_RANGE_BYTES, workers: int = 1) -> int:
    """Where to cut ``size`` bytes: at most ``range_bytes`` a range, in a multiple of ``RANGE_SHARES`` (or of
    ``workers``, for other counts) ranges of equal size (200 MB: 4 ranges of 50 MB, not 64 + 64 + 64 + 8).
    A file within one range stays whole on one worker and is shared equally between several."""
    if size <= range_bytes:
        if workers <= 1:
            return range_bytes
        shares = workers
    else:
        shares = RANGE_SHARES if RANGE_SHARES % max(workers, 1) == 0 else workers
    count = shares * -(-size // (shares * range_bytes))
    return min(range_bytes, max(-(-size // count), MIN_RANGE_BYTES))


@dataclasses.dataclass(frozen=True)
class FileRange:
    """Bytes ``[start, end)`` of ``path`` (``end`` None: to the end), beginning at line ``first_line``."""

    path: str
    start: int
    end: int | None
    first_line: int
    format: str


def plan_ranges(
    raw: BinaryIO,
    path: str,
    format_spec: str,
    range_bytes: int = DEFAULT_RANGE_BYTES,
    start: int = 0,
    first_line: int = 1,
    end: int | None = None,
    threads: int = 1,
) -> list[FileRange]:
    """Line-aligned ranges of about ``range_bytes`` covering ``[start, end)``; one range when splitting does not apply.

    ``start`` (a line start, at line ``first_line``) and ``end`` let a run read only what earlier runs did not.
    The cuts are found by seeking; then the newlines before the last cut are counted (the lines after it need no
    counting: a quarter of the file, cut in four), by ``threads`` threads at once where ``raw`` is an open file
    (counting releases the GIL: the planning worker's other cores are idle until the ranges are read).
    """
    if compression_of(path):
        return [FileRange(path, start, None, first_line, format_spec)]
    stop = end if end is not None else _size(raw)
    if stop is None:
        boundaries = _scanned_boundaries(raw, start, first_line, range_bytes)
    else:
        cuts = _cuts(raw, start, stop, range_bytes)
        lines = _newlines_between(raw, [start, *cuts], threads)
        boundaries = [(start, first_line)]
        for cut, counted in zip(cuts, lines, strict=True):
            boundaries.append((cut, boundaries[-1][1] + counted))
    ends = [offset for offset, _ in boundaries[1:]] + [end]
    return [FileRange(path, offset, until, line, format_spec) for (offset, line), until in zip(boundaries, ends)]


def _cuts(raw: BinaryIO, start: int, stop: int, range_bytes: int) -> list[int]:
    """Where each range after the first begins: just after the first newline at or past every ``range_bytes``
    from the previous cut, before ``stop``."""
    cuts, want = [], start + range_bytes
    while want < stop:
        raw.seek(want)
        offset, boundary = want, None
        while boundary is None and offset < stop:
            probe = raw.read(min(_PROBE_BYTES, stop - offset))
            if not probe:
                return cuts  # the file ends before ``stop`` now
            newline = probe.find(b"\n")
            if newline >= 0:
                boundary = offset + newline + 1
            offset += len(probe)
        if boundary is None or boundary >= stop:
            return cuts
        cuts.append(boundary)
        want = boundary + range_bytes
    return cuts


def _newlines_between(raw: BinaryIO, offsets: list[int], threads: int) -> list[int]:
    """The newlines in each ``[offsets[i], offsets[i + 1])``: the work cut into ``threads`` shares of equal bytes,
    each read at its offsets (``os.preadv``, no shared file position) and counted by a thread of its own."""
    if len(offsets) < 2:
        return []
    first, last = offsets[0], offsets[-1]
    try:
        fd = raw.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        fd = None
    if fd is None or not hasattr(os, "preadv"):
        threads = 1
    share_starts = [first + (last - first) * k // threads for k in range(1, threads)]
    points = sorted({*offsets, *share_starts})
    groups: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
    for a, b in itertools.pairwise(points):
        groups[bisect.bisect_right(share_starts, a)].append((bisect.bisect_right(offsets, a) - 1, a, b))
    counts = [0] * (len(offsets) - 1)

    def count(group: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        block, counter = bytearray(_SCAN_BYTES), _Counter(_SCAN_BYTES)
        found = []
        for segment, a, b in group:
            total = 0
            while a < b:
                view = memoryview(block)[: min(_SCAN_BYTES, b - a)]
                if fd is not None:
                    size = os.preadv(fd, [view], a)
                else:
                    raw.seek(a)
                    size = raw.readinto(view) or 0
                if not size:
                    break
                total += counter.newlines(block, size)
                a += size
            found.append((segment, total))
        return found

    if threads == 1:
        results = [count(groups[0])]
    else:
        with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="logwarden-plan") as pool:
            results = list(pool.map(count, groups))
    for found in results:
        for segment, total in found:
            counts[segment] += total
    return counts


def _scanned_boundaries(raw: BinaryIO, start: int, first_line: int, range_bytes: int) -> list[tuple[int, int]]:
    """``(offset, line)`` of each range of a stream that cannot seek, read once to its end."""
    boundaries = [(start, first_line)]
    position, lines, want = start, first_line - 1, start + range_bytes
    block, counter = bytearray(_SCAN_BYTES), _Counter(_SCAN_BYTES)
    while size := raw.readinto(block):
        while want < position + size:
            newline = block.find(b"\n", max(want - position, 0), size)  # want may end the block before
            if newline < 0:
                break
            boundary = position + newline + 1
            boundaries.append((boundary, lines + counter.newlines(block, newline + 1) + 1))
            want = boundary + range_bytes
        lines += counter.newlines(block, size)
        position += size
    return [b for b in boundaries if b[0] < position] or [(start, first_line)]


def _size(raw: BinaryIO) -> int | None:
    """Where ``raw`` ends now (it is left where it was); None when it cannot seek: then it is scanned to its end."""
    try:
        here = raw.tell()
        size = raw.seek(0, io.SEEK_END)
        raw.seek(here)
    except (OSError, ValueError):
        return None
    return size


class _Counter:
    """Newlines in a block, counted vectorised into a buffer of its own: ``bytes.count`` took 1.5 times the CPU
    (1.1 s against 0.7 per GB), and fresh 8 MiB blocks per read another 10 %, on one worker while the other waited
    for the planned ranges."""

    def __init__(self, size: int):
        self._hits = np.empty(size, bool)

    def newlines(self, block: bytearray, end: int) -> int:
        hits = self._hits[:end]
        np.equal(np.frombuffer(block, np.uint8, end), _NEWLINE, out=hits)
        return int(np.count_nonzero(hits))


class _Window:
    """Read at most ``size`` bytes of ``raw`` (``size`` None: all of it)."""

    def __init__(self, raw: BinaryIO, size: int | None):
        self._raw = raw
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left is None:
            return self._raw.read(n)
        if self._left <= 0:
            return b""
        data = self._raw.read(self._left if n < 0 else min(n, self._left))
        self._left -= len(data)
        return data

    def readinto(self, buffer: bytearray) -> int:
        view = memoryview(buffer)
        if self._left is not None:
            view = view[: max(self._left, 0)]
        if not len(view):
            return 0
        size = self._raw.readinto(view) or 0
        if self._left is not None:
            self._left -= size
        return size


def read_range(
    raw: BinaryIO,
    file_range: FileRange,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    stats: ReadStats | None = None,
    timezone: str = "UTC",
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[LineChunk]:
    """The chunks of one range, with file offsets and line numbers as if the whole file had been read.

    A compressed file cannot be entered in the middle: its first ``start`` decompressed bytes are skipped.
    """
    skip = 0
    if compression_of(file_range.path):
        source, skip = raw, file_range.start
    else:
        if file_range.start:
            raw.seek(file_range.start)
        source = _Window(raw, None if file_range.end is None else file_range.end - file_range.start)
    yield from iter_chunks(
        source,
        file_range.path,
        chunk_bytes,
        stats,
        file_range.format,
        timezone,
        start_offset=file_range.start,
        first_line=file_range.first_line,
        skip_bytes=skip,
        max_line_bytes=max_line_bytes,
    )
