"""Turn the text captured from log lines into typed, ECS-named Arrow columns.

Every function here is vectorised over a whole chunk.  A capture named like a
schema column is cast to that column's type; a few captures need real work
(timestamps, the request line, client addresses, escapes) and have a
converter of their own.  Values that cannot be converted are reported per row
so the line goes to the dead letters with the reason, never silently to null.
Captures that no column fits are kept in the ``labels`` map.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parsers import timestamps

_REQUEST_LINE = (
    r"^(?P<http_request_method>[A-Za-z][A-Za-z0-9_-]*) (?P<url_original>.*?)"
    r"(?: (?P<protocol>[A-Za-z]+)/(?P<http_version>[0-9][0-9.]*))?$"
)
#: The shape of almost every request line, ``METHOD TARGET PROTOCOL/VERSION``: such rows are split on spaces
#: instead of a regex, once their method and protocol pieces match these.
_METHOD = r"^[A-Za-z][A-Za-z0-9_-]*$"
_PROTOCOL = r"^[A-Za-z]+/[0-9][0-9.]*$"
_IP_LIKE = r"^(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[^\]]+)?\]?)$"
_NULL_STRING = pa.scalar(None, pa.string())


@dataclasses.dataclass
class Columns:
    """Columns built from one chunk's captures, plus rows that failed conversion."""

    length: int
    values: dict[str, pa.Array] = dataclasses.field(default_factory=dict)
    failures: list[tuple[np.ndarray, Callable[[int], str]]] = dataclasses.field(default_factory=list)
    labels: list[tuple[str, pa.Array]] = dataclasses.field(default_factory=list)
    timezone: str = "UTC"
    #: False when the rows are known to hold no backslash (the fast path), so there is nothing to unescape.
    may_escape: bool = True

    def unescape(self, values: pa.Array) -> pa.Array:
        return unescape(values) if self.may_escape else values

    def derive(self, name: str, values: pa.Array) -> None:
        """Set a column computed from another field, unless a directive gave it explicitly."""
        self.values.setdefault(name, values)

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


def null_where(values: pa.Array, mask: pa.Array) -> pa.Array:
    """``values`` with null where ``mask`` is true.

    Strings keep their buffers and get a new validity bitmap only: ``if_else`` copied every
    string of a column to blank a few, and most columns go through here.  The bytes of a
    blanked value stay in the data buffer, where no reader of a null looks.
    """
    blank = pc.fill_null(mask, False)
    if not pc.any(blank).as_py():
        return values
    keep = pc.invert(blank) if not values.null_count else pc.and_not(values.is_valid(), blank)
    if values.type != pa.string() or keep.offset or keep.null_count:
        return pc.if_else(blank, pa.scalar(None, values.type), values)
    offsets = values.buffers()[1].slice(values.offset * 4, (len(values) + 1) * 4)
    return pa.Array.from_buffers(values.type, len(values), [keep.buffers()[1], offsets, values.buffers()[2]])


def dash_to_null(values: pa.Array) -> pa.Array:
    """Apache and nginx write ``-`` for an absent value; make it a real null."""
    return null_where(values, pc.equal(values, "-"))


def empty_to_null(values: pa.Array) -> pa.Array:
    return null_where(values, pc.equal(values, ""))


_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|.)", re.S)
_SIMPLE_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"b": b"\b", b"f": b"\f", b"v": b"\v"}


def _unescape_one(text: str) -> str:
    def replace(m: re.Match) -> bytes:
        token = m.group(1)
        if token[:1] == b"x" and len(token) == 3:
            return bytes([int(token[1:], 16)])
        if token[:1] == b"u" and len(token) == 5:
            return chr(int(token[1:], 16)).encode("utf-8", "surrogatepass")
        return _SIMPLE_ESCAPES.get(token, token)

    return _ESCAPE.sub(replace, text.encode("utf-8", "surrogateescape")).decode("utf-8", "replace")


def unescape(values: pa.Array) -> pa.Array:
    """Undo Apache/nginx backslash escapes (``\\"``, ``\\\\``, ``\\xHH``, JSON ``\\uXXXX``) on rows that have any."""
    has_escape = pc.fill_null(pc.match_substring(values, "\\"), False)
    if not pc.any(has_escape).as_py():
        return values
    python = values.to_pylist()
    for i in np.flatnonzero(has_escape.to_numpy(zero_copy_only=False)):
        python[i] = _unescape_one(python[i])
    return pa.array(python, pa.string())


