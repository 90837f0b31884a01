"""What real traffic throws at a parser (IPv6 zones, non-UTF-8, TLS bytes, 1 MB lines, CRLF), and
properties that must hold for any input: nothing raises, every line is accounted for, and the fast
path gives exactly what the exact regex path gives."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.lines import LineChunk
from parsers.registry import FORMATS, get_format, parse_chunk

GOOD = b'203.0.113.9 - alice [17/May/2015:10:05:03 +0200] "GET /a/b?x=1&y=2 HTTP/1.1" 404 512 "-" "curl/8.0"'


def parse(data: bytes, fmt: str = "combined"):
    return parse_chunk(LineChunk("/logs/access.log", 0, 1, data, fmt))


def test_ipv6_with_zone_id_and_brackets():
    events = parse(
        GOOD.replace(b"203.0.113.9", b"fe80::1%eth0") + b"\n" + GOOD.replace(b"203.0.113.9", b"[2001:db8::2]")
    ).events.to_pylist()
    assert [(e["source_address"], e["source_ip"]) for e in events] == [
        ("fe80::1%eth0", "fe80::1"),  # the zone names the logging host's interface: kept in a label
        ("[2001:db8::2]", "2001:db8::2"),
    ]
    assert dict(events[0]["labels"]) == {"source_ip_zone": "eth0"}


def test_non_utf8_bytes_are_kept_raw_and_replaced_in_text():
    line = GOOD.replace(b"curl/8.0", b"curl/\xff\xfe")
    bad = GOOD.replace(b" 404 ", b" \xff ")
    result = parse(line + b"\n" + bad + b"\n")
    [event] = result.events.to_pylist()
    assert event["user_agent_original"] == "curl/\ufffd\ufffd"
    [dead] = result.dead_letters.to_pylist()
    assert dead["raw"] == bad  # the exact bytes, for replay


def test_tls_handshake_and_empty_request_keep_the_event():
    tls = GOOD.replace(b"GET /a/b?x=1&y=2 HTTP/1.1", rb"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    empty = GOOD.replace(b"GET /a/b?x=1&y=2 HTTP/1.1", b"")
    events = parse(tls + b"\n" + empty + b"\n").events.to_pylist()
    assert [e["http_request_method"] for e in events] == [None, None]
    assert events[0]["http_request_line"].startswith("\x16\x03\x01")
    assert events[1]["http_request_line"] == "" and events[1]["url_original"] is None


def test_one_megabyte_line_and_windows_line_endings():
    huge = GOOD.replace(b"/a/b?x=1&y=2", b"/" + b"a" * (1 << 20))
    result = parse(huge + b"\r\n" + GOOD + b"\r\n")
    events = result.events.to_pylist()
    assert len(events) == 2 and len(events[0]["url_path"]) == (1 << 20) + 1
    assert events[1]["user_agent_original"] == "curl/8.0"  # no stray \r
    assert events[1]["log_offset"] == len(huge) + 2


def test_escaped_quotes_take_the_exact_path_and_are_undone():
    line = GOOD.replace(b'"curl/8.0"', rb'"say \"hi\" \\ \x41"')
    [event] = parse(line).events.to_pylist()
    assert event["user_agent_original"] == 'say "hi" \\ A'


def _without_fast_path(name: str):
    fmt = dataclasses.replace(get_format(name))
    object.__setattr__(fmt, "fast_path", None)  # instance attribute shadows the cached property
    return fmt


REGEX_FORMATS = [n for n, f in FORMATS.items() if getattr(f, "fast_path", None) is not None]

_field = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["combined", "nginx_main", "vhost_combined", "combinedio"]),
    st.lists(st.tuples(_field, _field, _field), min_size=1, max_size=8),
)
def test_fast_path_and_exact_path_agree(name, fields):
    """Lines with arbitrary user, URL and user agent parse identically with and without the fast path."""
    lines = []
    for user, path, agent in fields:
        line = GOOD.decode().replace("alice", user.replace(" ", "_") or "-")
        line = line.replace("/a/b?x=1&y=2", "/" + path.replace(" ", "%20"))
        line = line.replace("curl/8.0", agent)
        if name == "vhost_combined":
            line = "www.example.org:443 " + line
        if name == "combinedio":
            line += " 10 20"
        if name == "nginx_main":
            line = line.replace(" - " + (user.replace(" ", "_") or "-"), " - " + (user.replace(" ", "_") or "-"), 1)
            line += ' "-"'
        lines.append(line.encode())
    chunk = LineChunk("/f.log", 0, 1, b"\n".join(lines) + b"\n", name)
    fast, exact = get_format(name).parse(chunk), _without_fast_path(name).parse(chunk)
    assert fast.events.to_pylist() == exact.events.to_pylist()
    assert fast.dead_letters.to_pylist() == exact.dead_letters.to_pylist()


_SHAPED = {
    "common": GOOD.rsplit(b' "-"', 1)[0],
    "combined": GOOD,
    "vhost_combined": b"www.example.org:443 " + GOOD,
    "combinedio": GOOD + b" 10 20",
    "nginx_main": GOOD + b' "-"',
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(_SHAPED)),
    st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace", "append"]), st.integers(0, 200), st.sampled_from('" -[]x0')
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_fast_path_rejects_what_the_exact_path_rejects(name, edits):
    """Lines one stray quote, bracket, space or field away from the format: the fast path takes exactly the lines
    the exact regex takes (it checks each quote-separated piece, not the whole line at once)."""
    line = _SHAPED[name].decode()
    for kind, at, char in edits:
        at %= len(line) + 1
        edited = {
            "insert": line[:at] + char + line[at:],
            "delete": line[:at] + line[at + 1 :],
            "replace": line[:at] + char + line[at + 1 :],
            "append": line + char * 3,
        }
        line = edited[kind]
    chunk = LineChunk("/f.log", 0, 1, (line + "\n" + _SHAPED[name].decode() + "\n").encode(), name)
    fast, exact = get_format(name).parse(chunk), _without_fast_path(name).parse(chunk)
    assert fast.events.to_pylist() == exact.events.to_pylist()
    assert fast.dead_letters.to_pylist() == exact.dead_letters.to_pylist()


ALL_NAMES = sorted(FORMATS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_NAMES), st.lists(st.one_of(st.binary(max_size=200), st.just(GOOD)), max_size=12))
def test_random_bytes_never_raise_in_any_format(name, pieces):
    data = b"\n".join(pieces)
    result = parse(data, name)
    expected_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    assert result.lines_read == expected_lines
    assert result.lines_parsed + result.dead_letters.num_rows + result.lines_skipped == result.lines_read
    assert all(d["reason"] for d in result.dead_letters.to_pylist())
    assert isinstance(result.events, pa.RecordBatch)


SAMPLES = {
    "apache_error": b"[Sun Jun 16 10:00:01 2024] [core:error] [pid 1:tid 2] [client 1.2.3.4:5] AH00126: Invalid URI",
    "nginx_error": b'2024/06/16 10:00:00 [error] 77#77: *5 open() failed, client: 1.2.3.4, request: "GET / HTTP/1.1"',
    "json_lines": b'{"time":"2024-06-16T10:00:00Z","remote_addr":"1.2.3.4","request":"GET / HTTP/1.1","status":200}',
    "combined": GOOD,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_real_lines_never_raise(name, data):
    line = SAMPLES[name]
    position = data.draw(st.integers(min_value=0, max_value=len(line) - 1))
    replacement = data.draw(st.binary(min_size=0, max_size=4))
    mutated = line[:position] + replacement + line[position + 1 :]
    result = parse(mutated + b"\n" + line + b"\n", name)
    assert result.lines_parsed + result.dead_letters.num_rows + result.lines_skipped == result.lines_read
    assert result.lines_parsed >= 1 or name == "nginx_error"  # an nginx continuation may join the good line
