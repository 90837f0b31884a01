"""Apache LogFormat and nginx log_format lines, as ops paste them, compile to parsers that read
what those servers write: directives land in ECS columns, the rest in ``labels``."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from parsers import apache, nginx
from parsers.apache_logformat import format_string_of
from parsers.lines import LineChunk
from parsers.pattern import Capture, Literal, Skip
from parsers.regex_format import RegexFormat
from parsers.registry import FORMATS, UnknownFormatError, get_format, parse_chunk

UTC = dt.timezone.utc


def one_event(fmt: str, line: str, timezone: str = "UTC") -> dict:
    result = parse_chunk(LineChunk("/x.log", 0, 1, line.encode() + b"\n", fmt, timezone))
    assert result.dead_letters.num_rows == 0, result.dead_letters.to_pylist()
    [event] = result.events.to_pylist()
    return event


def test_logformat_config_line_with_quotes_and_nickname():
    text, nickname = format_string_of(r'LogFormat "%h %l %u %t \"%r\" %>s %b" common')
    assert (text, nickname) == ('%h %l %u %t "%r" %>s %b', "common")
    text, _ = format_string_of(r'CustomLog "logs/access_log" "%h \"%r\" %>s" env=!dontlog')
    assert text == '%h "%r" %>s'


def test_every_apache_directive_goes_to_a_column_or_a_label():
    spec = (
        r'LogFormat "%a %A %l %u [%{%d/%m/%Y %H:%M:%S}t] \"%m %U%q %H\" %>s %B %D %{ms}T %v %p %{remote}p %P %I %O '
        r'%S %X %k %L %R \"%{X-Request-Id}i\" \"%{Content-Type}o\" %{HOME}e %{mynote}n %{sid}C %{SSL_PROTOCOL}x" rich'
    )
    line = (
        '2001:db8::7 10.0.0.1 - bob [17/05/2015 10:05:03] "POST /login?next=%2F HTTP/2.0" 302 15 2500 2 '
        'www.example.org 443 51515 4242 512 1024 1536 + 3 YHq2 php-fpm "abc-123" "text/html" /root - s1 TLSv1.3'
    )
    event = one_event(spec, line, timezone="Europe/Paris")
    assert event["timestamp"] == dt.datetime(2015, 5, 17, 8, 5, 3, tzinfo=UTC)  # zone-less %{...}t read in the zone
    assert (event["source_ip"], event["destination_ip"], event["user_name"]) == ("2001:db8::7", "10.0.0.1", "bob")
    assert (event["http_request_method"], event["url_path"], event["url_query"]) == ("POST", "/login", "next=%2F")
    assert event["http_version"] == "2.0" and event["http_response_status_code"] == 302
    assert event["http_response_body_bytes"] == 15 and event["event_duration_us"] == 2500  # %D wins over %{ms}T
    assert (event["url_domain"], event["destination_port"], event["source_port"]) == ("www.example.org", 443, 51515)
    assert (event["process_pid"], event["http_request_bytes"], event["http_response_bytes"]) == (4242, 512, 1024)
    assert (event["event_id"], event["tls_version"]) == ("YHq2", "1.3")
    labels = dict(event["labels"])
    assert labels == {
        "duration": "2",
        "bytes_transferred": "1536",
        "connection_status": "+",
        "keepalive_requests": "3",
        "handler": "php-fpm",
        "http_x_request_id": "abc-123",
        "sent_http_content_type": "text/html",
        "env_home": "/root",
        "cookie_sid": "s1",
    }  # "%{mynote}n" logged "-": absent, so left out


def test_modifiers_and_conditions_are_accepted():
    event = one_event(r'"%h %<s %!200,304{Referer}i %400,501{User-agent}i"', "1.2.3.4 200 - curl/8")
    assert event["http_response_status_code"] == 200 and event["http_request_referrer"] is None
    assert event["user_agent_original"] == "curl/8"


def test_nginx_log_format_with_several_strings_and_escape_json():
    spec = (
        "log_format timed escape=json '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
        '    \'$status $body_bytes_sent "$http_referer" "$http_user_agent" \'\n'
        '    \'rt=$request_time uct="$upstream_connect_time" urt="$upstream_response_time" $request_id\';'
    )
    line = (
        '192.0.2.5 - - [10/Oct/2000:13:55:36 -0700] "GET /q?\\"x\\" HTTP/1.1" 200 12 "-" "Agent \\u00e9" '
        'rt=0.125 uct="0.001" urt="0.010, 0.020" 9f8e'
    )
    event = one_event(spec, line)
    assert event["url_original"] == '/q?"x"' and event["user_agent_original"] == "Agent é"
    assert event["event_duration_us"] == 125_000 and event["http_upstream_response_time_us"] == 30_000
    assert dict(event["labels"]) == {"upstream_connect_time": "0.001"} and event["event_id"] == "9f8e"
    assert event["event_dataset"] == "nginx.access"


def test_bad_format_strings_are_usage_errors_with_the_reason():
    with pytest.raises(UnknownFormatError, match="unknown LogFormat directive '%Z'"):
        get_format('LogFormat "%h %Z" broken')
    with pytest.raises(UnknownFormatError, match="unknown log format 'nonsense'"):
        get_format("nonsense")


def test_url_query_is_null_without_question_mark_and_empty_with_one():
    events = [
        one_event("combined", f'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET {url} HTTP/1.1" 200 1 "-" "-"')
        for url in ("/a", "/a?", "/a?b=1")
    ]
    assert [(e["url_path"], e["url_query"]) for e in events] == [("/a", None), ("/a", ""), ("/a", "b=1")]


def test_request_lines_of_every_shape_in_one_chunk_keep_what_fits():
    """Usual lines are split on spaces, the others read by a regex; mixed in one chunk, each gets its own."""
    cases = {
        "GET /a?b=1 HTTP/1.1": ("GET", "/a", "b=1", "1.1", None),
        "-": (None, None, None, None, None),
        "GET /": ("GET", "/", None, None, None),
        "CONNECT example.org:443 HTTP/1.1": ("CONNECT", "example.org:443", None, "1.1", None),
        "GET http://proxy.example/x?y HTTP/1.0": ("GET", "/x", "y", "1.0", "proxy.example"),
        "GET  /double HTTP/1.1": ("GET", " /double", None, "1.1", None),
        "GET /a b HTTP/1.1": ("GET", "/a b", None, "1.1", None),
        "get /lower SPDY/3": ("get", "/lower", None, "3", None),
        r"\x16\x03\x01": (None, None, None, None, None),
    }
    data = "".join(f'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "{r}" 200 1 "-" "-"\n' for r in cases).encode()
    events = parse_chunk(LineChunk("/x.log", 0, 1, data, "combined")).events.to_pylist()
    got = [
        (e["http_request_method"], e["url_path"], e["url_query"], e["http_version"], e["url_domain"]) for e in events
    ]
    assert got == list(cases.values())


def test_named_formats_are_compiled_from_their_config_lines():
    assert apache.COMBINED.source == apache.COMBINED_LOGFORMAT
    assert nginx.NGINX_MAIN.source == nginx.MAIN_LOG_FORMAT
    assert get_format("main") is nginx.NGINX_MAIN


#: A value to write for each capture, and the column values it must come back as.
SAMPLES = {
    "source_address": ("203.0.113.7", {"source_ip": "203.0.113.7"}),
    "user_identity": ("ident1", {"user_identity": "ident1"}),
    "user_name": ("alice", {"user_name": "alice"}),
    "time_clf": ("17/May/2015:10:05:03 +0200", {"timestamp": dt.datetime(2015, 5, 17, 8, 5, 3, tzinfo=UTC)}),
    "time_iso8601": ("2015-05-17T10:05:03+02:00", {"timestamp": dt.datetime(2015, 5, 17, 8, 5, 3, tzinfo=UTC)}),
    "request_line": (
        "GET /a/b?x=1 HTTP/1.1",
        {"http_request_method": "GET", "url_path": "/a/b", "url_query": "x=1", "http_version": "1.1"},
    ),
    "http_response_status_code": ("404", {"http_response_status_code": 404}),
    "http_response_body_bytes": ("512", {"http_response_body_bytes": 512}),
    "http_response_bytes": ("777", {"http_response_bytes": 777}),
    "http_request_bytes": ("99", {"http_request_bytes": 99}),
    "http_request_referrer": ("https://ref.example/", {"http_request_referrer": "https://ref.example/"}),
    "user_agent_original": ("curl/8.0 (x)", {"user_agent_original": "curl/8.0 (x)"}),
    "http_request_x_forwarded_for": ("198.51.100.1", {"http_request_x_forwarded_for": "198.51.100.1"}),
    "url_domain": ("www.example.org", {"url_domain": "www.example.org"}),
    "destination_port": ("443", {"destination_port": 443}),
    "tls_protocol": ("TLSv1.3", {"tls_version": "1.3"}),
    "tls_cipher": ("TLS_AES_128_GCM_SHA256", {"tls_cipher": "TLS_AES_128_GCM_SHA256"}),
    "duration_ms": ("250", {"event_duration_us": 250_000}),
    "address_port": ("203.0.113.7:5555", {"source_ip": "203.0.113.7", "source_port": 5555}),
}


def generate(fmt: RegexFormat) -> tuple[str, dict]:
    """One line written from the format's own pattern, and what parsing it must give."""
    parts, expected = [], {}
    for token in fmt.pattern.tokens:
        if isinstance(token, Literal):
            parts.append(token.text)
        elif isinstance(token, Capture):
            if token.name in SAMPLES:
                text, columns = SAMPLES[token.name]
                expected.update(columns)
            else:  # a label, or a field of a shape of its own
                text = next(c for c in ("7", "200", "https", "x", "tls", "2.0") if re.fullmatch(token.pattern, c))
            parts.append(text)
        elif isinstance(token, Skip) and "syslog" in token.what:
            parts.append("Feb 15 16:23:00 web1 httpd[2201]: ")
    return "".join(parts), expected


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if isinstance(f, RegexFormat)])
def test_round_trip_every_named_regex_format(name):
    line, expected = generate(FORMATS[name])
    event = one_event(name, line)
    assert {k: event[k] for k in expected} == expected


def test_nginx_escape_none_keeps_backslashes():
    event = one_event("log_format raw escape=none '$remote_addr \"$http_user_agent\"';", r'1.2.3.4 "C:\x41\path"')
    assert event["user_agent_original"] == r"C:\x41\path"
