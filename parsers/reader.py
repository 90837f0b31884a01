"""Reading log files as chunks of whole lines: plain, .gz, .bz2 or .zst, streamed.

Memory stays flat in the file size: at most one chunk plus one partial line is
held.  Offsets are byte offsets in the decompressed stream (what a reader of
the plain log would see).  A truncated compressed file yields every line that
could be recovered, and says so, instead of failing the job.
"""

from __future__ import annotations

import bz2
import dataclasses
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from parsers.lines import LineChunk

READ_BYTES = 1024 * 1024
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024


class _Plain:
    eof = True

    def decompress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Gzip:
    """Multi-member gzip, the way ``gzip``, ``logrotate`` and ``cat a.gz b.gz`` produce it."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.eof = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._d.decompress(data))
            if self._d.eof:
                data = self._d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.eof = not data
            else:
                self.eof = False
                data = b""
        return b"".join(out)

    def flush(self) -> bytes:
        return self._d.flush()


class _Bzip2:
    def __init__(self) -> None:
        self._d = bz2.BZ2Decompressor()
        self.eof = False

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._d.decompress(data))
            if self._d.eof:
                data = self._d.unused_data
                self._d = bz2.BZ2Decompressor()
                self.eof = not data
            else:
                self.eof = False
                data = b""
        return b"".join(out)

    def flush(self) -> bytes:
        return b""


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


COMPRESSIONS = {".gz": _Gzip, ".bz2": _Bzip2, ".zst": _Zstd}


def compression_of(path: str) -> str:
    for suffix in COMPRESSIONS:
        if path.endswith(suffix):
            return suffix
    return ""


@dataclasses.dataclass
class ReadStats:
    """What reading one file found beyond its lines."""

    bytes_read: int = 0
    truncated: bool = False
    problem: str | None = None


def _decompressed_blocks(raw: BinaryIO, path: str, stats: ReadStats) -> Iterator[bytes]:
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


def iter_chunks(
    raw: BinaryIO,
    path: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    stats: ReadStats | None = None,
    format_spec: str = "auto",
    start_offset: int = 0,
    first_line: int = 1,
) -> Iterator[LineChunk]:
    """Yield ``LineChunk``s of about ``chunk_bytes`` whole lines each from an open binary file.

    A chunk is cut after a newline, so no line is ever split between chunks;
    a line longer than ``chunk_bytes`` makes one larger chunk.  ``start_offset``
    and ``first_line`` locate ``raw``'s first byte when it is a range of a file.
    """
    stats = stats if stats is not None else ReadStats()
    pending = bytearray()
    offset = start_offset
    line_number = first_line
    for block in _decompressed_blocks(raw, path, stats):
        pending += block
        while len(pending) >= chunk_bytes:
            cut = pending.rfind(b"\n", 0, chunk_bytes) + 1 or pending.find(b"\n", chunk_bytes) + 1
            if cut == 0:
                break  # one line longer than a chunk: read on until it ends
            data = bytes(pending[:cut])
            del pending[:cut]
            yield LineChunk(path, offset, line_number, data, format_spec)
            offset += len(data)
            line_number += data.count(b"\n")
    if pending:
        yield LineChunk(path, offset, line_number, bytes(pending), format_spec)


def head_lines(raw: BinaryIO, path: str, max_lines: int = 200, max_bytes: int = 256 * 1024) -> list[str]:
    """The first lines of a file as text, for format detection."""
    collected = bytearray()
    stats = ReadStats()
    for block in _decompressed_blocks(raw, path, stats):
        collected += block
        if len(collected) >= max_bytes or collected.count(b"\n") >= max_lines:
            break
    text = bytes(collected[:max_bytes]).decode("utf-8", "replace")
    return text.splitlines()[:max_lines]
