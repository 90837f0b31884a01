"""Parsing never loses a line: every line is an event or a dead letter with a reason a person understands."""

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.lines import LineChunk
from parsers.registry import get_format, parse_chunk

GOOD = b'203.0.113.9 - alice [17/May/2015:10:05:03 +0200] "GET /a/b?x=1&y=2 HTTP/1.1" 404 512 "-" "curl/8.0"'


def parse(data: bytes, fmt: str = "combined", offset: int = 0, line_number: int = 1):
    return parse_chunk(LineChunk("/logs/access.log", offset, line_number, data, fmt))


def test_a_combined_line_becomes_a_typed_utc_event():
    [event] = parse(GOOD + b"\n").events.to_pylist()
    assert event["timestamp"] == dt.datetime(2015, 5, 17, 8, 5, 3, tzinfo=dt.timezone.utc)
    assert event["source_ip"] == "203.0.113.9" and event["user_name"] == "alice" and event["user_identity"] is None
    assert (event["http_request_method"], event["url_original"], event["http_version"]) == (
        "GET",
        "/a/b?x=1&y=2",
        "1.1",
    )
    assert (event["url_path"], event["url_query"]) == ("/a/b", "x=1&y=2")
    assert event["http_response_status_code"] == 404 and event["http_response_body_bytes"] == 512
    assert event["http_request_referrer"] is None and event["user_agent_original"] == "curl/8.0"
    assert (event["log_file_path"], event["log_offset"], event["event_dataset"]) == (
        "/logs/access.log",
        0,
        "apache.access",
    )


def test_bad_lines_are_dead_letters_with_place_and_reason():
    data = GOOD + b"\n" + GOOD.replace(b" 404 ", b" abc ") + b"\n\n" + GOOD.replace(b"May", b"Mai") + b"\n"
    result = parse(data, offset=1000, line_number=41)
    assert result.events.num_rows == 1 and result.lines_read == 4 and result.lines_skipped == 1  # the blank line
    dead = result.dead_letters.to_pylist()
    assert [d["line_number"] for d in dead] == [42, 44]
    assert dead[0]["log_offset"] == 1000 + len(GOOD) + 1
    assert dead[0]["raw"] == GOOD.replace(b" 404 ", b" abc ")
    column = GOOD.index(b" 404 ") + 2  # 1-based column of the status code
    assert dead[0]["reason"].startswith(f"expected status code (%>s) at column {column}, found 'abc")
    assert "timestamp '17/Mai/2015:10:05:03 +0200'" in dead[1]["reason"]


def test_escaped_quotes_and_hex_escapes_are_undone():
    line = (
        rb'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /q?\"x\" HTTP/1.1" 200 1 "-" "Agent \"quoted\" \xe2\x9c\x93"'
    )
    [event] = parse(line).events.to_pylist()
    assert event["url_original"] == '/q?"x"'
    assert event["user_agent_original"] == 'Agent "quoted" ✓'


def test_tls_handshake_sent_to_http_port_is_an_event_without_method():
    line = rb'5.6.7.8 - - [17/May/2015:10:05:03 +0000] "\x16\x03\x01\x00\xa5\x01" 400 226 "-" "-"'
    [event] = parse(line).events.to_pylist()
    assert event["http_request_method"] is None and event["http_response_status_code"] == 400
    assert event["http_request_line"].startswith("\x16\x03\x01")


def test_ipv6_and_host_names_go_to_the_right_source_field():
    v6 = GOOD.replace(b"203.0.113.9", b"2001:db8::1")
    host = GOOD.replace(b"203.0.113.9", b"monitoring-server")
    events = parse(v6 + b"\n" + host).events.to_pylist()
    assert (events[0]["source_ip"], events[0]["source_domain"]) == ("2001:db8::1", None)
    assert (events[1]["source_ip"], events[1]["source_domain"]) == (None, "monitoring-server")


def test_unknown_format_dead_letters_everything_with_the_reason():
    result = parse_chunk(LineChunk("/x.log", 0, 1, b"a\nb\n", "unknown:no known format matches"))
    assert result.events.num_rows == 0
    assert {d["reason"] for d in result.dead_letters.to_pylist()} == {
        "log format not recognised: no known format matches"
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.just(GOOD)), max_size=20))
def test_random_bytes_never_raise_and_accounting_holds(pieces):
    data = b"\n".join(pieces)
    result = parse(data)
    assert result.events.num_rows + result.dead_letters.num_rows + result.lines_skipped == result.lines_read
    assert all(d["reason"] for d in result.dead_letters.to_pylist())


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.binary(min_size=1, max_size=3))
def test_mutated_real_lines_never_raise(position, replacement):
    mutated = GOOD[:position] + replacement + GOOD[position + 1 :]
    result = parse(mutated)
    assert result.lines_read == mutated.count(b"\n") + (not mutated.endswith(b"\n"))  # a final newline ends a line
    assert result.events.num_rows + result.dead_letters.num_rows + result.lines_skipped == result.lines_read
    assert get_format("combined").pattern.explain_mismatch(mutated.decode("utf-8", "replace"))
