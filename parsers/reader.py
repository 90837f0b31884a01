"""Reading log files as chunks of whole lines: plain, .gz, .bz2 or .zst, streamed.

Memory stays flat in the file size: at most one chunk plus one partial line is
held.  Offsets are byte offsets in the decompressed stream (what a reader of
the plain log would see).  A truncated compressed file yields every line that
could be recovered, and says so, instead of failing the job.
"""

from __future__ import annotations

import bz2
import dataclasses
import re
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from parsers import registry, w3c
from parsers.lines import LineChunk, text_lines

READ_BYTES = 1024 * 1024
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024
#: Longest line kept whole; the rest of a longer line is skipped (``input.max_line_bytes``).
DEFAULT_MAX_LINE_BYTES = 1024 * 1024


class _Plain:
    eof = True

    def decompress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _MultiMember:
    """Concatenated compressed members, the way ``gzip``, ``logrotate`` and ``cat a.gz b.gz`` produce them."""

    def __init__(self, new_decompressor) -> None:
        self._new = new_decompressor
        self._d = new_decompressor()
        self.eof = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._d.decompress(data))
            if self._d.eof:
                data = self._d.unused_data
                self._d = self._new()
                self.eof = not data
            else:
                self.eof = False
                data = b""
        return b"".join(out)

    def flush(self) -> bytes:
        flush = getattr(self._d, "flush", None)
        return flush() if flush else b""


def _gzip() -> _MultiMember:
    return _MultiMember(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))


def _bzip2() -> _MultiMember:
    return _MultiMember(bz2.BZ2Decompressor)


class _Zstd:
    def __init__(self) -> None:
        import zstandard

        self._d = zstandard.ZstdDecompressor().decompressobj()
        self.eof = False

    def decompress(self, data: bytes) -> bytes:
        out = self._d.decompress(data)
        self.eof = self._d.eof
        return out

    def flush(self) -> bytes:
        return b""


COMPRESSIONS = {".gz": _gzip, ".bz2": _bzip2, ".zst": _Zstd}


def compression_of(path: str) -> str:
    for suffix in COMPRESSIONS:
        if path.endswith(suffix):
            return suffix
    return ""


