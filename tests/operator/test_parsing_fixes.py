"""Issue 16 §5: parsing that was wrong, not just strict."""
# ruff: noqa: E501 (real log lines are data)

from __future__ import annotations

from pathlib import Path

import pytest

from parsers.files import FileParse, parse_file
from parsers.registry import detect_format
from tests.operator.helpers import logwarden


def open_raw(path):
    return open(path, "rb")


def parse(tmp_path: Path, text: str, fmt: str = "auto", name: str = "x.log"):
    path = tmp_path / name
    path.write_text(text)
    report = FileParse(str(path))
    events, dead = [], []
    for result in parse_file(open_raw, str(path), fmt, report=report):
        events += result.events.to_pylist()
        dead += result.dead_letters.to_pylist()
    return events, dead, report


PAM = (
    "2025/09/07 21:20:40 [error] 23141#23141: *24470 PAM: user 'username' - not authenticated: Authentication "
    'failure, client: 192.0.2.120, server: webdav.sub.domain, request: "GET / HTTP/2.0", host: "webdav.sub.domain"\n'
    "\n"
    'host nginx[983478]: 2023/12/09 21:35:20 [error] 983478#983478: *3 user "fakeusername" was not found in '
    '"/var/lib/nginx/htpasswd", client: 192.0.2.3, server: host.example.com, request: "GET / HTTP/2.0", '
    'host: "host.example.com"\n'
)


def test_nginx_multiline_never_swallows_an_entry_with_its_own_syslog_prefix(tmp_path):
    events, dead, report = parse(tmp_path, PAM, "nginx_error")
    assert [(e["source_ip"], e["user_name"]) for e in events] == [("192.0.2.120", None), ("192.0.2.3", "fakeusername")]
    assert "fakeusername" not in events[0]["message"] and not dead
    assert report.skipped == 1  # the blank line between them


def test_nginx_continuation_lines_still_join_their_entry(tmp_path):
    text = '2026/11/01 10:00:00 [error] 1#1: *5 FastCGI sent in stderr: "PHP Warning" while reading\nStack trace:\n#0 {main}\n'
    events, dead, _ = parse(tmp_path, text, "nginx_error")
    assert len(events) == 1 and events[0]["message"].endswith("#0 {main}") and not dead


def test_a_stray_line_after_a_blank_line_continues_nothing_and_says_so(tmp_path):
    text = PAM.replace("\n\n", "\n\n# a note someone pasted\n")
    events, dead, report = parse(tmp_path, text, "nginx_error")
    assert len(events) == 2 and report.skipped == 1
    assert [d["reason"] for d in dead] == ["continuation line with no nginx_error entry before it"]


def test_a_named_format_keeps_trailing_fields_in_labels_with_a_flag(tmp_path):
    text = (
        '203.0.113.5 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" "Mozilla/5.0" "198.51.100.7" 1234\n'
        '203.0.113.6 - - [01/Nov/2026:10:00:01 +0000] "GET /a HTTP/1.1" 200 512 "-" "Mozilla/5.0"\n'
    )
    events, dead, _ = parse(tmp_path, text, "combined")
    assert not dead
    assert events[0]["labels"] == [("extra_fields", '"198.51.100.7" 1234')] and events[0]["log_flags"] == [
        "extra_fields"
    ]
    assert events[1]["log_flags"] is None and not events[1]["labels"]
    assert detect_format(text.splitlines()).format.name == "combined"


def test_blank_lines_are_counted_apart_not_dead_lettered(tmp_path):
    text = '203.0.113.6 - - [01/Nov/2026:10:00:01 +0000] "GET /a HTTP/1.1" 200 512 "-" "UA"\n\n   \n'
    events, dead, report = parse(tmp_path, text, "combined")
    assert len(events) == 1 and dead == [] and report.skipped == 2
    assert report.lines_read == report.parsed + report.dead_lettered + report.skipped


IIS = """#Software: Microsoft Internet Information Services 10.0
#Version: 1.0
#Date: 2026-11-01 10:00:00
#Fields: date time cs-username c-ip s-ip cs-method cs-uri-stem cs-uri-query s-port sc-status sc-substatus sc-win32-status sc-bytes cs-bytes time-taken cs(User-Agent) cs(Referer)
2026-11-01 10:00:01 alice 203.0.113.8 10.0.0.5 GET /index.html a=1 443 200 0 0 5120 300 15 Mozilla/5.0+(Windows) -
2026-11-01 10:00:02 - fe80::1%11 10.0.0.5 POST /login - 443 401 1 0 512 700 3 curl/8 https://x/
"""

