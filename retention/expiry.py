"""Lines of a crypto-shredded month: counted as expired, never written.

Once a month's keys are destroyed, its data must not come back, not even from a
late or re-read log line: writing it would need fresh keys for a month whose
retention has ended (``Keyring`` refuses).  So parsing drops such events and dead
letters (by the month of their event time) and counts their lines, keeping
``lines read = parsed + dead-lettered + expired``.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers.error_logs import BLANK_LINE
from parsers.lines import LineChunk
from parsers.result import ParseResult

_BLANK = re.compile(BLANK_LINE.encode())


def _month_codes(periods: frozenset[str]) -> pa.Array:
    return pa.array(sorted(int(p[:4]) * 100 + int(p[5:7]) for p in periods), pa.int64())


def _in_months(ts: pa.Array, codes: pa.Array) -> np.ndarray:
    if not len(ts):
        return np.zeros(0, dtype=bool)
    code = pc.add(pc.multiply(pc.year(ts), 100), pc.month(ts)).cast(pa.int64())
    return pc.fill_null(pc.is_in(code, value_set=codes), False).to_numpy(zero_copy_only=False)


def _lines_of_events(result: ParseResult, chunk: LineChunk, expired: np.ndarray) -> int:
    """Lines the expired events consumed: one each, or, where entries span lines, up to the next entry."""
    if result.lines_parsed == result.events.num_rows:
        return int(expired.sum())
    starts = np.sort(
        np.concatenate(
            [
                result.events.column("log_offset").to_numpy(zero_copy_only=False),
                result.dead_letters.column("log_offset").to_numpy(zero_copy_only=False),
            ]
        )
    )
    end = chunk.offset + len(chunk.data)
    lines = 0
    for offset in result.events.column("log_offset").to_numpy(zero_copy_only=False)[expired]:
        following = starts[np.searchsorted(starts, offset, side="right") :]
        stop = int(following[0]) if len(following) else end
        piece = chunk.data[int(offset) - chunk.offset : stop - chunk.offset]
        lines += _entry_lines(piece)
    return lines


def _entry_lines(piece: bytes) -> int:
    """Lines of the entry ``piece`` starts with: a blank line ends it (and was counted as skipped)."""
    lines = piece.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for count, line in enumerate(lines):
        if count and _BLANK.match(line):
            return count
    return len(lines)


def drop_expired(result: ParseResult, chunk: LineChunk, destroyed: frozenset[str]) -> ParseResult:
    """``result`` without the events and dead letters of ``destroyed`` months (``YYYY-MM``), their lines counted."""
    if not destroyed:
        return result
    codes = _month_codes(destroyed)
    events_gone = _in_months(result.events.column("timestamp"), codes)
    dead_gone = _in_months(result.dead_letters.column("timestamp"), codes)
    if not events_gone.any() and not dead_gone.any():
        return result
    parsed_gone = _lines_of_events(result, chunk, events_gone) if events_gone.any() else 0
    return dataclasses.replace(
        result,
        events=result.events.filter(pa.array(~events_gone)),
        dead_letters=result.dead_letters.filter(pa.array(~dead_gone)),
        lines_parsed=result.lines_parsed - parsed_gone,
        lines_expired=result.lines_expired + parsed_gone + int(dead_gone.sum()),
    )