def count_newlines(data: bytes) -> int:
    """``data.count(b"\\n")``, vectorised: a quarter of the CPU (0.02 s against 0.08 per 1M lines, 212 MB)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 10))


@dataclasses.dataclass
class ReadStats:
    """What reading one file found beyond its lines."""

    bytes_read: int = 0
    truncated: bool = False
    problem: str | None = None


def _decompressed_blocks(raw: BinaryIO, path: str, stats: ReadStats, skip: int = 0) -> Iterator[bytes]:
    """Decompressed blocks of ``raw``, without its first ``skip`` decompressed bytes (read by an earlier run)."""
    for block in _all_decompressed_blocks(raw, path, stats):
        if skip >= len(block):
            skip -= len(block)
            continue
        yield block[skip:] if skip else block
        skip = 0


def _all_decompressed_blocks(raw: BinaryIO, path: str, stats: ReadStats) -> Iterator[bytes]:
    decompressor = COMPRESSIONS.get(compression_of(path), _Plain)()
    while True:
        block = raw.read(READ_BYTES)
        if not block:
            break
        try:
            out = decompressor.decompress(block)
        except (zlib.error, OSError, EOFError, ValueError) as error:
            stats.truncated = True
            stats.problem = f"compressed data is corrupt after {stats.bytes_read} decompressed bytes: {error}"
            return
        if out:
            stats.bytes_read += len(out)
            yield out
    tail = decompressor.flush()
    if tail:
        stats.bytes_read += len(tail)
        yield tail
    if not decompressor.eof:
        stats.truncated = True
        stats.problem = f"compressed file ends early (truncated) after {stats.bytes_read} decompressed bytes"


@dataclasses.dataclass(frozen=True)
class _Cut:
    """The line whose first ``limit`` bytes were just passed on was ``length`` bytes long."""

    length: int
    newline: bool


def _capped_lines(blocks: Iterator[bytes], limit: int) -> Iterator[bytes | _Cut]:
    """Blocks as read, except that a line longer than ``limit`` is passed on cut at ``limit`` bytes,
    followed by a ``_Cut``; the rest of it is read past without being kept, so memory stays bounded
    by ``limit`` whatever a file holds (a 512 MB line, gigabytes without a newline)."""
    line = 0  # bytes of the unfinished line so far (passed on or skipped)
    for block in blocks:
        first = block.find(b"\n")
        if first < 0:
            tail = line + len(block)
            fits = tail <= limit
        else:
            tail = len(block) - block.rfind(b"\n") - 1
            inner_fit = len(block) <= limit or _longest_inner_line(block) <= limit
            fits = line + first <= limit and tail <= limit and inner_fit
        if fits:  # the usual case: no line here is too long, pass the block on as it is
            line = tail
            yield block
            continue
        position = 0
        while position < len(block):
            newline = block.find(b"\n", position)
            end = newline if newline >= 0 else len(block)
            kept = max(0, min(end - position, limit - line))
            if kept:
                yield block[position : position + kept]
            line += end - position
            if newline < 0:
                break
            if line > limit:
                yield _Cut(line, True)
            else:
                yield b"\n"
            line, position = 0, newline + 1
    if line > limit:
        yield _Cut(line, False)


def _longest_inner_line(block: bytes) -> int:
    """Length of the longest line that both starts and ends inside ``block``."""
    newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
    return int(np.diff(newlines).max()) - 1 if len(newlines) > 1 else 0


def iter_chunks(
    raw: BinaryIO,
    path: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    stats: ReadStats | None = None,
    format_spec: str = "auto",
    timezone: str = "UTC",
    start_offset: int = 0,
    first_line: int = 1,
    skip_bytes: int = 0,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[LineChunk]:
    """Yield ``LineChunk``s of about ``chunk_bytes`` whole lines each from an open binary file.

    A chunk is cut after a newline, so no line is ever split between chunks;
    a line longer than ``chunk_bytes`` makes one larger chunk.  For formats whose
    entries span lines (nginx error logs) a chunk is only cut before a line that
    starts an entry; for W3C logs each chunk carries the ``#Fields`` header in force.
    ``start_offset`` and ``first_line`` locate ``raw``'s first byte when it is a range of a file;
    ``skip_bytes`` drops that many decompressed bytes first (a compressed file resumed at ``start_offset``).
    A line longer than ``max_line_bytes`` is cut there and ends its chunk (``LineChunk.truncated_from``).
    """
    entry_start = registry.entry_start(format_spec)
    chunks = _whole_line_chunks(
        raw,
        path,
        chunk_bytes,
        stats,
        format_spec,
        timezone,
        entry_start,
        start_offset,
        first_line,
        max_line_bytes,
        skip_bytes,
    )
    family = w3c.family_of(format_spec)
    yield from w3c.track_fields_header(chunks, family) if family else chunks


def _next_entry_cut(pending: bytearray, cut: int, entry_start: re.Pattern) -> int:
    """The first line start at or after ``cut`` that begins an entry, or 0 when there is none yet."""
    position = cut
    while position < len(pending):
        if entry_start.match(pending, position):
            return position
        newline = pending.find(b"\n", position)
        if newline < 0:
            return 0
        position = newline + 1
    return 0


def _whole_line_chunks(
    raw: BinaryIO,
    path: str,
    chunk_bytes: int,
    stats: ReadStats | None,
    format_spec: str,
    timezone: str,
    entry_start: re.Pattern | None,
    start_offset: int,
    first_line: int,
    max_line_bytes: int,
    skip_bytes: int = 0,
) -> Iterator[LineChunk]:
    stats = stats if stats is not None else ReadStats()
    pending = bytearray()
    offset = start_offset
    line_number = first_line
    for block in _capped_lines(_decompressed_blocks(raw, path, stats, skip_bytes), max_line_bytes):
        if isinstance(block, _Cut):
            data = bytes(pending)
            del pending[:]
            chunk = LineChunk(
                path,
                offset,
                line_number,
                data,
                format_spec,
                timezone,
                truncated_from=block.length,
                newline_after_cut=block.newline,
            )
            yield chunk
            offset += chunk.span
            line_number += data.count(b"\n") + 1
            continue
        pending += block
        while len(pending) >= chunk_bytes:
            cut = pending.rfind(b"\n", 0, chunk_bytes) + 1 or pending.find(b"\n", chunk_bytes) + 1
            if cut and entry_start is not None:
                # Keep an entry's continuation lines with it, unless no entry starts for
                # several chunks (then this is not that format; memory must stay flat).
                cut = _next_entry_cut(pending, cut, entry_start) or (cut if len(pending) >= 4 * chunk_bytes else 0)
            if cut == 0:
                break  # one line (or entry) longer than a chunk: read on until it ends
            data = bytes(pending[:cut])
            del pending[:cut]
            yield LineChunk(path, offset, line_number, data, format_spec, timezone)
            offset += len(data)
            line_number += count_newlines(data)
    if pending:
        yield LineChunk(path, offset, line_number, bytes(pending), format_spec, timezone)


def head_lines(raw: BinaryIO, path: str, max_lines: int = 200, max_bytes: int = 256 * 1024) -> list[str]:
    """The first lines of a file as text, for format detection."""
    collected = bytearray()
    stats = ReadStats()
    for block in _decompressed_blocks(raw, path, stats):
        collected += block
        if len(collected) >= max_bytes or collected.count(b"\n") >= max_lines:
            break
    text = bytes(collected[:max_bytes]).decode("utf-8", "replace")
    return text_lines(text)[:max_lines]
