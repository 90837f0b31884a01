"""Apache (2.2 and 2.4) and nginx error logs: entries, some spanning several lines, to error events.

Error logs carry no time zone, so their times are read in the configured zone
(``input.timezone``, carried on each chunk).  An nginx entry may continue on
the following lines (a FastCGI backend's stderr); lines that do not start an
entry belong to the one before, and the reader never cuts a chunk before such
a line, so one event can consume several lines (``ParseResult.lines_parsed``).
Fields that live inside the message (client, request, server, user, AH code)
are pulled out with vectorised regexes, leaving ``message`` as written.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers import timestamps
from parsers.convert import Columns, convert_address_port, convert_captures, convert_request_line, empty_to_null
from parsers.lines import LineChunk, split_lines
from parsers.pattern import Capture, LinePattern, Literal, Skip, drop_names
from parsers.result import ParseResult, assemble_events, dead_letter_batch
from schemas import ERROR_EVENT

_NULL = pa.scalar(None, pa.string())


def _field_from(message: pa.Array, regex: str) -> pa.Array:
    """The group ``(?P<v>...)`` of ``regex`` searched in ``message``, null where it does not occur."""
    found = pc.extract_regex(message, regex)
    return pc.if_else(found.is_valid(), pc.struct_field(found, [0]), _NULL)


def _naive_time(layout: str) -> Callable[[Columns, pa.Array], None]:
    def convert(columns: Columns, text: pa.Array) -> None:
        ts = timestamps.parse_strftime(text, layout, columns.timezone)
        columns.values["timestamp"] = ts
        columns.fail(
            pc.is_null(ts),
            lambda i, text=text: f"timestamp {text[i].as_py()!r} is not {timestamps.VALID_TIME} like {layout!r}",
        )

    return convert


def _apache_time(columns: Columns, text: pa.Array) -> None:
    """``Mon Dec 26 16:15:55.103786 2016``: the fraction is cut off, parsed, and added back."""
    parts = pc.extract_regex(
        text,
        r"^[A-Za-z]{3} (?P<mon>[A-Za-z]{3}) +(?P<day>[0-9]{1,2}) (?P<clock>[0-9:]{8})"
        r"(?P<frac>\.[0-9]+)? (?P<y>[0-9]{4})$",
    )
    field = functools.partial(pc.struct_field, parts)
    whole = pc.binary_join_element_wise(field([0]), pc.utf8_lpad(field([1]), 2, "0"), field([4]), field([2]), " ")
    seconds = timestamps.parse_strftime(whole, "%b %d %Y %H:%M:%S", columns.timezone)
    frac = pc.cast(pc.utf8_rpad(pc.utf8_slice_codeunits(field([3]), 1, 7), 6, "0"), pa.int64())
    ts = pc.add(seconds.cast(pa.int64()), frac).cast(seconds.type)
    columns.values["timestamp"] = ts
    columns.fail(
        pc.is_null(ts),
        lambda i: f"timestamp {text[i].as_py()!r} is not {timestamps.VALID_TIME} like 'Mon Dec 26 16:22:08 2016'",
    )


def _apache_module_level(columns: Columns, text: pa.Array) -> None:
    """``core:notice`` (2.4) or ``notice`` (2.2) to ``log_logger`` and ``log_level``."""
    parts = pc.extract_regex(text, r"^(?:(?P<module>[^:]*):)?(?P<level>[A-Za-z]+[0-9]*)$")
    columns.values["log_logger"] = empty_to_null(pc.struct_field(parts, [0]))
    columns.values["log_level"] = pc.struct_field(parts, [1])


def _apache_pid(columns: Columns, text: pa.Array) -> None:
    parts = pc.extract_regex(text, r"^\[pid (?P<pid>[0-9]+)(?::tid (?P<tid>[0-9]+))?\] $")
    columns.values["process_pid"] = pc.cast(pc.struct_field(parts, [0]), pa.int32())
    columns.values["process_thread_id"] = pc.cast(empty_to_null(pc.struct_field(parts, [1])), pa.int64())


def _apache_client(columns: Columns, text: pa.Array) -> None:
    """``[client ip:port]``, or ``[remote ip:port]``: Apache 2.4 writes ``remote`` on connections without a
    scoreboard slot, such as HTTP/2 streams, and the address is still the client's."""
    columns.values["apache_client"] = _field_from(text, r"^\[(?:client|remote) (?P<v>[^\]]+)\] $")


