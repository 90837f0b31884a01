"""A log format defined by line patterns, parsed a whole chunk at a time with RE2.

Lines are tried against a cascade: the fast path (quote splitting, see
``parsers.fast_path``) for lines without backslashes, the exact escape-aware
pattern, then any variants (other line shapes the same file may hold, such as
common-format lines in a combined log, or a line cut off inside its last quoted
field, kept with a ``truncated`` flag).  Whatever matches none of them, or
matches but holds a value that cannot be converted, becomes a dead letter with
a reason.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers.convert import convert_captures
from parsers.fast_path import FastPath, plan_fast_path
from parsers.lines import LineChunk, SplitLines, split_lines
from parsers.pattern import Capture, LinePattern, drop_names
from parsers.result import ParseResult, assemble_events, dead_letter_batch
from schemas import schema_for_kind


@dataclasses.dataclass(frozen=True)
class Variant:
    """Another line shape the format accepts; events it yields carry ``flag`` in ``log_flags`` if set."""

    pattern: LinePattern
    flag: str | None = None


#: Kept for callers that name damaged-line variants by their old name.
Recovery = Variant

#: ``log_flags`` value of an event whose line had more fields after the format's own (kept in ``labels``).
EXTRA_FIELDS_FLAG = "extra_fields"


def _keep_extra_fields(columns, text: pa.Array) -> None:
    columns.labels.append((EXTRA_FIELDS_FLAG, pc.utf8_trim_whitespace(text)))


#: Fields some servers append after a named format (``"%{X-Forwarded-For}i"``, ``%D``): kept, never dropped.
EXTRA_FIELDS = Capture(
    "extra_fields",
    r'(?: (?:"(?:[^"\\]|\\.)*"|[^ "]+))+',
    "extra fields after the format's own",
    convert=_keep_extra_fields,
)


def rows_with_backslash(lines: SplitLines) -> np.ndarray:
    """Mask of lines holding a backslash (possible escapes), found with one scan of the chunk's bytes."""
    n = len(lines)
    raw = lines.raw
    data = raw.buffers()[2]
    if data is None or n == 0:
        return np.zeros(n, dtype=bool)
    offsets = np.frombuffer(raw.buffers()[1], dtype=np.int32, count=n + 1, offset=raw.offset * 4)
    buf = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
    positions = np.flatnonzero(buf == 92) + offsets[0]
    mask = np.zeros(n, dtype=bool)
    if len(positions):
        mask[np.searchsorted(offsets, positions, side="right") - 1] = True
    return mask


@dataclasses.dataclass(frozen=True)
class RegexFormat:
    name: str
    kind: str  # "access" or "error"
    dataset: str  # ECS event.dataset, e.g. "apache.access"
    pattern: LinePattern
    variants: tuple[Variant, ...] = ()
    description: str = ""
    #: The user's own format line this was compiled from, when there was one.
    source: str = ""
    #: False for nginx ``escape=none``: values are written raw, so backslashes are not escapes.
    unescape: bool = True
    #: Accept more fields after the format's own, kept in ``labels["extra_fields"]`` and flagged (named formats).
    extra_fields: bool = False

    @functools.cached_property
    def schema(self) -> pa.Schema:
        return schema_for_kind(self.kind)

    @functools.cached_property
    def fast_path(self) -> FastPath | None:
        return plan_fast_path(self.pattern)

    @property
    def recoveries(self) -> tuple[Variant, ...]:
        return self.variants

    def _regexes(self) -> list[tuple[str, LinePattern, str | None]]:
        regexes = [(self.pattern.regex(fast=False), self.pattern, None)]
        for variant in self.variants:
            regexes.append((variant.pattern.regex(), variant.pattern, variant.flag))
        if self.extra_fields:
            for _regex, pattern, flag in list(regexes):
                if flag is None:
                    longer = LinePattern((*pattern.tokens, EXTRA_FIELDS))
                    regexes.append((longer.regex(), longer, EXTRA_FIELDS_FLAG))
        return regexes

    @functools.cached_property
    def _detection_regexes(self) -> list[str]:
        return [drop_names(regex) for regex, _p, flag in self._regexes() if flag in (None, EXTRA_FIELDS_FLAG)]

    def match_fraction(self, lines: list[str]) -> float:
        """Share of ``lines`` this format parses (used by auto-detection).

        A line that only a variant reads counts a little less than one the main pattern
        reads, so a file of common lines is called common, not combined-that-also-takes-common.
        """
        if not lines:
            return 0.0
        text = pa.array(lines, pa.string())
        score = np.zeros(len(lines))
        weights = (1.0, *[0.999] * (len(self._detection_regexes) - 1))
        for weight, regex in zip(weights, self._detection_regexes):
            matched = pc.fill_null(pc.match_substring_regex(text, regex), False).to_numpy(zero_copy_only=False)
            score = np.maximum(score, matched * weight)
        return float(score.mean())

    def parse(self, chunk: LineChunk) -> ParseResult:
        lines = split_lines(chunk.data)
        n = len(lines)
        remaining = np.arange(n)
        pieces = []
        conversion_failures: dict[int, str] = {}

        def convert(rows: np.ndarray, values: dict, pattern: LinePattern, flag: str | None, escapes: bool) -> None:
            columns = convert_captures(values, pattern.capture_tokens, self.schema, len(rows), chunk.timezone, escapes)
            failed = columns.failed_mask()
            for local in np.flatnonzero(failed):
                conversion_failures[int(rows[local])] = columns.reason_for(int(local))
            keep = ~failed
            pieces.append((rows[keep], columns, keep, flag))

        if self.fast_path is not None and n:
            escaped = rows_with_backslash(lines)
            candidates = np.flatnonzero(~escaped)
            text = lines.text if len(candidates) == n else lines.text.filter(pa.array(~escaped))
            local_rows, values = self.fast_path.extract(text)
            if len(local_rows):
                rows = candidates[local_rows]
                convert(rows, values, self.pattern, None, escapes=False)
                taken = np.zeros(n, dtype=bool)
                taken[rows] = True
                remaining = np.flatnonzero(~taken)
        for regex, pattern, flag in self._regexes():
            if not len(remaining):
                break
            text = lines.text if len(remaining) == n else lines.text.take(pa.array(remaining))
            captures = pc.extract_regex(text, regex)
            matched = captures.is_valid().to_numpy(zero_copy_only=False)
            if not matched.any():
                continue
            matched_captures = captures.filter(pa.array(matched))
            values = {name: pc.struct_field(matched_captures, [i]) for i, name in enumerate(pattern.captures)}
            convert(remaining[matched], values, pattern, flag, escapes=self.unescape)
            remaining = remaining[~matched]
        events = assemble_events(self.schema, self.dataset, chunk, lines, pieces)
        dead_rows = np.sort(np.concatenate([remaining, np.array(list(conversion_failures), dtype=np.int64)]))
        reasons = [
            conversion_failures.get(int(i)) or self.pattern.explain_mismatch(lines.text[int(i)].as_py())
            for i in dead_rows
        ]
        dead = dead_letter_batch(chunk, lines, dead_rows, reasons, self.dataset)
        return ParseResult(self.kind, events, dead, n)
