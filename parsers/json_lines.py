"""JSON-lines access logs: nginx ``escape=json`` formats, Caddy and Traefik, keys mapped to columns.

Each line is one JSON object.  Keys are looked up by their dotted path in a
table of known spellings (nginx variable names as people use them in
``log_format ... escape=json``, Caddy's ``request.remote_ip``, Traefik's
``ClientHost``...), then converted by the same converters as text formats, so a
JSON log and a combined log of the same request give the same event.  Keys
the table does not know are kept in ``labels`` (value as JSON text).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa

from parsers.convert import convert_captures
from parsers.lines import LineChunk, split_lines
from parsers.nginx_logformat import VARIABLES
from parsers.pattern import Capture
from parsers.result import ParseResult, assemble_events, dead_letter_batch
from schemas import ACCESS_EVENT

#: Dotted key path -> capture name (a column, or a converter input from parsers.convert).
KEYS: dict[str, str] = {
    # nginx escape=json logs usually name keys after the variables they log.
    **{variable: spec[0] for variable, spec in VARIABLES.items()},
    "time": "time_iso8601",
    "timestamp": "time_iso8601",
    "@timestamp": "time_iso8601",
    "remote_ip": "source_address",
    "client_ip": "source_address",
    "method": "http_request_method",
    "path": "url_original",
    "referer": "http_request_referrer",
    "user_agent": "user_agent_original",
    # Caddy (http.log.access)
    "ts": "time_epoch_seconds",
    "request.remote_ip": "source_address",
    "request.client_ip": "source_proxy_ip",
    "request.remote_port": "source_port",
    "request.proto": "protocol",
    "request.method": "http_request_method",
    "request.host": "url_domain",
    "request.uri": "url_original",
    "request.headers.User-Agent": "user_agent_original",
    "request.headers.Referer": "http_request_referrer",
    "request.headers.X-Forwarded-For": "http_request_x_forwarded_for",
    "request.tls.server_name": "url_domain",
    "user_id": "user_name",
    "size": "http_response_body_bytes",
    "bytes_read": "http_request_bytes",
    "duration": "duration_seconds",
    # Traefik (accessLog.format: json)
    "StartUTC": "time_iso8601",
    "ClientHost": "source_address",
    "ClientPort": "source_port",
    "ClientUsername": "user_name",
    "RequestMethod": "http_request_method",
    "RequestPath": "url_original",
    "RequestProtocol": "protocol",
    "RequestHost": "url_domain",
    "RequestScheme": "url_scheme",
    "DownstreamStatus": "http_response_status_code",
    "DownstreamContentSize": "http_response_body_bytes",
    "RequestContentSize": "http_request_bytes",
    "Duration": "duration_ns",
    "request_User-Agent": "user_agent_original",
    "request_Referer": "http_request_referrer",
    "request_X-Forwarded-For": "http_request_x_forwarded_for",
    "TLSVersion": "tls_version",
    "TLSCipher": "tls_cipher",
}
#: Keys whose presence makes a JSON line an access-log entry rather than any JSON.
_TIME_CAPTURES = {"time_iso8601", "time_epoch_seconds", "time_clf", "time_epoch_ms"}
_REQUEST_CAPTURES = {"request_line", "url_original", "http_response_status_code", "http_request_method"}
#: Deepest nesting of objects and arrays read; an access-log record needs a few levels, a hostile one
#: nested thousands deep would exhaust Python's recursion limit in the decoder.
MAX_DEPTH = 64


def _depth_exceeds(value, limit: int) -> bool:
    """True when ``value`` nests objects/arrays deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _flatten(value: dict, prefix: str = "", out: dict | None = None) -> dict:
    """``{"request": {"uri": "/"}}`` -> ``{"request.uri": "/"}``."""
    out = {} if out is None else out
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            _flatten(item, path + ".", out)
        else:
            out[path] = item
    return out


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return _text(value[0]) if len(value) == 1 else ", ".join(str(_text(v)) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _read(line: str) -> tuple[dict[str, str | None], dict[str, str]] | str:
    """(captures, labels) of one line, or the reason it is not a JSON access-log entry."""
    if not line.strip():
        return "empty line"
    # Cheap screen first: only a line with many brackets can nest deeply.
    deep = line.count("{") + line.count("[") > MAX_DEPTH
    try:
        value = json.loads(line)
    except RecursionError:
        return f"JSON nested deeper than {MAX_DEPTH} levels"
    except ValueError as problem:
        return f"not valid JSON: {problem}"
    if deep and isinstance(value, (dict, list)) and _depth_exceeds(value, MAX_DEPTH):
        return f"JSON nested deeper than {MAX_DEPTH} levels"
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    captures: dict[str, str | None] = {}
    labels: dict[str, str] = {}
    for key, item in _flatten(value).items():
        name = KEYS.get(key)
        text = _text(item)
        if name is not None and name not in captures:
            captures[name] = text
        elif text not in (None, "", "-"):
            labels[key] = text
    if not _TIME_CAPTURES & captures.keys():
        return "JSON object without a time key (time, timestamp, ts, time_local, time_iso8601, StartUTC...)"
    if not _REQUEST_CAPTURES & captures.keys():
        return "JSON object without request keys (request, uri, status, method...)"
    return captures, labels


@dataclasses.dataclass(frozen=True)
class JsonLinesFormat:
    name: str = "json_lines"
    kind: str = "access"
    dataset: str = "http.access"
    description: str = "JSON lines (nginx escape=json, Caddy, Traefik): one object per request"
    field_count: int = 1

    def match_fraction(self, lines: list[str]) -> float:
        return float(np.mean([not isinstance(_read(line), str) for line in lines])) if lines else 0.0

    def parse(self, chunk: LineChunk) -> ParseResult:
        lines = split_lines(chunk.data)
        rows, dead_rows, reasons, read = [], [], [], []
        for i, line in enumerate(lines.text.to_pylist()):
            outcome = _read(line)
            if isinstance(outcome, str):
                dead_rows.append(i)
                reasons.append(outcome)
            else:
                rows.append(i)
                read.append(outcome)
        pieces = []
        if rows:
            names = sorted({name for captures, _ in read for name in captures})
            values = {name: pa.array([c.get(name) for c, _ in read], pa.string()) for name in names}
            tokens = [Capture(name, "", name) for name in names]
            columns = convert_captures(values, tokens, ACCESS_EVENT, len(rows), chunk.timezone)
            if any(labels for _, labels in read):
                columns.values["labels"] = pa.array(
                    [list(labels.items()) for _, labels in read], ACCESS_EVENT.field("labels").type
                )
            failed = columns.failed_mask()
            row_array = np.array(rows, dtype=np.int64)
            for local in np.flatnonzero(failed):
                dead_rows.append(int(row_array[local]))
                reasons.append(columns.reason_for(int(local)))
            pieces.append((row_array[~failed], columns, ~failed, None))
        order = np.argsort(np.array(dead_rows, dtype=np.int64), kind="stable")
        dead = dead_letter_batch(
            chunk, lines, np.array(dead_rows, dtype=np.int64)[order], [reasons[i] for i in order], self.dataset
        )
        events = assemble_events(ACCESS_EVENT, self.dataset, chunk, lines, pieces)
        return ParseResult("access", events, dead, len(lines))


FORMATS = (JsonLinesFormat(),)