def _piece(parts: pa.ListArray, index: int) -> pa.Array:
    """Element ``index`` of each list, null where a list is shorter (``list_element`` would raise)."""
    return pc.list_element(pc.list_slice(parts, index, index + 1, return_fixed_size_list=True), 0)


def split_url(columns: Columns, url: pa.Array) -> None:
    """``url_original`` kept exactly; ``url_path`` and ``url_query`` split off it (not decoded).

    ``url_query`` is null when the URL has no ``?`` and ``""`` when it ends in one.  An
    absolute URL (a proxy request, AWS ALB) also gives ``url_scheme`` and ``url_domain``.
    """
    columns.derive("url_original", url)
    # A URL that starts with "/" has no scheme: one byte compared per row instead of a regex when all do.
    if not pc.all(pc.fill_null(pc.starts_with(url, "/"), True)).as_py():
        absolute = pc.fill_null(pc.match_substring_regex(url, r"^[A-Za-z][A-Za-z0-9+.-]*://"), False)
        if pc.any(absolute).as_py():
            parts = pc.extract_regex(url, r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/?#]*)(?P<rest>.*)$")
            columns.derive("url_scheme", pc.if_else(absolute, pc.struct_field(parts, [0]), _NULL_STRING))
            host = pc.replace_substring_regex(pc.struct_field(parts, [1]), r"^[^@]*@|:[0-9]*$", "")
            columns.derive("url_domain", pc.if_else(absolute, empty_to_null(host), _NULL_STRING))
            url = pc.if_else(absolute, pc.struct_field(parts, [2]), url)
    parts = pc.split_pattern(url, "?", max_splits=1)
    columns.derive("url_path", pc.list_element(parts, 0))
    columns.derive("url_query", _piece(parts, 1))


def _version(protocol: pa.Array) -> pa.Array:
    """``1.1`` of ``HTTP/1.1``: sliced off when every protocol is HTTP, else split at the first ``/``."""
    if pc.all(pc.fill_null(pc.starts_with(protocol, "HTTP/"), True)).as_py():
        return pc.utf8_slice_codeunits(protocol, 5)
    return _piece(pc.split_pattern(protocol, "/", max_splits=1), 1)


def convert_request_line(columns: Columns, request: pa.Array) -> None:
    """Split ``GET /path?q HTTP/1.1``; anything else (``-``, TLS bytes, HTTP/0.9) keeps what fits.

    Rows shaped like ``METHOD TARGET PROTO/VERSION`` are split on spaces; the rest
    go through a regex.  A request line that is not HTTP at all gets a null method.
    The shape is checked on the pieces, not the whole line: the method and protocol are
    short, while a regex anchored at both ends reads the whole target too.
    """
    request = columns.unescape(dash_to_null(request))
    columns.derive("http_request_line", request)
    parts = pc.split_pattern(request, " ")
    three = pc.fill_null(pc.equal(pc.list_value_length(parts), 3), False)
    if pc.all(three).as_py():
        method, url, protocol = (pc.list_element(parts, i) for i in range(3))
    else:
        method, url, protocol = (_piece(parts, i) for i in range(3))
    simple = pc.and_(
        pc.and_(three, pc.greater(pc.utf8_length(url), 0)),
        pc.and_(pc.match_substring_regex(method, _METHOD), pc.match_substring_regex(protocol, _PROTOCOL)),
    )
    simple = pc.fill_null(simple, False)
    version = _version(protocol)
    if not pc.all(simple).as_py():
        parsed = pc.extract_regex(null_where(request, simple), _REQUEST_LINE)
        method = pc.if_else(simple, method, pc.struct_field(parsed, [0]))
        url = pc.if_else(simple, url, pc.struct_field(parsed, [1]))
        version = pc.if_else(simple, version, empty_to_null(pc.struct_field(parsed, [3])))
    columns.derive("http_request_method", method)
    columns.derive("http_version", version)
    split_url(columns, url)


def convert_protocol(columns: Columns, protocol: pa.Array) -> None:
    """``HTTP/1.1`` (``%H``, ``$server_protocol``) to ``http_version`` ``1.1``."""
    protocol = dash_to_null(protocol)
    version = pc.extract_regex(protocol, r"^[A-Za-z]+/(?P<v>.*)$")
    columns.values["http_version"] = pc.if_else(version.is_valid(), pc.struct_field(version, [0]), protocol)


def convert_query_string(columns: Columns, query: pa.Array) -> None:
    """Apache ``%q`` writes ``?a=b`` or nothing: no query is null, ``?`` alone is ``""``."""
    columns.values["url_query"] = pc.if_else(
        pc.starts_with(query, "?"), pc.utf8_slice_codeunits(query, 1), pa.scalar(None, pa.string())
    )


def convert_url_args(columns: Columns, args: pa.Array) -> None:
    """nginx ``$args``: the query without ``?``; empty means there was none."""
    columns.values["url_query"] = empty_to_null(dash_to_null(args))


def _time_converter(parse: Callable[[pa.Array], pa.Array], shape: str) -> Callable[[Columns, pa.Array], None]:
    def convert(columns: Columns, text: pa.Array) -> None:
        text = dash_to_null(text)
        ts = parse(text)
        earlier = columns.values.get("timestamp")  # JSON lines may give the time under different keys per row
        columns.values["timestamp"] = ts if earlier is None else pc.coalesce(earlier, ts)
        bad = pc.and_(pc.is_null(ts), pc.is_valid(text))
        columns.fail(
            bad, lambda i, text=text: f"timestamp {text[i].as_py()!r} is not {timestamps.VALID_TIME} like {shape}"
        )

    return convert


convert_clf_time = _time_converter(timestamps.parse_clf, "10/Oct/2000:13:55:36 -0700")


def strftime_converter(layout: str) -> Callable[[Columns, pa.Array], None]:
    """Converter for ``%{layout}t``; a layout without a zone is read in the configured zone."""

    def convert(columns: Columns, text: pa.Array) -> None:
        _time_converter(lambda t: timestamps.parse_strftime(t, layout, columns.timezone), f"{layout!r}")(columns, text)

    return convert


def convert_iso8601(columns: Columns, text: pa.Array) -> None:
    _time_converter(lambda t: timestamps.parse_iso8601(t, columns.timezone), "2016-12-07T10:05:07+01:00")(columns, text)


def epoch_converter(unit_per_second: int) -> Callable[[Columns, pa.Array], None]:
    def parse(text: pa.Array) -> pa.Array:
        number = pc.cast(pc.if_else(pc.match_substring_regex(text, r"^[0-9]+(?:\.[0-9]*)?$"), text, None), pa.float64())
        return timestamps.parse_epoch(number, unit_per_second)

    return _time_converter(parse, "seconds since 1970" if unit_per_second == 1 else "a number since 1970")


def _without_zone(columns: Columns, ip: pa.Array, label: str) -> pa.Array:
    """An IPv6 address's zone id (``fe80::1%eth0``, IIS's ``::1%0``) moved from the address to ``labels[label]``:
    the zone names an interface on the logging host, and an address with it is no address (lookups, CIDR rules)."""
    if not pc.any(pc.fill_null(pc.match_substring(ip, "%"), False)).as_py():
        return ip
    parts = pc.extract_regex(ip, r"^(?P<ip>[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)%(?P<zone>.+)$")
    zoned = parts.is_valid()
    columns.labels.append((label, pc.if_else(zoned, pc.struct_field(parts, [1]), _NULL_STRING)))
    return pc.if_else(zoned, pc.struct_field(parts, [0]), ip)


def convert_source_address(columns: Columns, address: pa.Array) -> None:
    """The client as logged: an IP goes to ``source_ip``, a host name to ``source_domain``.

    ``[2001:db8::1]`` loses its brackets; an IPv6 zone id (``fe80::1%eth0``) stays in
    ``source_address`` and goes to ``labels["source_ip_zone"]``, not into ``source_ip``.
    """
    address = dash_to_null(address)
    is_ip = pc.match_substring_regex(address, _IP_LIKE)
    columns.values["source_address"] = address
    ip = pc.if_else(is_ip, pc.utf8_trim(address, "[]"), _NULL_STRING)
    columns.values["source_ip"] = _without_zone(columns, ip, "source_ip_zone")
    columns.values["source_domain"] = pc.if_else(is_ip, _NULL_STRING, address)


def convert_destination_ip(columns: Columns, address: pa.Array) -> None:
    """The server address as logged (IIS ``s-ip``), brackets and zone id removed (zone in ``labels``)."""
    ip = pc.utf8_trim(dash_to_null(address), "[]")
    columns.values["destination_ip"] = _without_zone(columns, ip, "destination_ip_zone")


def convert_address_port(columns: Columns, client: pa.Array) -> None:
    """``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:5678`` or Apache 2.4's ``::1:5678`` to address and port."""
    client = empty_to_null(dash_to_null(client))
    v4 = pc.extract_regex(client, r"^(?P<ip>[^:\[\]]+|\[[^\]]+\])(?::(?P<port>[0-9]+))?$")
    address = pc.if_else(v4.is_valid(), pc.struct_field(v4, [0]), client)
    port = pc.if_else(v4.is_valid(), empty_to_null(pc.struct_field(v4, [1])), _NULL_STRING)
    others = pc.and_(pc.invert(v4.is_valid()), pc.is_valid(client))
    if pc.any(others).as_py():  # bare IPv6 with ":port" appended: split when what is left is still IPv6
        address_list, port_list = address.to_pylist(), port.to_pylist()
        for i in np.flatnonzero(others.to_numpy(zero_copy_only=False)):
            head, _, tail = address_list[i].rpartition(":")
            if tail.isdigit() and len(tail) <= 5 and head.count(":") >= 2 and not head.endswith(":"):
                address_list[i], port_list[i] = head, tail
        address, port = pa.array(address_list, pa.string()), pa.array(port_list, pa.string())
    convert_source_address(columns, address)
    columns.values["source_port"] = pc.cast(port, pa.int32())


def convert_forwarded_list(columns: Columns, listed: pa.Array) -> None:
    """A client list written before the peer address (``"a, b" c`` or ``a, b c``): kept as X-Forwarded-For."""
    text = pc.utf8_trim(listed, '" ,')
    columns.values["http_request_x_forwarded_for"] = empty_to_null(dash_to_null(text))


def convert_tls_version(columns: Columns, text: pa.Array) -> None:
    """``TLSv1.2`` (Apache ``%{SSL_PROTOCOL}x``, nginx ``$ssl_protocol``) to ECS ``tls_version`` ``1.2``."""
    text = dash_to_null(text)
    number = pc.extract_regex(text, r"^(?:TLSv|SSLv)(?P<v>[0-9.]+)$")
    columns.values["tls_version"] = pc.if_else(number.is_valid(), pc.struct_field(number, [0]), text)


def _sum_of_times(text: str) -> float | None:
    numbers = [float(x) for x in re.split(r"[,:\s]+", text) if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?", x)]
    return sum(numbers) if numbers else None


def convert_upstream_time(columns: Columns, text: pa.Array) -> None:
    """nginx ``$upstream_response_time``: seconds, or a list when several upstreams answered (their sum)."""
    text = dash_to_null(text)
    simple = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]+(?:\.[0-9]*)?$"), False)
    if pc.all(pc.or_(simple, pc.is_null(text))).as_py():
        seconds = pc.cast(text, pa.float64())
    else:
        seconds = pa.array([None if t is None else _sum_of_times(t) for t in text.to_pylist()], pa.float64())
    columns.values["http_upstream_response_time_us"] = pc.cast(pc.round(pc.multiply(seconds, 1_000_000)), pa.int64())


def label_converter(key: str) -> Callable[[Columns, pa.Array], None]:
    """Keep a field no column fits in the ``labels`` map under ``key`` (``-`` and empty values are left out)."""

    def convert(columns: Columns, text: pa.Array) -> None:
        columns.labels.append((key, columns.unescape(empty_to_null(dash_to_null(text)))))

    return convert


def build_labels(labels: list[tuple[str, pa.Array]], n: int) -> pa.Array:
    """One ``map<string, string>`` per row from the label columns, leaving out null values."""
    keys = [key for key, _ in labels]
    values = [v.cast(pa.string()) for _, v in labels]
    k = len(keys)
    stacked = pa.concat_arrays(values)  # column-major: label j of row i is at j * n + i
    valid = np.stack([v.is_valid().to_numpy(zero_copy_only=False) for v in values], axis=1)  # n x k
    order = (np.arange(k)[None, :] * n + np.arange(n)[:, None])[valid]
    key_index = np.broadcast_to(np.arange(k)[None, :], (n, k))[valid]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(valid.sum(axis=1), out=offsets[1:])
    empty = offsets[1:] == offsets[:-1]
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(keys, pa.string()).take(pa.array(key_index, pa.int64())),
        stacked.take(pa.array(order, pa.int64())),
        mask=pa.array(empty) if empty.any() else None,
    )