def _apache_message(columns: Columns, message: pa.Array) -> None:
    """Message as written; the AH code, the client of trace lines, the user of auth failures, the referrer."""
    columns.values["message"] = message
    columns.values["error_code"] = _field_from(message, r"^(?P<v>AH[0-9]{5}):")
    client = columns.values.pop("apache_client")
    inner = _field_from(message, r"\[client (?P<v>[^\]]+)\]")
    convert_address_port(columns, pc.if_else(pc.is_null(client), inner, client))
    columns.values["user_name"] = _field_from(
        message, r"(?:^|: )user (?:'|\")?(?P<v>[^ :'\"]+)(?:'|\")?(?::| not found| was not found)"
    )
    referrer = _field_from(message, r", referer:? (?P<v>\S+)$")
    columns.labels.append(("referer", referrer))


def _nginx_connection(columns: Columns, text: pa.Array) -> None:
    columns.labels.append(("connection_id", _field_from(text, r"^\*(?P<v>[0-9]+) $")))


_QUOTED = r'"(?P<{}>(?:[^"\\]|\\.)*)"'
#: The context nginx appends to an HTTP error, in its order, up to the end of the entry.
_NGINX_CONTEXT = (
    r", client: (?P<client>[^,\"]+), server: (?P<server>[^,\"]*)"
    r"(?:, request: " + _QUOTED.format("request") + ")?"
    r'(?:, subrequest: "(?:[^"\\]|\\.)*")?(?:, upstream: "(?:[^"\\]|\\.)*")?'
    r"(?:, host: " + _QUOTED.format("host") + ")?"
    r"(?:, referrer: " + _QUOTED.format("referrer") + ")?$"
)


def _nginx_context(message: pa.Array) -> dict[str, pa.Array]:
    """client, server, request, host and referrer from the context nginx appended to the message.

    The message before it may quote what the client sent (a user name), so a forged
    ``, client: 127.0.0.1, server: ...`` there must not be taken for the real one:
    the context is the one that runs, field after field, to the end of the entry.
    Entries whose context has other fields (stream and mail proxies) fall back to
    the first occurrence of each field.
    """
    anchored = pc.extract_regex(message, _NGINX_CONTEXT)
    loose = {
        "client": r", client: (?P<v>[^,]+)",
        "server": r", server: (?P<v>[^,]*)",
        "request": r', request: "(?P<v>(?:[^"\\]|\\.)*)"',
        "host": r', host: "(?P<v>[^"]*)"',
        "referrer": r', referrer: "(?P<v>[^"]*)"',
    }
    fields = {}
    for index, (name, regex) in enumerate(loose.items()):
        exact = empty_to_null(pc.if_else(anchored.is_valid(), pc.struct_field(anchored, [index]), _NULL))
        fields[name] = pc.if_else(anchored.is_valid(), exact, _field_from(message, regex))
    return fields


def _nginx_message(columns: Columns, message: pa.Array) -> None:
    """Message as written; client, server, request, host and user pulled out of it."""
    columns.values["message"] = message
    context = _nginx_context(message)
    convert_address_port(columns, context["client"])
    columns.values["url_domain"] = empty_to_null(context["server"])
    request_columns = Columns(len(message))
    convert_request_line(request_columns, context["request"])
    columns.values["http_request_method"] = request_columns.values["http_request_method"]
    columns.values["url_original"] = request_columns.values["url_original"]
    columns.values["user_name"] = _field_from(message, r'user "(?P<v>[^"]+)"')
    columns.labels.append(("host", context["host"]))
    columns.labels.append(("referrer", context["referrer"]))


