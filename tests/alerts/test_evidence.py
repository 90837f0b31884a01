"""Evidence lines read like the combined log line they came from, whatever fields are missing."""

from __future__ import annotations

import datetime as dt

import numpy as np

from alerts.evidence import evidence_lines
from tests.alerts.events import access, batch, error, error_batch


def lines(rows):
    events = batch(rows)
    return evidence_lines(events, np.arange(events.num_rows), "access")


def test_an_access_line_is_rebuilt_in_combined_format():
    row = access(1.75, url="/a?b=1", status=404, user_name="alice", http_response_body_bytes=0, url_domain="ex.org")
    row["http_request_referrer"] = "https://ex.org/"
    assert lines([row]) == [
        'ex.org 203.0.113.9 - alice [01/Nov/2026:12:00:01 +0000] "GET /a?b=1 HTTP/1.1" 404 0 "https://ex.org/" '
        '"Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"'
    ]


def test_missing_fields_become_dashes_and_the_request_is_rebuilt_from_its_parts():
    rebuilt = access(0, url="/x", source_address="", user_name="", http_request_line=None, http_version=None)
    nothing = access(0, url="/x", http_request_line=None, url_original=None, agent=None, status=None)
    assert lines([rebuilt, nothing]) == [
        '203.0.113.9 - - [01/Nov/2026:12:00:00 +0000] "GET /x -" 200 - "-" '
        '"Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"',
        '203.0.113.9 - - [01/Nov/2026:12:00:00 +0000] "" - - "-" "-"',
    ]


def test_an_access_line_shows_the_whole_second_its_event_happened_on_any_day():
    utc = dt.timezone.utc
    times = [
        dt.datetime(2026, 10, 31, 23, 59, 59, 999_999, tzinfo=utc),  # a fraction of a second does not round up
        dt.datetime(2027, 1, 1, 0, 0, 0, tzinfo=utc),
        dt.datetime(1969, 12, 31, 23, 59, 58, 500_000, tzinfo=utc),  # before 1970, as strftime shows it
        None,
    ]
    rows = [{**access(0), "timestamp": t} for t in times]
    assert [line.split("[")[1].split("]")[0] for line in lines(rows)] == [
        "31/Oct/2026:23:59:59 +0000",
        "01/Jan/2027:00:00:00 +0000",
        "31/Dec/1969:23:59:59 +0000",
        "-",
    ]


def test_an_error_line_keeps_the_error_log_shape():
    events = error_batch([error(0, "AH01618: user bob not found", log_logger="auth_basic")])
    when = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc).strftime("%a %b %d %H:%M:%S.%f %Y")
    assert evidence_lines(events, np.arange(1), "error") == [
        f"[{when}] [auth_basic:error] [client 198.51.100.7] AH01618: user bob not found"
    ]