def _scaled_int(factor: float) -> Callable[[pa.Array], pa.Array]:
    def convert(values: pa.Array) -> pa.Array:
        values = dash_to_null(values)
        numeric = pc.match_substring_regex(values, r"^[0-9]+(?:\.[0-9]*)?$")
        number = pc.cast(pc.if_else(numeric, values, _NULL_STRING), pa.float64())
        return pc.cast(pc.round(pc.multiply(number, factor)), pa.int64())

    return convert


#: Captures that feed a converter instead of naming a column directly.
SPECIAL: dict[str, Callable[[Columns, pa.Array], None]] = {
    "time_clf": convert_clf_time,
    "time_iso8601": convert_iso8601,
    "time_epoch_seconds": epoch_converter(1),
    "time_epoch_ms": epoch_converter(1_000),
    "time_epoch_us": epoch_converter(1_000_000),
    "request_line": convert_request_line,
    "source_address": convert_source_address,
    "destination_ip": convert_destination_ip,
    "url_original": split_url,
    "protocol": convert_protocol,
    "query_string": convert_query_string,
    "url_args": convert_url_args,
    "forwarded_list": convert_forwarded_list,
    "address_port": convert_address_port,
    "tls_protocol": convert_tls_version,
    "upstream_response_time": convert_upstream_time,
}