#: A line that ends a multi-line entry rather than joining it (then skipped as blank). Spelled out, not ``\s``,
#: so Arrow (RE2) and Python (``retention.expiry`` counting an entry's lines) agree on it.
BLANK_LINE = r"^[ \t\f\r]*$"


@dataclasses.dataclass(frozen=True)
class ErrorLogFormat:
    """An error log whose entries start with a recognisable prefix and may span lines."""

    name: str
    dataset: str
    pattern: LinePattern
    start: str  # regex matching the first line of an entry
    multiline: bool
    description: str = ""
    kind: str = "error"

    @property
    def schema(self) -> pa.Schema:
        return ERROR_EVENT

    @functools.cached_property
    def regex(self) -> str:
        return "(?s)" + self.pattern.regex()

    @functools.cached_property
    def entry_start(self) -> re.Pattern | None:
        """For the reader: where a chunk may be cut (never before a continuation line)."""
        return re.compile(self.start.encode(), re.M) if self.multiline else None

    def match_fraction(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        text = pa.array(lines, pa.string())
        matched = pc.fill_null(pc.match_substring_regex(text, drop_names(self.pattern.regex())), False)
        starts = pc.fill_null(pc.match_substring_regex(text, self.start), False)
        if self.multiline:  # continuation lines count as fitting when an entry precedes them
            first = np.flatnonzero(starts.to_numpy(zero_copy_only=False))
            after_first = np.arange(len(lines)) > (first[0] if len(first) else len(lines))
            matched = pc.or_(matched, pc.and_(pc.invert(starts), pa.array(after_first)))
        return float(np.asarray(matched.to_numpy(zero_copy_only=False)).mean())

    def _entries(self, text: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
        """(first line of each entry, its line count, its text); lines before the first entry are left out."""
        n = len(text)
        if not self.multiline:
            return np.arange(n), np.ones(n, dtype=np.int64), text
        is_start = pc.fill_null(pc.match_substring_regex(text, self.start), False).to_numpy(zero_copy_only=False)
        # A blank line ends an entry instead of joining it: it is set aside as blank, not kept in a message.
        is_start = is_start | pc.fill_null(pc.match_substring_regex(text, BLANK_LINE), False).to_numpy(
            zero_copy_only=False
        )
        starts = np.flatnonzero(is_start)
        spans = np.diff(np.append(starts, n))
        if (spans == 1).all():
            return starts, spans, text.take(pa.array(starts))
        python = text.to_pylist()
        joined = ["\n".join(python[s : s + k]) for s, k in zip(starts, spans)]
        return starts, spans, pa.array(joined, pa.string())

    @staticmethod
    def _after_blank(texts: pa.Array, starts: np.ndarray, row: int) -> bool:
        """Whether ``row`` follows a blank line (which ends an entry): then there is nothing it continues."""
        start = int(starts[np.searchsorted(starts, row, side="right") - 1])
        return not (texts[start].as_py() or "").strip(" \t\f\r")

    def parse(self, chunk: LineChunk) -> ParseResult:
        lines = split_lines(chunk.data)
        n = len(lines)
        starts, spans, entries = self._entries(lines.text)
        captures = pc.extract_regex(entries, self.regex)
        matched = captures.is_valid().to_numpy(zero_copy_only=False)
        pieces = []
        reasons: dict[int, str] = {}
        parsed_lines = 0
        if matched.any():
            hits = captures.filter(pa.array(matched))
            values = {name: pc.struct_field(hits, [i]) for i, name in enumerate(self.pattern.captures)}
            columns = convert_captures(values, self.pattern.capture_tokens, ERROR_EVENT, len(hits), chunk.timezone)
            failed = columns.failed_mask()
            rows, hit_spans = starts[matched], spans[matched]
            for local in np.flatnonzero(failed):
                reasons[int(rows[local])] = columns.reason_for(int(local))
            for multi in (False, True):
                keep = ~failed & ((hit_spans > 1) == multi)
                if keep.any():
                    pieces.append((rows[keep], columns, keep, "multiline" if multi else None))
            parsed_lines = int(hit_spans[~failed].sum())
        events = assemble_events(ERROR_EVENT, self.dataset, chunk, lines, pieces)
        dead = np.ones(n, dtype=bool)
        for start, span, ok in zip(starts, spans, matched):
            if ok and int(start) not in reasons:
                dead[start : start + span] = False
        dead_rows = np.flatnonzero(dead)
        entry_of = dict(zip(starts.tolist(), matched.tolist()))
        texts = lines.text
        dead_reasons = []
        for row in dead_rows.tolist():
            if row in reasons:
                dead_reasons.append(reasons[row])
            elif row in entry_of:
                dead_reasons.append(self.pattern.explain_mismatch(texts[row].as_py()))
            elif self.multiline and (row < (starts[0] if len(starts) else n) or self._after_blank(texts, starts, row)):
                dead_reasons.append(f"continuation line with no {self.name} entry before it")
            else:
                dead_reasons.append("continuation of an entry that could not be parsed")
        dead_batch = dead_letter_batch(chunk, lines, dead_rows, dead_reasons, self.dataset)
        return ParseResult("error", events, dead_batch, n, parsed_lines)


APACHE_TIME = r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]?[0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)? [0-9]{4}"

APACHE_ERROR = ErrorLogFormat(
    name="apache_error",
    dataset="apache.error",
    pattern=LinePattern(
        (
            Literal("["),
            Capture("apache_time", APACHE_TIME, "time like [Mon Dec 26 16:22:08 2016]", convert=_apache_time),
            Literal("] ["),
            Capture("module_level", r"[^\]\[ ]+", "[module:level]", convert=_apache_module_level),
            Literal("] "),
            Capture("pid", r"(?:\[pid [0-9]+(?::tid [0-9]+)?\] )?", "[pid N:tid N]", convert=_apache_pid),
            Capture("client", r"(?:\[(?:client|remote) [^\]]+\] )?", "[client address]", convert=_apache_client),
            Capture("apache_message", r".*", "message", convert=_apache_message),
        )
    ),
    start=r"^\[" + APACHE_TIME + r"\] \[",
    multiline=False,
    description="Apache httpd 2.2/2.4 error log ([time] [module:level] [pid N:tid N] [client ip:port] AHnnnnn: ...)",
)

NGINX_TIME = r"[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
#: What syslog or journald may put before an nginx entry (``host nginx[983478]: ``, sometimes twice, maybe after
#: ``Dec  9 21:35:20``): a line with it plus nginx's own time and level starts an entry of its own, never a
#: continuation of the one before (that attributed one client's user name to another client).
NGINX_LINE_PREFIX = (
    r"(?:(?:[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} )?[^ \[\]]+ [^ \[\]:]+(?:\[[0-9]+\])?: )*"
)

NGINX_ERROR = ErrorLogFormat(
    name="nginx_error",
    dataset="nginx.error",
    pattern=LinePattern(
        (
            Skip(NGINX_LINE_PREFIX, "syslog prefix (host nginx[pid]: )"),
            Capture(
                "nginx_time", NGINX_TIME, "time like 2016/10/25 14:49:34", convert=_naive_time("%Y/%m/%d %H:%M:%S")
            ),
            Literal(" ["),
            Capture("log_level", r"[a-z]+", "[level]"),
            Literal("] "),
            Capture("process_pid", r"[0-9]+", "process id"),
            Literal("#"),
            Capture("process_thread_id", r"[0-9]+", "thread id"),
            Literal(": "),
            Capture("connection", r"(?:\*[0-9]+ )?", "*connection id", convert=_nginx_connection),
            Capture("nginx_message", r".*", "message", convert=_nginx_message),
        )
    ),
    start=r"^" + NGINX_LINE_PREFIX + NGINX_TIME + r" \[",
    multiline=True,
    description="nginx error log (YYYY/MM/DD HH:MM:SS [level] pid#tid: *cid message, client: ..., request: ...)",
)

FORMATS = (APACHE_ERROR, NGINX_ERROR)
