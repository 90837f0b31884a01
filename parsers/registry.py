"""Named log formats, and picking one for a file from its first lines."""

from __future__ import annotations

import dataclasses

from parsers import apache
from parsers.lines import LineChunk
from parsers.regex_format import RegexFormat
from parsers.result import ParseResult, all_dead

#: Every format logwarden knows by name; auto-detection tries them in this order.
FORMATS: dict[str, RegexFormat] = {f.name: f for f in apache.FORMATS}

#: How many leading lines auto-detection looks at.
SAMPLE_LINES = 200


class UnknownFormatError(ValueError):
    """A format name or format string that logwarden cannot use."""


def get_format(spec: str) -> RegexFormat:
    """The format for a name such as ``combined``."""
    try:
        return FORMATS[spec]
    except KeyError:
        raise UnknownFormatError(f"unknown log format {spec!r}; known formats: {', '.join(sorted(FORMATS))}") from None


@dataclasses.dataclass(frozen=True)
class Detection:
    """The outcome of auto-detection: the chosen format (or None) and how well each candidate fit."""

    format: RegexFormat | None
    scores: dict[str, float]
    reason: str


def detect_format(lines: list[str]) -> Detection:
    """Pick the format that parses the most of ``lines``; refuse to guess when none fits well.

    Ties go to the format with more fields (combined over common), since a richer
    format that parses every line is the more specific explanation of the file.
    """
    sample = [line for line in lines[:SAMPLE_LINES] if line.strip()]
    if not sample:
        return Detection(None, {}, "no non-empty lines to detect a format from")
    scores = {name: fmt.match_fraction(sample) for name, fmt in FORMATS.items()}
    best = max(FORMATS.values(), key=lambda f: (scores[f.name], len(f.pattern.captures)))
    if scores[best.name] < 0.5:
        shown = ", ".join(f"{name} {score:.0%}" for name, score in sorted(scores.items(), key=lambda kv: -kv[1])[:3])
        return Detection(None, scores, f"no known format matches at least half of the first lines ({shown})")
    return Detection(best, scores, f"{best.name} matched {scores[best.name]:.0%} of the first {len(sample)} lines")


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


def parse_chunk(chunk: LineChunk) -> ParseResult:
    """Parse a chunk with its format; a format that cannot be used dead-letters the whole chunk."""
    if chunk.format.startswith(UNKNOWN_PREFIX):
        return all_dead(chunk, "access", f"log format not recognised: {chunk.format[len(UNKNOWN_PREFIX) :]}")
    try:
        fmt = get_format(chunk.format)
    except UnknownFormatError as problem:
        return all_dead(chunk, "access", str(problem))
    return fmt.parse(chunk)
