"""Named log formats, format strings, and picking a format for a file from its first lines.

A format is anything with ``name``, ``kind`` ("access"/"error"), ``dataset``,
``description``, ``parse(chunk) -> ParseResult`` and ``match_fraction(lines)``.
``get_format`` takes a name (``combined``), an Apache ``LogFormat`` line or an
nginx ``log_format`` line; ``detect_format`` scores every named format on a
file's first lines and says which it chose, or why it would not choose.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re

from parsers import apache, aws_alb, error_logs, json_lines, nginx, syslog, w3c
from parsers.apache_logformat import LogFormatError, compile_logformat, looks_like_logformat
from parsers.lines import LineChunk
from parsers.nginx_logformat import LogFormatError as NginxFormatError
from parsers.nginx_logformat import compile_log_format, looks_like_log_format
from parsers.result import ParseResult, all_dead, set_aside_non_requests, with_truncated_line

#: Every format logwarden knows by name, in the order auto-detection prefers them on a tie.
FORMATS: dict = {
    f.name: f
    for f in (
        *apache.FORMATS,
        *nginx.FORMATS,
        *error_logs.FORMATS,
        *json_lines.FORMATS,
        *aws_alb.FORMATS,
        *w3c.FORMATS,
        *syslog.FORMATS,
    )
}
#: Other names people use for the same formats.
ALIASES = {
    "main": "nginx_main", "nginx": "nginx_combined", "clf": "common", "alb": "aws_alb", "json": "json_lines",
    "elb": "aws_elb", "clb": "aws_elb", "nlb": "aws_nlb",
}  # fmt: skip

#: How many leading lines auto-detection looks at.
SAMPLE_LINES = 200


class UnknownFormatError(ValueError):
    """A format name or format string that logwarden cannot use."""


@functools.lru_cache(maxsize=256)
def get_format(spec: str):
    """The format for a name (``combined``), a LogFormat / log_format line, or a W3C header spec."""
    name = ALIASES.get(spec.strip(), spec.strip())
    if name in FORMATS:
        return FORMATS[name]
    if w3c.is_header_spec(spec):
        return w3c.format_for_spec(spec)
    try:
        if spec.strip().startswith("log_format"):
            return compile_log_format(spec)
        if looks_like_logformat(spec):
            return compile_logformat(spec)
        if looks_like_log_format(spec):
            return compile_log_format(spec)
    except (LogFormatError, NginxFormatError, ValueError) as problem:
        raise UnknownFormatError(f"cannot use log format {spec!r}: {problem}") from None
    close = difflib.get_close_matches(name, [*FORMATS, *ALIASES], n=1)
    hint = f"did you mean {close[0]!r}? Or " if close else ""
    raise UnknownFormatError(
        f"unknown log format {spec!r}; {hint}give a name ({', '.join(sorted(FORMATS))}), "
        "an Apache LogFormat string or an nginx log_format line"
    )


@dataclasses.dataclass(frozen=True)
class Detection:
    """The outcome of auto-detection: the chosen format (or None) and how well each candidate fit."""

    format: object | None
    scores: dict[str, float]
    reason: str


def _field_count(fmt) -> int:
    pattern = getattr(fmt, "pattern", None)
    return len(pattern.captures) if pattern is not None else getattr(fmt, "field_count", 0)


def detect_format(lines: list[str]) -> Detection:
    """Pick the format that parses the most of ``lines``; refuse to guess when none fits well.

    Ties go to the format with more fields (combined over common), since a richer
    format that parses every line is the more specific explanation of the file;
    formats that read the same lines the same way (Apache and nginx combined) are
    named in the reason.  A tie between an access and an error format is ambiguous
    and not guessed.
    """
    header = w3c.detect_header(lines[:SAMPLE_LINES])
    if header is not None:
        # the columns are each #Fields line's own, so the family's default field list is not named here
        return Detection(header, {header.name: 1.0}, "a W3C #Fields header (each one names the columns after it)")
    sample = [line for line in lines[:SAMPLE_LINES] if line.strip()]
    if not sample:
        return Detection(None, {}, "no non-empty lines to detect a format from")
    scores = {name: fmt.match_fraction(sample) for name, fmt in FORMATS.items()}
    ranked = sorted(FORMATS.values(), key=lambda f: (-scores[f.name], -_field_count(f)))
    best = ranked[0]
    shown = ", ".join(f"{f.name} {scores[f.name]:.0%}" for f in ranked[:3])
    if scores[best.name] < 0.5:
        return Detection(None, scores, f"no known format matches at least half of the first lines ({shown})")
    tied = [f for f in ranked[1:] if scores[f.name] == scores[best.name] and _field_count(f) == _field_count(best)]
    if any(f.kind != best.kind for f in tied):
        names = ", ".join(f.name for f in [best, *tied])
        return Detection(None, scores, f"ambiguous: {names} fit the first lines equally well; give --format")
    also = f"; the same lines also fit {', '.join(f.name for f in tied)}" if tied else ""
    reason = f"{best.name} matched {scores[best.name]:.0%} of the first {len(sample)} lines{also}"
    return Detection(best, scores, reason)


UNKNOWN_PREFIX = "unknown:"


def resolve_format(format_spec: str, sample_lines: list[str]) -> tuple[str, str]:
    """The format spec to parse a file with, and a sentence saying how it was chosen.

    ``auto`` is replaced by the detected format's name; a file no format fits gets
    ``unknown:<why>``, which the parser turns into dead letters carrying that reason.
    """
    if format_spec != "auto":
        return format_spec, f"format {format_spec} as configured"
    detection = detect_format(sample_lines)
    if detection.format is None:
        return UNKNOWN_PREFIX + detection.reason, f"format not recognised: {detection.reason}"
    return detection.format.name, f"detected format {detection.format.name} ({detection.reason})"


def entry_start(format_spec: str) -> re.Pattern | None:
    """For formats whose entries span lines: a bytes regex matching the first line of an entry."""
    if format_spec.startswith(UNKNOWN_PREFIX):
        return None
    try:
        return getattr(get_format(format_spec), "entry_start", None)
    except UnknownFormatError:
        return None


def parse_chunk(chunk: LineChunk) -> ParseResult:
    """Parse a chunk with its format; a format that cannot be used dead-letters the whole chunk.

    A line cut at the maximum line length is never parsed (what is left of it would be
    misread): it is a dead letter, kept as cut, whose reason says so.
    """
    if chunk.truncated_from:
        return with_truncated_line(chunk, _parse_whole_lines)
    return _parse_whole_lines(chunk)


def _parse_whole_lines(chunk: LineChunk) -> ParseResult:
    if chunk.format.startswith(UNKNOWN_PREFIX):
        return all_dead(chunk, "access", f"log format not recognised: {chunk.format[len(UNKNOWN_PREFIX) :]}")
    try:
        fmt = get_format(chunk.format)
    except UnknownFormatError as problem:
        return all_dead(chunk, "access", str(problem))
    return set_aside_non_requests(fmt.parse(chunk), w3c.DIRECTIVE_REASON)
