"""Times no event can have become dead letters with a reason, never a traceback or a shifted date."""

from __future__ import annotations

import json

import pytest

from parsers.lines import LineChunk
from parsers.registry import parse_chunk

CLF = '198.51.100.1 - - [{t}] "GET /a HTTP/1.1" 200 10 "-" "ua"'


def _parse(line: str, fmt: str):
    return parse_chunk(LineChunk("/x.log", 0, 1, (line + "\n").encode(), fmt))


@pytest.mark.parametrize(
    "stamp",
    [
        "01/Jan/0001:00:00:00 +0000",
        "01/Jan/0001:00:00:00 +0100",
        "01/Jan/0999:00:00:00 +0000",
        "31/Dec/9999:23:59:59 +0000",
        "31/Dec/9999:23:59:59 -1200",
        "29/Feb/2025:10:00:00 +0000",
        "31/Apr/2026:10:00:00 +0000",
        "1/Feb/0001:10:00:00 +0000",
    ],
)
def test_clf_time_that_no_event_can_have_is_a_dead_letter(stamp):
    result = _parse(CLF.format(t=stamp), "combined")
    assert result.events.num_rows == 0
    (reason,) = result.dead_letters.column("reason").to_pylist()
    assert stamp in reason and "between 1970 and 2199" in reason


def test_leap_day_of_a_leap_year_is_kept():
    result = _parse(CLF.format(t="29/Feb/2024:10:00:00 +0000"), "combined")
    assert result.events.column("timestamp")[0].as_py().isoformat() == "2024-02-29T10:00:00+00:00"


@pytest.mark.parametrize(
    "record",
    [
        {"time": "0001-01-01T00:00:00Z"},
        {"time": "9999-12-31T23:59:59-05:00"},
        {"time": "2025-02-29T10:00:00Z"},
        {"ts": 1e20},
        {"ts": 99999999999999},
        {"ts": -5},
    ],
)
def test_json_time_that_no_event_can_have_is_a_dead_letter(record):
    result = _parse(json.dumps({**record, "uri": "/a", "status": 200}), "json_lines")
    assert result.events.num_rows == 0 and result.dead_letters.num_rows == 1


def test_custom_strftime_layout_refuses_impossible_day():
    fmt = 'LogFormat "%h [%{%Y-%m-%d %H:%M:%S}t] \\"%r\\" %>s %b"'
    ok = _parse('198.51.100.1 [2024-02-29 10:00:00] "GET / HTTP/1.1" 200 1', fmt)
    bad = _parse('198.51.100.1 [2025-02-29 10:00:00] "GET / HTTP/1.1" 200 1', fmt)
    assert ok.events.num_rows == 1 and bad.events.num_rows == 0 and bad.dead_letters.num_rows == 1


@pytest.mark.parametrize("opener, closer", [('{"a":', "}"), ("[", "]")])
def test_json_nested_5000_deep_is_a_dead_letter(opener, closer):
    nested = opener * 5000 + "1" + closer * 5000
    line = '{"time":"2026-01-01T00:00:00Z","uri":"/a","status":200,"x":' + nested + "}"
    result = _parse(line, "json_lines")
    assert result.events.num_rows == 0
    assert result.dead_letters.column("reason").to_pylist() == ["JSON nested deeper than 64 levels"]


def test_json_with_a_few_levels_is_read():
    line = '{"time":"2026-01-01T00:00:00Z","request":{"uri":"/a","headers":{"User-Agent":["ua"]}},"status":200}'
    assert _parse(line, "json_lines").events.num_rows == 1