HTTPERR = """#Software: Microsoft HTTP API 2.0
#Version: 1.0
#Date: 2026-11-01 10:00:00
#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid sc-status s-siteid s-reason s-queuename
2026-11-01 10:00:01 203.0.113.7 52011 10.0.0.5 80 HTTP/1.1 GET /wp-login.php?x=1 - 400 - BadRequest -
2026-11-01 10:00:02 ::1%0 52012 ::1%0 80 HTTP/1.1 GET /bad%20path - 404 1 NotFound DefaultAppPool
"""


def test_w3c_directives_are_counted_apart_and_iis_fields_follow_any_order(tmp_path):
    events, dead, report = parse(tmp_path, IIS)
    assert dead == [] and report.skipped == 4
    first, second = events
    assert (first["user_name"], first["source_ip"], first["url_original"], first["http_response_bytes"]) == (
        "alice", "203.0.113.8", "/index.html?a=1", 5120,
    )  # fmt: skip
    assert second["source_ip"] == "fe80::1" and dict(second["labels"])["source_ip_zone"] == "11"
    assert second["source_address"] == "fe80::1%11"  # as logged
    assert "W3C #Fields header" in report.how and "s-ip cs-method" not in report.how  # not a field list it lacks


def test_httperr_logs_keep_the_url_and_lose_zone_ids(tmp_path):
    events, dead, report = parse(tmp_path, HTTPERR)
    assert dead == [] and report.skipped == 4
    assert [e["url_path"] for e in events] == ["/wp-login.php", "/bad%20path"]
    assert events[0]["url_query"] == "x=1" and events[0]["http_response_status_code"] == 400
    assert (events[1]["source_ip"], events[1]["destination_ip"]) == ("::1", "::1")
    labels = dict(events[1]["labels"])
    assert labels["source_ip_zone"] == "0" and labels["s-reason"] == "NotFound"


ELB = """2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -
2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000086 0.001048 0.001337 200 200 0 57 "GET https://www.example.com:443/ HTTP/1.1" "curl/7.38.0" DHE-RSA-AES128-SHA TLSv1.2
2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.001069 0.000028 0.000041 - - 82 305 "- - - " "-" - -
2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.001065 0.000015 0.000023 - - 57 502 "- - - " "-" ECDHE-ECDSA-AES128-GCM-SHA256 TLSv1.2
2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 - -1 -1 -1 503 0 0 0 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -
"""
NLB = """tls 2.0 2018-12-20T02:59:40 net/my-network-loadbalancer/c6e77e28c25b2234 g3d4b5e8bb8464cd 72.21.218.154:51341 172.100.100.185:443 5 2 98 246 - arn:aws:acm:us-east-2:671290407336:certificate/2a108f19-aded-46b0-8493-c63eb1ef4a99 - ECDHE-RSA-AES128-SHA tlsv12 - my-nlb.elb.us-east-2.amazonaws.com h2 h2 "h2","http/1.1" 2018-12-20T02:59:30
"""
ALB = """https 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 "GET https://www.example.com:443/ HTTP/1.1" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-"
"""


@pytest.mark.parametrize(("text", "name", "count"), [(ELB, "aws_elb", 5), (NLB, "aws_nlb", 1), (ALB, "aws_alb", 1)])
def test_aws_load_balancer_logs_are_detected_and_parsed(tmp_path, text, name, count):
    assert detect_format(text.splitlines()).format.name == name
    events, dead, _ = parse(tmp_path, text)
    assert len(events) == count and dead == []
    assert all(e["source_ip"] in ("192.168.131.39", "72.21.218.154") for e in events)
    if name == "aws_elb":
        assert [e["http_response_status_code"] for e in events] == [200, 200, None, None, 503]
        assert events[1]["tls_version"] == "1.2" and events[0]["url_domain"] == "www.example.com"
    if name == "aws_nlb":
        assert events[0]["url_domain"] == "my-nlb.elb.us-east-2.amazonaws.com"


def test_parse_summary_names_the_skipped_lines(tmp_path):
    path = tmp_path / "iis.log"
    path.write_text(IIS)
    done = logwarden("parse", path, "--output", tmp_path / "out.jsonl")
    assert done.returncode == 0
    assert "6 lines read = 2 parsed + 0 dead-lettered + 4 skipped (blank lines, W3C directives)" in done.stderr
