"""A log format defined by line patterns, parsed a whole chunk at a time with RE2.

Lines are tried against a cascade of variants: the fast pattern (no escaped
quotes), the exact pattern, then any recovery patterns (for example a line cut
off inside its last quoted field, kept with a ``truncated`` flag).  Whatever
matches none of them, or matches but holds a value that cannot be converted,
becomes a dead letter with a reason.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers.convert import convert_captures
from parsers.lines import LineChunk, split_lines
from parsers.pattern import LinePattern
from parsers.result import ParseResult, assemble_events, dead_letter_batch
from schemas import schema_for_kind


@dataclasses.dataclass(frozen=True)
class Recovery:
    """A looser pattern for damaged lines; events it yields carry ``flag`` in ``log_flags``."""

    pattern: LinePattern
    flag: str


@dataclasses.dataclass(frozen=True)
class RegexFormat:
    name: str
    kind: str  # "access" or "error"
    dataset: str  # ECS event.dataset, e.g. "apache.access"
    pattern: LinePattern
    recoveries: tuple[Recovery, ...] = ()
    description: str = ""

    @functools.cached_property
    def schema(self) -> pa.Schema:
        return schema_for_kind(self.kind)

    def _variants(self) -> list[tuple[str, tuple[str, ...], str | None]]:
        variants = []
        if self.pattern.has_fast_variant:
            variants.append((self.pattern.regex(fast=True), self.pattern.captures, None))
        variants.append((self.pattern.regex(fast=False), self.pattern.captures, None))
        for recovery in self.recoveries:
            variants.append((recovery.pattern.regex(), recovery.pattern.captures, recovery.flag))
        return variants

    def match_fraction(self, lines: list[str]) -> float:
        """Share of ``lines`` this format parses (used by auto-detection)."""
        if not lines:
            return 0.0
        text = pa.array(lines, pa.string())
        matched = np.zeros(len(lines), dtype=bool)
        for regex, _names, flag in self._variants():
            if flag is None:
                matched |= pc.match_substring_regex(text, regex).to_numpy(zero_copy_only=False)
        return float(matched.mean())

    def parse(self, chunk: LineChunk) -> ParseResult:
        lines = split_lines(chunk.data)
        n = len(lines)
        remaining = np.arange(n)
        pieces = []
        conversion_failures: dict[int, str] = {}
        for regex, names, flag in self._variants():
            if not len(remaining):
                break
            text = lines.text if len(remaining) == n else lines.text.take(pa.array(remaining))
            captures = pc.extract_regex(text, regex)
            matched = captures.is_valid().to_numpy(zero_copy_only=False)
            if not matched.any():
                continue
            rows = remaining[matched]
            columns = convert_captures(captures.filter(pa.array(matched)), names, self.schema)
            failed = columns.failed_mask()
            for local in np.flatnonzero(failed):
                conversion_failures[int(rows[local])] = columns.reason_for(int(local))
            keep = ~failed
            pieces.append((rows[keep], columns, keep, flag))
            remaining = remaining[~matched]
        events = assemble_events(self.schema, self.dataset, chunk, lines, pieces)
        dead_rows = np.sort(np.concatenate([remaining, np.array(list(conversion_failures), dtype=np.int64)]))
        reasons = [
            conversion_failures.get(int(i)) or self.pattern.explain_mismatch(lines.text[int(i)].as_py())
            for i in dead_rows
        ]
        dead = dead_letter_batch(chunk, lines, dead_rows, reasons, self.dataset)
        return ParseResult(self.kind, events, dead, n)
