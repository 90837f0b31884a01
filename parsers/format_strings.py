"""From a server's format string, split into literal text and fields, to a line pattern.

Apache ``LogFormat`` and nginx ``log_format`` compilers both turn their directives
into ``Field``s; this module decides how each field is matched from where it
stands: inside quotes it may hold escaped quotes, elsewhere it runs up to the
next literal character.  A field whose column another field already fills, or
which no column fits, is kept in the ``labels`` map so nothing is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from parsers.convert import label_converter
from parsers.pattern import QUOTED, QUOTED_FAST, Capture, LinePattern, Literal, Token
from parsers.regex_format import EXTRA_FIELDS, RegexFormat

#: Bodies for fields of a known shape; an unexpected value then fails with a clear reason.
STATUS = r"[0-9]{3}"
NUMBER_OR_DASH = r"[0-9]+|-"
DECIMAL_OR_DASH = r"[0-9]+(?:\.[0-9]+)?|-"


@dataclasses.dataclass(frozen=True)
class Field:
    """One directive or variable, resolved to the capture it feeds."""

    name: str  # a schema column or converter input (see parsers.convert); "" = labels only
    what: str  # for people: ``status code (%>s)``
    label_key: str  # key in ``labels`` when no column takes the value
    body: str | None = None  # a fixed shape, or None for "up to the next literal"
    convert: Callable | None = None
    bracketed: bool = False  # Apache's %t writes its own [brackets]
    #: Columns the converter fills; a later field for any of them goes to labels.
    fills: tuple[str, ...] = ()

    def columns(self) -> tuple[str, ...]:
        return self.fills or ((self.name,) if self.name else ())


Part = str | Field


def _merge_literals(parts: Sequence[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return merged


def _bodies(field: Field, before: Part | None, after: Part | None) -> tuple[str, str]:
    """The exact and fast regex bodies of ``field`` given its neighbours."""
    if field.bracketed:
        return r"[^\]]+", r'[^\]"]+'
    quoted = isinstance(before, str) and before.endswith('"') and isinstance(after, str) and after.startswith('"')
    if field.body is not None:
        return field.body, field.body
    if quoted:
        return QUOTED, QUOTED_FAST
    if isinstance(after, str):
        stop = after[0]
        escaped = "\\" + stop if stop in "]\\^-" else stop
        return f"[^{escaped}]+", f'[^{escaped}"]+' if stop != '"' else '[^"]+'
    if after is None:
        return ".+", '[^"]+'
    return ".+?", '[^"]+?'


def build_pattern(parts: Sequence[Part]) -> LinePattern:
    """A line pattern from literal strings and fields, in order."""
    parts = _merge_literals(parts)
    tokens: list[Token] = []
    taken: set[str] = set()
    for index, part in enumerate(parts):
        if isinstance(part, str):
            tokens.append(Literal(part))
            continue
        before = parts[index - 1] if index else None
        after = parts[index + 1] if index + 1 < len(parts) else None
        exact, fast = _bodies(part, before, after)
        wanted = part.columns()
        if part.name and not taken.intersection(wanted):
            taken.update(wanted)
            capture = Capture(part.name, exact, part.what, fast if fast != exact else None, part.convert)
        else:
            capture = Capture(f"label_{index}", exact, part.what, fast if fast != exact else None)
            capture = dataclasses.replace(capture, convert=label_converter(part.label_key))
        if part.bracketed:
            tokens.extend([Literal("["), capture, Literal("]")])
        else:
            tokens.append(capture)
    merged: list[Token] = []
    for token in tokens:
        if isinstance(token, Literal) and merged and isinstance(merged[-1], Literal):
            merged[-1] = Literal(merged[-1].text + token.text)
        else:
            merged.append(token)
    return LinePattern(tuple(merged))


def access_format(
    parts: Sequence[Part],
    *,
    name: str,
    dataset: str,
    description: str,
    source: str,
    variants: tuple = (),
    trailing: tuple = (),
    unescape: bool = True,
) -> RegexFormat:
    """An access-log parser for a format string's parts; ``trailing`` tokens are accepted after them
    (``EXTRA_FIELDS`` among them: more fields are kept in ``labels`` with a flag)."""
    pattern = build_pattern(parts)
    return RegexFormat(
        name=name,
        kind="access",
        dataset=dataset,
        pattern=LinePattern(pattern.tokens + tuple(t for t in trailing if t is not EXTRA_FIELDS)),
        variants=variants,
        extra_fields=EXTRA_FIELDS in trailing,
        description=description,
        source=source,
        unescape=unescape,
    )


def unquote_config_string(text: str, quote: str) -> tuple[str, str]:
    """Read one quoted string from the start of ``text``; return (its value, the rest).

    Backslash escapes the quote and itself (``\\"`` -> ``"``); other escapes such
    as ``\\n`` are kept for the format's own escape handling.
    """
    assert text[0] == quote
    out = []
    i = 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
            continue
        if char == quote:
            return "".join(out), text[i + 1 :]
        out.append(char)
        i += 1
    raise ValueError(f"unterminated {quote}-quoted string in {text!r}")
