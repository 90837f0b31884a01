"""Line patterns: a log format as a sequence of literals and named captures.

One description serves three purposes: an RE2 regex run vectorised over Arrow
arrays (``pyarrow.compute``), a faster variant for the common case (no escaped
quotes; see ``parsers.fast_path``), and a step-by-step matcher that explains to a
person why a line did not match (``expected status code at column 87, found "abc"``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Literal:
    """Text that must appear verbatim."""

    text: str

    def regex(self, fast: bool) -> str:
        return re.escape(self.text).replace("\\ ", " ")

    @property
    def what(self) -> str:
        return repr(self.text)


@dataclasses.dataclass(frozen=True)
class Capture:
    """A field: ``name`` is the capture (a schema column or a converter input).

    ``convert`` (optional) turns the captured text into columns itself, for fields
    whose conversion depends on the format (a strftime layout, a label key);
    without it the converter is chosen by ``name`` (see ``parsers.convert``).
    """

    name: str
    pattern: str
    what: str
    fast_pattern: str | None = None
    convert: Callable | None = dataclasses.field(default=None, compare=False)

    def regex(self, fast: bool) -> str:
        return f"(?P<{self.name}>{self.body(fast)})"

    def body(self, fast: bool) -> str:
        return self.fast_pattern if fast and self.fast_pattern else self.pattern


@dataclasses.dataclass(frozen=True)
class Skip:
    """A field that is matched but not kept (e.g. trailing fields some servers append)."""

    pattern: str
    what: str
    fast_pattern: str | None = None

    def regex(self, fast: bool) -> str:
        body = self.fast_pattern if fast and self.fast_pattern else self.pattern
        return f"(?:{body})"


Token = Literal | Capture | Skip

# Reusable field bodies.  Quoted values allow backslash escapes (Apache writes \" and \xHH);
# the fast variants assume no escaped quote, which holds for almost every line.
QUOTED = r'(?:[^"\\]|\\.)*'
QUOTED_FAST = r'[^"]*'
NON_SPACE = r"[^ ]+"
BRACKETED = r"[^\]]+"


def drop_names(regex: str) -> str:
    """The same regex without named groups: RE2 matches far faster when it need not report captures."""
    return re.sub(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", "(?:", regex)


@dataclasses.dataclass(frozen=True)
class LinePattern:
    tokens: tuple[Token, ...]

    @property
    def captures(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tokens if isinstance(t, Capture))

    @property
    def capture_tokens(self) -> tuple[Capture, ...]:
        return tuple(t for t in self.tokens if isinstance(t, Capture))

    def regex(self, fast: bool = False) -> str:
        return "^" + "".join(t.regex(fast) for t in self.tokens) + "$"

    @property
    def has_fast_variant(self) -> bool:
        return any(getattr(t, "fast_pattern", None) for t in self.tokens)

    @functools.cached_property
    def _prefixes(self) -> list[re.Pattern]:
        return [
            re.compile("".join(t.regex(False) for t in self.tokens[: i + 1]), re.S) for i in range(len(self.tokens))
        ]

    def explain_mismatch(self, line: str) -> str:
        """Say where and why ``line`` does not match, in words a person understands."""
        if not line.strip():
            return "empty line"
        matched_to = 0
        for token, prefix in zip(self.tokens, self._prefixes):
            m = prefix.match(line)
            if m is None:
                found = line[matched_to : matched_to + 24]
                more = "…" if len(line) > matched_to + 24 else ""
                found_text = f"found {found!r}{more}" if found else "found end of line"
                return f"expected {token.what} at column {matched_to + 1}, {found_text}"
            matched_to = m.end()
        rest = line[matched_to : matched_to + 24]
        return f"unexpected text at column {matched_to + 1} after the last field: {rest!r}"
