"""Turn the text captured from log lines into typed, ECS-named Arrow columns.

Every function here is vectorised over a whole chunk.  A capture named like a
schema column is cast to that column's type; a few captures need real work
(timestamps, the request line, client addresses, escapes) and have a
converter of their own.  Values that cannot be converted are reported per row
so the line goes to the dead letters with the reason, never silently to null.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CLF_TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"

_REQUEST_LINE = (
    r"^(?P<http_request_method>[A-Za-z][A-Za-z0-9_-]*) (?P<url_original>.*?)"
    r"(?: (?P<protocol>[A-Za-z]+)/(?P<http_version>[0-9][0-9.]*))?$"
)
_URL_PARTS = r"^(?P<url_path>[^?#]*)(?:\?(?P<url_query>[^#]*))?"
_IP_LIKE = r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[^\]]+)?\]?)$"


@dataclasses.dataclass
class Columns:
    """Columns built from one chunk's captures, plus rows that failed conversion."""

    length: int
    values: dict[str, pa.Array] = dataclasses.field(default_factory=dict)
    failures: list[tuple[np.ndarray, Callable[[int], str]]] = dataclasses.field(default_factory=list)

    def fail(self, mask: pa.Array, reason: Callable[[int], str]) -> None:
        as_numpy = np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        if as_numpy.any():
            self.failures.append((as_numpy, reason))

    def failed_mask(self) -> np.ndarray:
        mask = np.zeros(self.length, dtype=bool)
        for rows, _ in self.failures:
            mask |= rows
        return mask

    def reason_for(self, row: int) -> str:
        return "; ".join(reason(row) for rows, reason in self.failures if rows[row])


def dash_to_null(values: pa.Array) -> pa.Array:
    """Apache and nginx write ``-`` for an absent value; make it a real null."""
    return pc.if_else(pc.equal(values, "-"), pa.scalar(None, values.type), values)


_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|.)", re.S)


def _unescape_one(text: str) -> str:
    def replace(m: re.Match) -> bytes:
        token = m.group(1)
        if token[:1] == b"x":
            return bytes([int(token[1:], 16)])
        return {b"n": b"\n", b"t": b"\t", b"r": b"\r"}.get(token, token)

    return _ESCAPE.sub(replace, text.encode("utf-8", "surrogateescape")).decode("utf-8", "replace")


def unescape(values: pa.Array) -> pa.Array:
    """Undo Apache/nginx backslash escapes (``\\"``, ``\\\\``, ``\\xHH``) on the rows that have any."""
    has_escape = pc.fill_null(pc.match_substring(values, "\\"), False)
    if not pc.any(has_escape).as_py():
        return values
    python = values.to_pylist()
    for i in np.flatnonzero(has_escape.to_numpy(zero_copy_only=False)):
        python[i] = _unescape_one(python[i])
    return pa.array(python, pa.string())


def split_url(columns: Columns, url: pa.Array) -> None:
    """``url_original`` kept exactly; ``url_path`` and ``url_query`` split off it (not decoded)."""
    columns.values["url_original"] = url
    parts = pc.extract_regex(url, _URL_PARTS)
    columns.values["url_path"] = pc.struct_field(parts, [0])
    columns.values["url_query"] = pc.struct_field(parts, [1])


def convert_request_line(columns: Columns, request: pa.Array) -> None:
    """Split ``GET /path?q HTTP/1.1``; anything else (``-``, TLS bytes) keeps a null method."""
    request = unescape(dash_to_null(request))
    columns.values["http_request_line"] = request
    parts = pc.extract_regex(request, _REQUEST_LINE)
    columns.values["http_request_method"] = pc.struct_field(parts, [0])
    split_url(columns, pc.struct_field(parts, [1]))
    columns.values["http_version"] = pc.struct_field(parts, [3])


def convert_clf_time(columns: Columns, text: pa.Array) -> None:
    """``10/Oct/2000:13:55:36 -0700`` to UTC microseconds."""
    ts = pc.strptime(text, format=CLF_TIME_FORMAT, unit="us", error_is_null=True)
    columns.values["timestamp"] = ts.cast(pa.timestamp("us", tz="UTC"))
    bad = pc.and_(pc.is_null(ts), pc.is_valid(text))
    columns.fail(bad, lambda i, text=text: f"timestamp {text[i].as_py()!r} is not like 10/Oct/2000:13:55:36 -0700")


def convert_source_address(columns: Columns, address: pa.Array) -> None:
    """The client as logged: an IP goes to ``source_ip``, a host name to ``source_domain``."""
    address = dash_to_null(address)
    is_ip = pc.match_substring_regex(address, _IP_LIKE)
    columns.values["source_address"] = address
    columns.values["source_ip"] = pc.if_else(is_ip, address, pa.scalar(None, pa.string()))
    columns.values["source_domain"] = pc.if_else(is_ip, pa.scalar(None, pa.string()), address)


def _scaled_int(factor: float) -> Callable[[pa.Array], pa.Array]:
    def convert(values: pa.Array) -> pa.Array:
        number = pc.cast(dash_to_null(values), pa.float64())
        return pc.cast(pc.round(pc.multiply(number, factor)), pa.int64())

    return convert


#: Captures that feed a converter instead of naming a column directly.
SPECIAL: dict[str, Callable[[Columns, pa.Array], None]] = {
    "time_clf": convert_clf_time,
    "request_line": convert_request_line,
    "source_address": convert_source_address,
    "url_original": split_url,
}

#: Captures whose text is a number in another unit than the column's.
SCALED: dict[str, tuple[str, Callable[[pa.Array], pa.Array]]] = {
    "duration_seconds": ("event_duration_us", _scaled_int(1_000_000)),
    "duration_ms": ("event_duration_us", _scaled_int(1_000)),
    "duration_us": ("event_duration_us", _scaled_int(1)),
}

#: Text columns that Apache and nginx write backslash-escaped.
ESCAPED_TEXT = {"http_request_referrer", "user_agent_original", "user_name", "message"}


def convert_captures(captures: pa.StructArray, names: tuple[str, ...], schema: pa.Schema) -> Columns:
    """Typed columns from the struct that ``extract_regex`` produced for matching rows."""
    columns = Columns(len(captures))
    for index, name in enumerate(names):
        values = pc.struct_field(captures, [index])
        if name in SPECIAL:
            SPECIAL[name](columns, values)
        elif name in SCALED:
            column, convert = SCALED[name]
            columns.values[column] = convert(values)
        elif name in schema.names:
            target = schema.field(name).type
            values = dash_to_null(values)
            if name in ESCAPED_TEXT:
                values = unescape(values)
            if target != pa.string():
                values = _cast_checked(columns, values, target, name)
            columns.values[name] = values
        else:
            raise ValueError(f"capture {name!r} is neither a column of the schema nor a known converter input")
    return columns


def _cast_checked(columns: Columns, values: pa.Array, target: pa.DataType, name: str) -> pa.Array:
    try:
        return pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Slow path: find the rows that do not convert and report them.
    python = values.to_pylist()
    out, bad = [], np.zeros(len(python), dtype=bool)
    for i, item in enumerate(python):
        try:
            out.append(None if item is None else pa.scalar(item).cast(target).as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            out.append(None)
            bad[i] = True
    columns.failures.append((bad, lambda i, python=python: f"{name} {python[i]!r} is not a valid {target}"))
    return pa.array(out, target)
