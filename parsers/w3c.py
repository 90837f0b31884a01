"""W3C extended logs (IIS, CloudFront): fields named by a ``#Fields:`` header that may change mid-file.

Chunks are parsed independently (possibly on different workers), so the header
cannot be remembered by the parser.  The reader sees the file in order: it
cuts a chunk at every ``#Fields:`` line and writes the active header into the
chunk's format spec (``iis:date time c-ip ...``, see ``track_fields_header``);
``format_for_spec`` turns that spec back into a parser.  Directive lines
(``#Version``, ``#Fields``...) are not requests: they are marked with
that reason, which ``parsers.registry`` counts as skipped (``read = parsed +
dead-lettered + skipped`` holds line for line).  HTTP.sys error logs
(``httperr*.log``: ``cs-uri``, ``s-reason``) are W3C logs too.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers.convert import convert_captures, label_converter
from parsers.lines import LineChunk, split_lines
from parsers.pattern import Capture
from parsers.result import ParseResult, assemble_events, dead_letter_batch
from schemas import ACCESS_EVENT

FAMILIES = ("w3c", "iis", "cloudfront")
DIRECTIVE_REASON = "W3C directive line, not a request"

#: IIS's default W3C field set (used until a #Fields header says otherwise).
IIS_DEFAULT_FIELDS = (
    "date",
    "time",
    "s-ip",
    "cs-method",
    "cs-uri-stem",
    "cs-uri-query",
    "s-port",
    "cs-username",
    "c-ip",
    "cs(User-Agent)",
    "cs(Referer)",
    "sc-status",
    "sc-substatus",
    "sc-win32-status",
    "time-taken",
)
#: CloudFront standard log fields (version 1.0), in file order.
CLOUDFRONT_FIELDS = (
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
)
DEFAULT_FIELDS = {"iis": IIS_DEFAULT_FIELDS, "cloudfront": CLOUDFRONT_FIELDS, "w3c": None}

#: W3C field -> capture (a column or converter input); "date"/"time" are combined into the timestamp.
FIELDS = {
    "c-ip": "source_address",
    "c-port": "source_port",
    "s-ip": "destination_ip",
    "s-port": "destination_port",
    "cs-method": "http_request_method",
    "cs-uri-stem": "url_path",
    "cs-uri-query": "url_args",
    "cs-uri": "url_original",  # HTTP.sys error logs (HTTPERR) write the whole URI in one field
    "cs-username": "user_name",
    "cs(User-Agent)": "user_agent_original",
    "cs(Referer)": "http_request_referrer",
    "cs(Referrer)": "http_request_referrer",
    "sc-status": "http_response_status_code",
    "sc-bytes": "http_response_bytes",
    "cs-bytes": "http_request_bytes",
    "cs(Host)": "url_domain",
    "cs-host": "url_domain",
    "x-host-header": "url_domain",
    "cs-protocol": "url_scheme",
    "cs-protocol-version": "protocol",
    "cs-version": "protocol",
    "ssl-protocol": "tls_protocol",
    "ssl-cipher": "tls_cipher",
    "x-forwarded-for": "http_request_x_forwarded_for",
    "X-Forwarded-For": "http_request_x_forwarded_for",
    "s-computername": "url_domain",
}


def family_of(spec: str) -> str | None:
    head = spec.split(":", 1)[0].strip()
    return head if head in FAMILIES else None


def is_header_spec(spec: str) -> bool:
    return ":" in spec and family_of(spec) is not None


def _time_taken(family: str) -> str:
    """IIS logs milliseconds, CloudFront seconds with a fraction."""
    return "duration_seconds" if family == "cloudfront" else "duration_ms"


@dataclasses.dataclass(frozen=True)
class W3CFormat:
    name: str  # the family: w3c, iis or cloudfront
    fields: tuple[str, ...] | None
    kind: str = "access"

    @property
    def dataset(self) -> str:
        return {"iis": "iis.access", "cloudfront": "aws.cloudfront"}.get(self.name, "w3c.access")

    @property
    def description(self) -> str:
        shown = " ".join(self.fields[:6]) + " ..." if self.fields else "fields from the #Fields header"
        return f"W3C extended log ({self.name}): {shown}"

    @property
    def field_count(self) -> int:
        return len(self.fields or ())

    def match_fraction(self, lines: list[str]) -> float:
        """Share of the sample's request lines this format turns into events (directives left aside)."""
        data = [line for line in lines if not line.startswith("#")]
        if not data or not self.fields or not all(_dated(line) for line in data[:3]):
            return 0.0
        result = self.parse(LineChunk("sample", 0, 1, "\n".join(data).encode("utf-8", "replace"), self.name))
        return result.events.num_rows / len(data)

    def parse(self, chunk: LineChunk) -> ParseResult:
        lines = split_lines(chunk.data)
        n = len(lines)
        text = lines.text
        directive = pc.fill_null(pc.starts_with(text, "#"), False).to_numpy(zero_copy_only=False)
        reasons: dict[int, str] = {int(i): DIRECTIVE_REASON for i in np.flatnonzero(directive)}
        pieces = []
        candidates = np.flatnonzero(~directive)
        if self.fields is None:
            reasons.update(
                {int(i): "no #Fields header before this line, so its fields are unknown" for i in candidates}
            )
        elif len(candidates):
            data = text.take(pa.array(candidates))
            pieces_per_row, counts = self._split_fields(data)
            fits = counts == len(self.fields)
            for local in np.flatnonzero(~fits):
                reasons[int(candidates[local])] = (
                    f"expected {len(self.fields)} fields (from #Fields), found {counts[local]}"
                    if lines.text[int(candidates[local])].as_py().strip()
                    else "empty line"
                )
            if fits.any():
                rows = candidates[fits]
                values, captures = self._captures(pieces_per_row.filter(pa.array(fits)))
                columns = convert_captures(values, captures, ACCESS_EVENT, len(rows), chunk.timezone)
                failed = columns.failed_mask()
                for local in np.flatnonzero(failed):
                    reasons[int(rows[local])] = columns.reason_for(int(local))
                pieces.append((rows[~failed], columns, ~failed, None))
        events = assemble_events(ACCESS_EVENT, self.dataset, chunk, lines, pieces)
        dead_rows = np.array(sorted(reasons), dtype=np.int64)
        dead = dead_letter_batch(chunk, lines, dead_rows, [reasons[int(i)] for i in dead_rows], self.dataset)
        return ParseResult("access", events, dead, n)

    def _split_fields(self, data: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """Fields of each row, split on spaces (W3C) or tabs (CloudFront), decided per row.

        A tab inside one space-separated line must not change how the other lines are split.
        """
        by_space = pc.split_pattern(data, " ")
        space_counts = pc.list_value_length(by_space).to_numpy(zero_copy_only=False)
        if not pc.any(pc.match_substring(data, "\t")).as_py():
            return by_space, space_counts
        by_tab = pc.split_pattern(data, "\t")
        tab_counts = pc.list_value_length(by_tab).to_numpy(zero_copy_only=False)
        use_tab = (tab_counts == len(self.fields)) & (space_counts != len(self.fields))
        if not use_tab.any():
            return by_space, space_counts
        if use_tab.all():
            return by_tab, tab_counts
        return pc.if_else(pa.array(use_tab), by_tab, by_space), np.where(use_tab, tab_counts, space_counts)

    def _captures(self, rows: pa.Array) -> tuple[dict[str, pa.Array], list[Capture]]:
        values: dict[str, pa.Array] = {}
        captures: list[Capture] = []
        column = {name: i for i, name in enumerate(self.fields)}
        if "date" in column and "time" in column:
            stamp = pc.binary_join_element_wise(
                pc.list_element(rows, column["date"]), pc.list_element(rows, column["time"]), "T"
            )
            values["time_iso8601"] = pc.binary_join_element_wise(stamp, "Z", "")
            captures.append(Capture("time_iso8601", "", "date and time"))
        for name, index in column.items():
            capture = FIELDS.get(name) or (_time_taken(self.name) if name == "time-taken" else None)
            if name in ("date", "time"):
                continue
            text = pc.list_element(rows, index)
            if capture is None or capture in values:
                key = "label_" + str(index)
                values[key] = text
                captures.append(Capture(key, "", name, convert=label_converter(name)))
                continue
            if capture == "user_agent_original" and self.name == "iis":
                text = pc.replace_substring(text, "+", " ")  # IIS writes spaces in the user agent as '+'
            values[capture] = text
            captures.append(Capture(capture, "", name))
        if "url_path" in values:
            query = values.get("url_args")
            has_query = pc.and_(pc.not_equal(query, "-"), pc.not_equal(query, "")) if query is not None else None
            original = values["url_path"]
            if has_query is not None:
                original = pc.if_else(has_query, pc.binary_join_element_wise(original, query, "?"), original)
            values["url_original_w3c"] = original
            captures.append(Capture("url_original_w3c", "", "URL", convert=_set_original))
        return values, captures


def _set_original(columns, url: pa.Array) -> None:
    columns.values["url_original"] = url


def _dated(line: str) -> bool:
    head = line[:10]
    return len(head) == 10 and head[4] == "-" and head[7] == "-" and head[:4].isdigit()


@functools.lru_cache(maxsize=64)
def format_for_spec(spec: str) -> W3CFormat:
    """``iis`` (default fields) or ``iis:date time c-ip ...`` (fields from a header) to a parser."""
    family = family_of(spec)
    if ":" in spec:
        return W3CFormat(family, tuple(spec.split(":", 1)[1].split()))
    default = DEFAULT_FIELDS[family]
    return W3CFormat(family, tuple(default) if default else None)


FORMATS = tuple(format_for_spec(family) for family in ("iis", "cloudfront", "w3c"))


def _family_from_header(lines: list[str], fields: list[str]) -> str:
    microsoft = ("#Software: Microsoft Internet Information Services", "#Software: Microsoft HTTP API")
    if any(line.startswith(microsoft) for line in lines):  # IIS, and HTTP.sys's error log (HTTPERR)
        return "iis"
    if "x-edge-location" in fields:
        return "cloudfront"
    return "w3c"


def detect_header(lines: list[str]) -> W3CFormat | None:
    """A W3C format when the sample holds a ``#Fields:`` header (the reader then tracks later headers)."""
    for line in lines:
        if line.startswith("#Fields:"):
            fields = line[len("#Fields:") :].split()
            return format_for_spec(_family_from_header(lines, fields))
    return None


def track_fields_header(chunks: Iterator[LineChunk], family: str) -> Iterator[LineChunk]:
    """Cut chunks at ``#Fields:`` lines and carry the active header in each chunk's format spec."""
    spec = None
    for chunk in chunks:
        data = chunk.data
        spec = spec or chunk.format
        cuts = [0]
        position = 0
        while True:
            found = data.find(b"#Fields:", position)
            if found < 0:
                break
            if found == 0 or data[found - 1 : found] == b"\n":
                cuts.append(found)
            position = found + 1
        cuts.append(len(data))
        offset, line_number = chunk.offset, chunk.line_number
        for start, end in itertools.pairwise(cuts):
            piece = data[start:end]
            if not piece:
                continue
            if piece.startswith(b"#Fields:"):
                header = piece.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
                spec = f"{family}:{header[len('#Fields:') :].strip()}"
            yield LineChunk(chunk.path, offset, line_number, piece, spec, chunk.timezone)
            offset += len(piece)
            line_number += piece.count(b"\n")
