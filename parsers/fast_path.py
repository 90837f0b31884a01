"""The fast path for quoted access-log formats: split on quotes instead of one big capturing regex.

RE2 answers "does this line match?" an order of magnitude faster than it reports
where nine groups matched.  A line with no backslash cannot hold an escaped
quote, and no fast field body can match a quote, so the whole fast pattern
matches exactly when splitting the line on ``"`` (``pyarrow.compute.split_pattern``)
gives as many pieces as the pattern has and each piece matches its own anchored
piece of the pattern.  A piece that is one whole field of any quote-free text is
taken as is; a piece with several fields (``%h %l %u [%t] ``) goes through a
short regex of its own, cheap because it is short, whose misses are the line's
misses; a piece of literals only is compared as such.  Formats whose trailing
skipped fields may hold quotes (so the count of pieces is not fixed) are first
checked against the whole fast pattern without captures (``match_substring_regex``).
Lines the fast path does not take fall to the exact, escape-aware regex.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers.pattern import QUOTED_FAST, Capture, LinePattern, Literal, Skip, drop_names

_QUOTE_PROBES = ('"', 'a"', '"a', 'a"b', ' " ')


def _may_match_quote(body: str) -> bool:
    """A field body that could swallow a quote would make the split ambiguous."""
    try:
        compiled = re.compile(f"(?:{body})", re.S)
    except re.error:
        return True
    return any(compiled.fullmatch(probe) for probe in _QUOTE_PROBES)


@dataclasses.dataclass(frozen=True)
class Segment:
    """The text between two quotes: which piece it is and the captures inside it."""

    index: int
    captures: tuple[Capture, ...]
    regex: str | None  # None when the whole piece is the single capture


@dataclasses.dataclass(frozen=True)
class FastPath:
    #: The whole fast pattern without captures, run first when ``pieces`` is None.
    validate: str
    splits_on_quotes: bool
    segments: tuple[Segment, ...]
    #: How many pieces a matching line splits into on quotes (None: not fixed, ``validate`` decides).
    pieces: int | None = None
    #: (piece index, anchored regex) for the pieces no segment regex checks.
    checks: tuple[tuple[int, str], ...] = ()
    #: (piece index, text) for the pieces of literals only (``" "`` between two quoted fields): compared as bytes.
    literals: tuple[tuple[int, bytes], ...] = ()

    def extract(self, text: pa.Array) -> tuple[np.ndarray, dict[str, pa.Array]]:
        """Rows of ``text`` the fast path parsed, and the captured text of those rows."""
        if self.pieces is None:
            matched = pc.fill_null(pc.match_substring_regex(text, self.validate), False).to_numpy(zero_copy_only=False)
        else:
            matched = np.ones(len(text), dtype=bool)
        pieces = pc.split_pattern(text, '"') if self.splits_on_quotes else None
        if pieces is not None and self.pieces is not None:
            matched &= pc.equal(pc.list_value_length(pieces), self.pieces).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(matched)
        if not len(rows):
            return rows, {}
        sub = text
        if len(rows) < len(text):
            mask = pa.array(matched)
            sub = text.filter(mask)
            pieces = pieces.filter(mask) if pieces is not None else None

        def piece(index: int) -> pa.Array:
            return pc.list_element(pieces, index) if pieces is not None else sub

        values: dict[str, pa.Array] = {}
        fits = np.ones(len(rows), dtype=bool)
        for segment in self.segments:
            if segment.regex is None:
                values[segment.captures[0].name] = piece(segment.index)
                continue
            parts = pc.extract_regex(piece(segment.index), segment.regex)
            if self.pieces is not None:
                fits &= parts.is_valid().to_numpy(zero_copy_only=False)
            for i, capture in enumerate(segment.captures):
                values[capture.name] = pc.struct_field(parts, [i])
        for index, regex in self.checks:
            fits &= pc.fill_null(pc.match_substring_regex(piece(index), regex), False).to_numpy(zero_copy_only=False)
        if self.literals:
            fits &= _pieces_equal(pieces, self.pieces, self.literals)
        if not fits.all():
            mask = pa.array(fits)
            rows = rows[fits]
            values = {name: column.filter(mask) for name, column in values.items()}
        return rows, values


def _pieces_equal(pieces: pa.ListArray, count: int, literals: tuple[tuple[int, bytes], ...]) -> np.ndarray:
    """Rows whose pieces at the given indexes are exactly the given bytes (every row has ``count`` pieces).

    Read off the pieces' offsets and bytes: no array of each piece is built, no regex run.
    """
    flat = pieces.values
    first = pieces.offsets[0].as_py()
    rows = len(pieces)
    offsets = np.frombuffer(flat.buffers()[1], np.int32, len(flat) + 1, flat.offset * 4)
    data = flat.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    fits = np.ones(rows, dtype=bool)
    for index, text in literals:
        which = first + index + count * np.arange(rows)
        starts = offsets[which]
        fits &= offsets[which + 1] - starts == len(text)
        for position, byte in enumerate(text):
            fits &= data[np.where(fits, starts + position, 0)] == byte if len(data) else False
    return fits


def plan_fast_path(pattern: LinePattern) -> FastPath | None:
    """The fast path for ``pattern``, or None when its fields could contain quotes."""
    segments: list[Segment] = []
    checks: list[tuple[int, str]] = []
    literals: list[tuple[int, bytes]] = []
    current: list[str] = []
    texts: list[str] | None = []  # the piece's literal text, None once it holds a field
    captures: list[Capture] = []
    index = 0
    fixed = True  # False once trailing skipped fields may hold quotes

    def close() -> None:
        anchored = "^" + "".join(current) + "$"
        if not captures:
            if texts is not None:
                literals.append((index, "".join(texts).encode()))
            else:
                checks.append((index, anchored))
            return
        single = len(captures) == 1 and current == [captures[0].regex(True)]
        segments.append(Segment(index, tuple(captures), None if single else anchored))
        if single and captures[0].body(fast=True) != QUOTED_FAST:
            checks.append((index, drop_names(anchored)))

    for token in pattern.tokens:
        if isinstance(token, Literal):
            first, *rest = token.text.split('"')
            if first:
                current.append(Literal(first).regex(True))
                texts = None if texts is None else [*texts, first]
            for part in rest:
                close()
                index += 1
                current, captures, texts = ([Literal(part).regex(True)] if part else []), [], [part]
        elif isinstance(token, Capture):
            if _may_match_quote(token.body(fast=True)):
                return None
            current.append(token.regex(True))
            captures.append(token)
            texts = None
        elif isinstance(token, Skip):
            if '"' in token.regex(True):
                if captures or any(isinstance(t, Capture) for t in pattern.tokens[pattern.tokens.index(token) :]):
                    return None
                fixed = False
                break  # trailing extra quoted fields: every capture is already placed
            current.append(token.regex(True))
            texts = None
    if fixed:
        close()
    if not segments:
        return None
    validate = drop_names(pattern.regex(fast=True))
    if not fixed:
        return FastPath(validate, index > 0, tuple(segments))
    return FastPath(validate, index > 0, tuple(segments), index + 1, tuple(checks), tuple(literals))
