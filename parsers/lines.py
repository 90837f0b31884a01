"""Chunks of whole log lines and their conversion to Arrow arrays.

The pipeline never moves one element per line: a ``LineChunk`` carries a few
megabytes of whole lines together with where they came from, so per-element
overhead is paid once per chunk while every line keeps its exact file offset
and line number.

Only ``\n`` ends a line (a ``\r`` before it is dropped), everywhere logwarden
splits data: Python's ``str.splitlines`` also breaks at ``\r``, ``\x0b``,
``\x0c``, ``\x1c``-``\x1e``, ``\x85``, U+2028 and U+2029, which a client can
put into any logged field, so it is never used on data; ``text_lines`` is.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclasses.dataclass(frozen=True)
class LineChunk:
    """Whole lines from one file; ``offset`` and ``line_number`` locate the first of them."""

    path: str
    offset: int
    line_number: int
    data: bytes
    format: str = "auto"
    #: IANA zone for timestamps written without one (error logs); from ``input.timezone``.
    timezone: str = "UTC"
    #: When non-zero, the chunk's last line was cut at ``input.max_line_bytes``: its length as written.
    #: The bytes past the cut were skipped, so such a line always ends its chunk (offsets stay exact).
    truncated_from: int = 0
    #: Whether a newline followed the cut line (it was skipped with the rest of the line).
    newline_after_cut: bool = False

    @property
    def span(self) -> int:
        """Bytes of the file this chunk stands for: its data, plus what was skipped of a cut line."""
        if not self.truncated_from:
            return len(self.data)
        return self.data.rfind(b"\n") + 1 + self.truncated_from + self.newline_after_cut

    def with_format(self, format_spec: str) -> LineChunk:
        return dataclasses.replace(self, format=format_spec)


@dataclasses.dataclass(frozen=True)
class SplitLines:
    """The lines of one chunk: raw bytes (for dead letters), text (for parsing) and positions."""

    raw: pa.BinaryArray
    text: pa.StringArray
    starts: np.ndarray  # byte offset of each line within the chunk
    valid_utf8: bool

    def __len__(self) -> int:
        return len(self.raw)


def _line_array(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, drop: np.ndarray) -> pa.BinaryArray:
    """Binary array of lines ``buf[starts[i]:ends[i]]``, built with one copy of the bytes."""
    n = len(starts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    values = np.delete(buf, drop) if len(drop) else buf
    return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values)]).cast(
        pa.binary()
    )


def split_lines(data: bytes) -> SplitLines:
    """Split a chunk into lines, dropping ``\\n`` / ``\\r\\n`` terminators.

    A final line without a terminator counts as a line; an empty chunk has none.
    Text that is not valid UTF-8 is decoded with replacement characters for
    parsing while ``raw`` keeps the original bytes.
    """
    if not data:
        empty = np.zeros(0, dtype=np.int64)
        return SplitLines(pa.array([], pa.binary()), pa.array([], pa.string()), empty, True)
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    ends = newlines
    if not data.endswith(b"\n"):
        ends = np.append(newlines, len(data))
    starts = np.empty(len(ends), dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    ends = ends.astype(np.int64)
    # Strip a carriage return before the newline (Windows line endings).
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    content_ends = ends - has_cr
    if len(ends) == len(newlines) and not has_cr.any() and len(data) < 2**31:
        # Every line ends in a bare newline (the usual case): view the chunk as lines with their newlines,
        # then drop the last byte of each, one copy in Arrow instead of a NumPy delete.
        offsets = np.append(starts, len(data)).astype(np.int32)
        with_newlines = pa.Array.from_buffers(
            pa.binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        raw = pc.binary_slice(with_newlines, 0, -1)
    else:
        drop = newlines
        if has_cr.any():
            drop = np.sort(np.concatenate([newlines, content_ends[has_cr]]))
        raw = _line_array(buf, starts, content_ends, drop)
    try:
        text = raw.cast(pa.string())  # validates UTF-8
        valid = True
    except pa.ArrowInvalid:
        valid = False
        text = pa.array([b.decode("utf-8", "replace") for b in raw.to_pylist()], pa.string())
    return SplitLines(raw, text, starts, valid)


def text_lines(text: str) -> list[str]:
    """``text`` split at ``\n`` only (and ``\r\n``); a final terminator does not start an empty line."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def empty_like(values: pa.Array) -> bool:
    """True where a line is empty or whitespace only."""
    return pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0)