#: Captures whose text is a number in another unit than the column's.
SCALED: dict[str, tuple[str, Callable[[pa.Array], pa.Array]]] = {
    "duration_seconds": ("event_duration_us", _scaled_int(1_000_000)),
    "duration_ms": ("event_duration_us", _scaled_int(1_000)),
    "duration_us": ("event_duration_us", _scaled_int(1)),
    "duration_ns": ("event_duration_us", _scaled_int(0.001)),
}

#: Text columns that Apache and nginx write backslash-escaped.
ESCAPED_TEXT = {"http_request_referrer", "user_agent_original", "user_name", "message", "http_request_x_forwarded_for"}


def convert_captures(
    values: Mapping[str, pa.Array],
    captures,
    schema: pa.Schema,
    length: int,
    timezone: str = "UTC",
    may_escape: bool = True,
) -> Columns:
    """Typed columns from the captured text of matching rows (``values``: capture name -> strings).

    Converters that derive several columns run first, so a directive that names a
    column explicitly (``%m`` beside ``%r``) wins over the derived value.
    """
    columns = Columns(length, timezone=timezone, may_escape=may_escape)
    direct = []
    for capture in captures:
        text = values[capture.name]
        if capture.convert is not None:
            capture.convert(columns, text)
        elif capture.name in SPECIAL:
            SPECIAL[capture.name](columns, text)
        elif capture.name in SCALED:
            column, convert = SCALED[capture.name]
            earlier = columns.values.get(column)
            columns.values[column] = convert(text) if earlier is None else pc.coalesce(earlier, convert(text))
        elif capture.name in schema.names:
            direct.append((capture.name, text))
        else:
            raise ValueError(f"capture {capture.name!r} is neither a column of the schema nor a known converter input")
    for name, text in direct:
        target = schema.field(name).type
        text = dash_to_null(text)
        if name in ESCAPED_TEXT:
            text = columns.unescape(text)
        if target != pa.string():
            text = _cast_checked(columns, text, target, name)
        columns.values[name] = text
    if columns.labels:
        columns.values["labels"] = build_labels(columns.labels, length)
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
