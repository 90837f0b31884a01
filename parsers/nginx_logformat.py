"""Compile an nginx ``log_format`` into a parser.

Accepts the directive as it stands in ``nginx.conf`` (several quoted strings,
``escape=``, the trailing semicolon) or just the format string::

    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" "$http_user_agent"';

Variables with an ECS column map to it (``$remote_addr`` -> ``source_address``,
``$request_time`` -> ``event_duration_us``); any other variable (``$request_id``,
``$upstream_addr``, ``$http_x_custom``...) is kept in ``labels`` under its own name.
``escape=json`` values are unescaped like JSON strings, ``escape=default`` like
Apache (``\\xHH``); ``escape=none`` values are taken as written.
"""

from __future__ import annotations

import re

from parsers.format_strings import DECIMAL_OR_DASH, NUMBER_OR_DASH, STATUS, Field, Part, access_format
from parsers.format_strings import unquote_config_string as _unquote
from parsers.regex_format import RegexFormat, Variant

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_SOURCE = ("source_address", "source_ip", "source_domain")
_REQUEST = ("http_request_line", "http_request_method", "url_original", "url_path", "url_query", "http_version")

#: nginx variable -> (capture, what it is, fixed body or None, extra columns it fills)
VARIABLES: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "remote_addr": ("source_address", "client address", None, _SOURCE),
    "realip_remote_addr": ("source_proxy_ip", "peer address", None, ()),
    "remote_port": ("source_port", "client port", NUMBER_OR_DASH, ()),
    "remote_user": ("user_name", "user name", None, ()),
    "time_local": ("time_clf", "local time", r"[^\]\"]+", ("timestamp",)),
    "time_iso8601": ("time_iso8601", "ISO 8601 time", None, ("timestamp",)),
    "msec": ("time_epoch_seconds", "time in seconds since 1970", r"[0-9]+(?:\.[0-9]+)?", ("timestamp",)),
    "request": ("request_line", "request line", None, _REQUEST),
    "status": ("http_response_status_code", "status code", STATUS, ()),
    "body_bytes_sent": ("http_response_body_bytes", "response size", NUMBER_OR_DASH, ()),
    "bytes_sent": ("http_response_bytes", "bytes sent", NUMBER_OR_DASH, ()),
    "request_length": ("http_request_bytes", "request length", NUMBER_OR_DASH, ()),
    "http_referer": ("http_request_referrer", "referrer", None, ()),
    "http_user_agent": ("user_agent_original", "user agent", None, ()),
    "http_x_forwarded_for": ("http_request_x_forwarded_for", "X-Forwarded-For", None, ()),
    "request_time": ("duration_seconds", "request time", DECIMAL_OR_DASH, ("event_duration_us",)),
    "upstream_response_time": ("upstream_response_time", "upstream response time", None, ()),
    "host": ("url_domain", "host", None, ()),
    "http_host": ("url_domain", "Host header", None, ()),
    "server_name": ("url_domain", "server name", None, ()),
    "scheme": ("url_scheme", "scheme", r"[a-z]+|-", ()),
    "request_method": ("http_request_method", "request method", r"[^ \"]+", ()),
    "request_uri": ("url_original", "request URI", None, ("url_original", "url_path", "url_query")),
    "uri": ("url_path", "URI path", None, ()),
    "document_uri": ("url_path", "URI path", None, ()),
    "args": ("url_args", "query arguments", None, ("url_query",)),
    "query_string": ("url_args", "query arguments", None, ("url_query",)),
    "server_protocol": ("protocol", "protocol", None, ("http_version",)),
    "ssl_protocol": ("tls_protocol", "TLS protocol", None, ("tls_version",)),
    "ssl_cipher": ("tls_cipher", "TLS cipher", None, ()),
    "server_addr": ("destination_ip", "server address", None, ()),
    "server_port": ("destination_port", "server port", NUMBER_OR_DASH, ()),
    "pid": ("process_pid", "process id", NUMBER_OR_DASH, ()),
    "request_id": ("event_id", "request id", None, ()),
}


class LogFormatError(ValueError):
    """A log_format that cannot be compiled; the message names the problem."""


def format_string_of(spec: str) -> tuple[str, str | None, str]:
    """(format string, name, escape mode) from a ``log_format`` directive or a bare string."""
    text = spec.strip().rstrip(";").strip()
    name = None
    escape = "default"
    if text.startswith("log_format"):
        words = text.split(None, 2)
        if len(words) < 3:
            raise LogFormatError(f"{spec!r}: expected 'log_format NAME [escape=...] STRING...'")
        name, text = words[1], words[2]
        m = re.match(r"escape=(\w+)\s*", text)
        if m:
            escape, text = m.group(1), text[m.end() :]
            if escape not in ("default", "json", "none"):
                raise LogFormatError(f"unknown escape={escape}; nginx knows default, json and none")
    if text[:1] in ("'", '"'):
        pieces = []
        while text:
            if text[0] not in ("'", '"'):
                raise LogFormatError(f"expected a quoted string in log_format, found {text[:30]!r}")
            piece, text = _unquote(text, text[0])
            pieces.append(piece)
            text = text.lstrip()
        text = "".join(pieces)
    if "$" not in text:
        raise LogFormatError(f"{spec!r} has no $variables; it is not an nginx log_format")
    return text, name, escape


def _field(variable: str) -> Field:
    text = "$" + variable
    if variable in VARIABLES:
        capture, what, body, fills = VARIABLES[variable]
        return Field(capture, f"{what} ({text})", variable, body, fills=fills or (capture,))
    return Field("", f"{variable} ({text})", variable)


def parts_of(format_string: str) -> list[Part]:
    parts: list[Part] = []
    position = 0
    for m in _VARIABLE.finditer(format_string):
        parts.append(format_string[position : m.start()])
        parts.append(_field(m.group(1) or m.group(2)))
        position = m.end()
    parts.append(format_string[position:])
    return parts


def compile_log_format(
    spec: str,
    name: str | None = None,
    dataset: str = "nginx.access",
    description: str = "",
    variants: tuple[Variant, ...] = (),
    trailing: tuple = (),
) -> RegexFormat:
    """A parser for the nginx ``log_format`` in ``spec``."""
    format_string, config_name, escape = format_string_of(spec)
    return access_format(
        parts_of(format_string),
        name=name or (f"nginx_{config_name}" if config_name else f"log_format {format_string!r}"),
        dataset=dataset,
        description=description or f"nginx log_format {format_string}",
        source=spec,
        variants=variants,
        trailing=trailing,
        unescape=escape != "none",
    )


def looks_like_log_format(spec: str) -> bool:
    return spec.strip().startswith("log_format") or bool(_VARIABLE.search(spec))
