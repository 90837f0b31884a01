"""nginx's stock access-log formats, compiled from the log_format lines that define them."""

from __future__ import annotations

from parsers.apache import TRAILING
from parsers.format_strings import build_pattern
from parsers.nginx_logformat import compile_log_format, format_string_of, parts_of
from parsers.pattern import Capture, LinePattern, Literal, Skip
from parsers.regex_format import Variant

#: nginx's built-in format (ngx_http_log_module): the same shape as Apache's combined.
COMBINED_LOG_FORMAT = (
    "log_format combined '$remote_addr - $remote_user [$time_local] "
    '"$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"\';'
)
#: The ``main`` format of the stock nginx.conf.
MAIN_LOG_FORMAT = (
    "log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
    "                '$status $body_bytes_sent \"$http_referer\" '\n"
    '                \'"$http_user_agent" "$http_x_forwarded_for"\';'
)


def _with_forwarded_list(log_format: str) -> Variant:
    """Lines where a forwarded-for list precedes the client (``a, b c - -`` or ``"a, b" c - -``)."""
    tokens = build_pattern(parts_of(format_string_of(log_format)[0])).tokens
    address = r"[0-9A-Fa-f:.]+"
    listed = Capture("forwarded_list", rf'"[^"]*"|{address}(?:, {address})*?', "forwarded-for list")
    return Variant(LinePattern((listed, Skip(",? ", "separator"), *tokens)))


def _with_host(log_format: str) -> Variant:
    """Lines where the virtual host precedes the client (``example.com 1.2.3.4 - - [...]``)."""
    tokens = build_pattern(parts_of(format_string_of(log_format)[0])).tokens
    host = Capture("url_domain", r'[^ "]+', "virtual host")
    return Variant(LinePattern((host, Literal(" "), *tokens)))


NGINX_COMBINED = compile_log_format(
    COMBINED_LOG_FORMAT,
    trailing=TRAILING,
    variants=(_with_forwarded_list(COMBINED_LOG_FORMAT), _with_host(COMBINED_LOG_FORMAT)),
    description="nginx's predefined combined format",
)
NGINX_MAIN = compile_log_format(MAIN_LOG_FORMAT, description="the main format of the stock nginx.conf")

FORMATS = (NGINX_COMBINED, NGINX_MAIN)
