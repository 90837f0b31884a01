"""Compile an Apache httpd ``LogFormat`` string into a parser.

Accepts what an operator has in ``httpd.conf``, quotes and all::

    LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
    CustomLog logs/access_log "%h %l %u %t \\"%r\\" %>s %b"
    %h %l %u %t "%r" %>s %b

Every directive of mod_log_config maps to an ECS-named column where one fits
(``%h`` -> ``source_address``, ``%>s`` -> ``http_response_status_code``); the rest
(``%{X-Request-Id}i``, ``%X``, ``%{note}n`` ...) go to the ``labels`` map under a
readable key, so nothing a format logs is dropped.  Modifiers are accepted:
``%>s`` / ``%<s`` (final / original request) and status conditions such as
``%!200,304{Referer}i`` (the value is then ``-`` on other statuses, read as null).
"""

from __future__ import annotations

import re

from parsers import convert
from parsers.format_strings import DECIMAL_OR_DASH, NUMBER_OR_DASH, STATUS, Field, Part, access_format
from parsers.format_strings import unquote_config_string as _unquote
from parsers.regex_format import RegexFormat, Variant

_DIRECTIVE = re.compile(r"%([<>]?)(!?[0-9,]*)([<>]?)(?:\{([^}]*)\})?([<>]?)(\^t[io]|[a-zA-Z%])")

#: Request headers that have an ECS column of their own.
REQUEST_HEADERS = {
    "referer": ("http_request_referrer", "referrer"),
    "user-agent": ("user_agent_original", "user agent"),
    "x-forwarded-for": ("http_request_x_forwarded_for", "X-Forwarded-For"),
    "host": ("url_domain", "Host header"),
}


class LogFormatError(ValueError):
    """A LogFormat string that cannot be compiled; the message names the problem."""


def _time_field(arg: str | None, text: str) -> Field:
    if arg is None:
        return Field("time_clf", f"time in brackets ({text})", "time", bracketed=True, fills=("timestamp",))
    layout = re.sub(r"^(?:begin|end):", "", arg)
    if layout in ("sec", "msec", "usec"):
        name = {"sec": "time_epoch_seconds", "msec": "time_epoch_ms", "usec": "time_epoch_us"}[layout]
        return Field(name, f"time since 1970 ({text})", "time", r"[0-9]+", fills=("timestamp",))
    if layout in ("msec_frac", "usec_frac"):
        return Field("", f"fraction of the second ({text})", layout, r"[0-9]+")
    return Field(
        "time_strftime",
        f"time like {layout!r} ({text})",
        "time",
        convert=convert.strftime_converter(layout),
        fills=("timestamp",),
    )


def _field(directive: str, arg: str | None, text: str) -> Field:
    """The field for one directive (``directive`` is the letter, ``arg`` what was in braces)."""
    lower = (arg or "").lower()
    if directive in "ha":
        if lower == "c":
            return Field("source_proxy_ip", f"peer address ({text})", "peer_ip")
        return Field("source_address", f"client address ({text})", "client", fills=_SOURCE)
    simple = {
        "A": Field("destination_ip", f"server address ({text})", "server_ip"),
        "l": Field("user_identity", f"identd user ({text})", "ident"),
        "u": Field("user_name", f"user name ({text})", "user"),
        "r": Field("request_line", f"request line ({text})", "request", fills=_REQUEST),
        "m": Field("http_request_method", f"request method ({text})", "method", r"[^ \"]+"),
        "U": Field("url_path", f"URL path ({text})", "url_path", r"[^?\" ]*"),
        "q": Field("query_string", f"query string ({text})", "query", r'(?:\?[^" ]*)?', fills=("url_query",)),
        "H": Field("protocol", f"protocol ({text})", "protocol", fills=("http_version",)),
        "s": Field("http_response_status_code", f"status code ({text})", "status", STATUS),
        "b": Field("http_response_body_bytes", f"response size ({text})", "body_bytes", NUMBER_OR_DASH),
        "B": Field("http_response_body_bytes", f"response size ({text})", "body_bytes", NUMBER_OR_DASH),
        "D": Field("duration_us", f"time taken in microseconds ({text})", "duration_us", NUMBER_OR_DASH, fills=_TOOK),
        "v": Field("url_domain", f"virtual host ({text})", "server_name"),
        "V": Field("url_domain", f"server name ({text})", "server_name_used"),
        "I": Field("http_request_bytes", f"bytes received ({text})", "bytes_received", NUMBER_OR_DASH),
        "O": Field("http_response_bytes", f"bytes sent ({text})", "bytes_sent", NUMBER_OR_DASH),
        "S": Field("", f"bytes transferred ({text})", "bytes_transferred", NUMBER_OR_DASH),
        "X": Field("", f"connection status ({text})", "connection_status", r"[X+-]"),
        "k": Field("", f"keep-alive requests ({text})", "keepalive_requests", NUMBER_OR_DASH),
        "L": Field("event_id", f"request log id ({text})", "log_id"),
        "R": Field("", f"handler ({text})", "handler"),
        "f": Field("", f"file name ({text})", "filename"),
    }
    if directive in simple:
        return simple[directive]
    if directive == "t":
        return _time_field(arg, text)
    if directive == "T":
        unit = {"ms": "duration_ms", "us": "duration_us"}.get(lower, "duration_seconds")
        return Field(unit, f"time taken ({text})", "duration", DECIMAL_OR_DASH, fills=_TOOK)
    if directive == "p":
        if lower == "remote":
            return Field("source_port", f"client port ({text})", "client_port", NUMBER_OR_DASH)
        return Field("destination_port", f"server port ({text})", "server_port", NUMBER_OR_DASH)
    if directive == "P":
        if lower in ("tid", "hextid"):
            return Field("", f"thread id ({text})", "thread_id")
        return Field("process_pid", f"process id ({text})", "pid", NUMBER_OR_DASH)
    if directive == "i" and arg:
        if lower in REQUEST_HEADERS:
            column, what = REQUEST_HEADERS[lower]
            return Field(column, f"{what} ({text})", "http_" + _key(arg))
        return Field("", f"request header {arg} ({text})", "http_" + _key(arg))
    if directive == "x" and arg:
        if arg.upper() == "SSL_PROTOCOL":
            return Field("tls_protocol", f"TLS protocol ({text})", "ssl_protocol", fills=("tls_version",))
        if arg.upper() == "SSL_CIPHER":
            return Field("tls_cipher", f"TLS cipher ({text})", "ssl_cipher")
        return Field("", f"{arg} ({text})", _key(arg))
    prefixes = {
        "o": "sent_http_",
        "e": "env_",
        "n": "note_",
        "C": "cookie_",
        "^ti": "trailer_in_",
        "^to": "trailer_out_",
    }
    if directive in prefixes and arg:
        return Field("", f"{arg} ({text})", prefixes[directive] + _key(arg))
    raise LogFormatError(f"unknown LogFormat directive {text!r}")


_SOURCE = ("source_address", "source_ip", "source_domain")
_TOOK = ("event_duration_us",)
_REQUEST = ("http_request_line", "http_request_method", "url_original", "url_path", "url_query", "http_version")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _undo_config_escapes(text: str) -> str:
    """mod_log_config's own escapes in the format string: ``\\n``, ``\\t``, ``\\\\``."""
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def format_string_of(spec: str) -> tuple[str, str | None]:
    """The format string and nickname from a ``LogFormat``/``CustomLog`` line or a bare string."""
    text = spec.strip()
    nickname = None
    words = text.split(None, 1)
    if words and words[0].lower() in ("logformat", "customlog"):
        text = words[1].strip() if len(words) > 1 else ""
        if words[0].lower() == "customlog":
            text = text.split(None, 1)[1].strip() if len(text.split(None, 1)) > 1 else ""
        if not text.startswith('"'):
            raise LogFormatError(f"expected a quoted format string after {words[0]}, found {text[:30]!r}")
    if text.startswith('"'):
        text, rest = _unquote(text, '"')
        nickname = rest.split()[0] if rest.split() and not rest.split()[0].startswith("env=") else None
    if "%" not in text:
        raise LogFormatError(f"{spec!r} has no % directives; it is not an Apache LogFormat string")
    return _undo_config_escapes(text), nickname


def parts_of(format_string: str) -> list[Part]:
    """Literal text and fields of a LogFormat string, in order."""
    parts: list[Part] = []
    position = 0
    for m in _DIRECTIVE.finditer(format_string):
        parts.append(format_string[position : m.start()])
        position = m.end()
        letter = m.group(6)
        if letter == "%":
            parts.append("%")
            continue
        parts.append(_field(letter, m.group(4), m.group(0)))
    tail = format_string[position:]
    if "%" in tail:
        raise LogFormatError(f"cannot read the directive at {tail[tail.index('%') :][:12]!r}")
    parts.append(tail)
    return parts


def compile_logformat(
    spec: str,
    name: str | None = None,
    dataset: str = "apache.access",
    description: str = "",
    variants: tuple[Variant, ...] = (),
    trailing: tuple = (),
) -> RegexFormat:
    """A parser for the LogFormat in ``spec`` (a config line or the bare string).

    ``trailing`` adds tokens after the format (the named combined formats accept extra
    quoted fields some servers append); ``variants`` are other line shapes to accept.
    """
    format_string, nickname = format_string_of(spec)
    return access_format(
        parts_of(format_string),
        name=name or nickname or f"LogFormat {format_string!r}",
        dataset=dataset,
        description=description or f"Apache LogFormat {format_string}",
        source=spec,
        variants=variants,
        trailing=trailing,
    )


def looks_like_logformat(spec: str) -> bool:
    return spec.strip().lower().startswith(("logformat", "customlog")) or bool(_DIRECTIVE.search(spec))
