"""Error logs, W3C (IIS, CloudFront), AWS ALB and JSON-lines logs, read the way a user reads files:
through the chunked reader, so multi-line entries and mid-file headers meet chunk boundaries."""

from __future__ import annotations

import datetime as dt
import functools
import io

from parsers.files import FileParse, parse_file
from parsers.lines import LineChunk
from parsers.reader import iter_chunks
from parsers.registry import detect_format, parse_chunk, resolve_format

UTC = dt.timezone.utc


def parse_bytes(tmp_path, data: bytes, fmt: str = "auto", chunk_bytes: int = 1 << 20, timezone: str = "UTC"):
    path = tmp_path / "input.log"
    path.write_bytes(data)
    report = FileParse(str(path))
    results = list(
        parse_file(functools.partial(open, mode="rb"), str(path), fmt, chunk_bytes, report, timezone=timezone)
    )
    events = [e for r in results for e in r.events.to_pylist()]
    dead = [d for r in results for d in r.dead_letters.to_pylist()]
    assert report.lines_read == report.parsed + report.dead_lettered + report.skipped == data.count(b"\n")
    return report, events, dead


APACHE_ERRORS = b"""\
[Sun Jun 16 10:00:00.123456 2024] [auth_basic:error] [pid 1200:tid 140000] [client 203.0.113.9:51234] AH01618: user mallory not found: /admin
[Sun Jun 16 10:00:01 2024] [error] [client 203.0.113.9] user mallory: authentication failure for "/admin": Password Mismatch
[Sun Jun 16 10:00:02.5 2024] [core:trace5] [pid 1200] [client 2001:db8::5:443] AH00126: Invalid URI in request GET /x HTTP/1.1
"""  # noqa: E501 (real log lines are data)


def test_apache_error_log_fields_and_configured_zone(tmp_path):
    report, events, dead = parse_bytes(tmp_path, APACHE_ERRORS, timezone="America/New_York")
    assert "detected format apache_error" in report.how and not dead
    first, second, third = events
    assert first["timestamp"] == dt.datetime(2024, 6, 16, 14, 0, 0, 123456, tzinfo=UTC)
    assert (first["log_logger"], first["log_level"], first["process_pid"], first["process_thread_id"]) == (
        "auth_basic",
        "error",
        1200,
        140000,
    )
    assert (first["source_ip"], first["source_port"], first["error_code"]) == ("203.0.113.9", 51234, "AH01618")
    assert first["user_name"] == "mallory" and second["user_name"] == "mallory"
    assert second["log_logger"] is None and second["message"].startswith("user mallory: authentication failure")
    assert (third["log_level"], third["source_ip"], third["source_port"]) == ("trace5", "2001:db8::5", 443)


NGINX_ERRORS = (
    b'2024/06/16 10:00:00 [error] 77#77: *5 user "admin": password mismatch, client: 198.51.100.4, '
    b'server: example.org, request: "GET /private HTTP/1.1", host: "example.org"\n'
    b'2024/06/16 10:00:01 [error] 77#77: *6 FastCGI sent in stderr: "PHP message: one\n'
    b"PHP message: two\n"
    b'PHP message: three" while reading response header from upstream, client: 198.51.100.4, server: x\n'
    b"2024/06/16 10:00:02 [notice] 1#1: signal process started\n"
)


def test_nginx_multiline_entries_survive_chunk_boundaries(tmp_path):
    for chunk_bytes in (16, 64, 1 << 20):  # tiny chunks: the reader must not cut inside an entry
        report, events, dead = parse_bytes(tmp_path, NGINX_ERRORS, "nginx_error", chunk_bytes)
        assert not dead and (report.lines_read, report.events) == (5, 3), chunk_bytes
        assert events[0]["user_name"] == "admin" and events[0]["url_original"] == "/private"
        assert events[1]["message"].count("\n") == 2 and events[1]["log_flags"] == ["multiline"]
        assert events[1]["source_ip"] == "198.51.100.4" and events[2]["source_ip"] is None


def test_apache_remote_is_the_client_on_http2_streams():
    # Apache 2.4 writes [remote ip:port] instead of [client ...] on connections without a scoreboard slot (HTTP/2).
    line = (
        b"[Mon Nov 06 13:39:56.637868 2023] [auth_basic:error] [pid 3175001:tid 140494544914112] "
        b"[remote 192.0.2.111:35924] AH01618: user whatever not found: /admin\n"
    )
    [event] = parse_chunk(LineChunk("/e.log", 0, 1, line, "apache_error")).events.to_pylist()
    assert (event["source_ip"], event["source_port"], event["user_name"]) == ("192.0.2.111", 35924, "whatever")
    assert event["message"] == "AH01618: user whatever not found: /admin"


def test_nginx_client_is_the_one_in_the_trailing_context_not_a_forged_one_in_the_message():
    # The user name is the client's text: it can carry a fake ", client: 127.0.0.1, server: ..." before nginx's own.
    line = (
        b'2014/04/03 22:20:40 [error] 30708#0: *3 user "test": password mismatch, client: 127.0.0.1, server: test, '
        b'request: "GET / HTTP/1.1", host: "localhost:8443"": was not found in "/etc/nginx/.htpasswd", '
        b'client: 192.0.2.2, server: , request: "GET /real HTTP/1.1", host: "real.example"\n'
        b"2024/06/16 10:00:03 [info] 9#9: *7 client 203.0.113.5 closed keepalive connection, "
        b'client: 203.0.113.5, server: 0.0.0.0:443, upstream: "10.0.0.1:443", bytes from/to client:0/0\n'
    )
    forged, stream = parse_chunk(LineChunk("/e.log", 0, 1, line, "nginx_error")).events.to_pylist()
    assert (forged["source_ip"], forged["url_domain"], forged["url_original"]) == ("192.0.2.2", None, "/real")
    assert dict(forged["labels"])["host"] == "real.example"
    assert (stream["source_ip"], stream["url_domain"]) == ("203.0.113.5", "0.0.0.0:443")  # other fields: first one


def test_orphan_continuation_lines_are_dead_letters_with_reason():
    result = parse_chunk(LineChunk("/e.log", 0, 1, b"stray continuation\n" + NGINX_ERRORS, "nginx_error"))
    [dead] = result.dead_letters.to_pylist()
    assert dead["reason"] == "continuation line with no nginx_error entry before it" and dead["line_number"] == 1
    assert result.lines_parsed == 5 and result.lines_read == 6


IIS = b"""\
#Software: Microsoft Internet Information Services 10.0
#Version: 1.0
#Date: 2024-06-16 10:00:00
#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken
2024-06-16 10:00:00 10.0.0.5 GET /default.aspx id=7 443 - 203.0.113.9 Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 15
2024-06-16 10:00:01 10.0.0.5 POST /login.aspx - 443 bob 203.0.113.9 curl/8.0 https://example.org/ 401 1 0 7
#Fields: date time c-ip cs-method cs-uri-stem sc-status
2024-06-16 10:00:02 2001:db8::9 GET /health 204
"""  # noqa: E501 (real log lines are data)


def test_iis_header_changes_mid_file_and_directives_are_counted_apart(tmp_path):
    for chunk_bytes in (64, 1 << 20):
        report, events, dead = parse_bytes(tmp_path, IIS, chunk_bytes=chunk_bytes)
        assert "detected format iis" in report.how
        assert dead == [] and report.skipped == 5  # directives are not requests, and nothing is wrong with them
        assert [e["http_response_status_code"] for e in events] == [200, 401, 204]
        first, second, third = events
        assert first["timestamp"] == dt.datetime(2024, 6, 16, 10, 0, tzinfo=UTC)
        assert (first["url_original"], first["url_query"], first["user_agent_original"]) == (
            "/default.aspx?id=7",
            "id=7",
            "Mozilla/5.0 (Windows NT 10.0)",
        )
        assert first["event_duration_us"] == 15_000 and dict(first["labels"])["sc-substatus"] == "0"
        assert (second["user_name"], second["url_query"], second["http_request_referrer"]) == (
            "bob",
            None,
            "https://example.org/",
        )
        assert third["source_ip"] == "2001:db8::9" and third["destination_port"] is None


CLOUDFRONT = (
    b"#Version: 1.0\n"
    b"#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    b"cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol "
    b"cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version "
    b"fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type "
    b"sc-content-len sc-range-start sc-range-end\n"
    b"2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\t-\t"
    b"Mozilla/5.0%20(Windows%20NT%2010.0)\t-\t-\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\t"
    b"d111111abcdef8.cloudfront.net\thttps\t23\t0.001\t-\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tHit\tHTTP/2.0\t-\t-\t"
    b"11040\t0.001\tHit\ttext/html\t78\t-\t-\n"
)


def test_cloudfront_standard_log(tmp_path):
    report, [event], dead = parse_bytes(tmp_path, CLOUDFRONT)
    assert "detected format cloudfront" in report.how and not dead and report.skipped == 2
    assert (event["source_ip"], event["source_port"], event["url_domain"]) == (
        "192.0.2.100",
        11040,
        "d111111abcdef8.cloudfront.net",
    )
    assert (event["http_version"], event["tls_version"], event["event_duration_us"]) == ("2.0", "1.2", 1000)
    assert (event["url_scheme"], event["http_response_bytes"], event["http_request_bytes"]) == ("https", 392, 23)


ALB = (
    b"https 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 "
    b"0.086 0.048 0.037 200 200 0 57 "
    b'"GET https://www.example.com:443/path?x=1 HTTP/1.1" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 '
    b"arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "
    b'"Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" '
    b'"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 '
    b'2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234\n'
)


def test_aws_alb_line(tmp_path):
    report, [event], dead = parse_bytes(tmp_path, ALB)
    assert "detected format aws_alb" in report.how and not dead
    assert event["timestamp"] == dt.datetime(2018, 7, 2, 22, 23, 0, 186641, tzinfo=UTC)
    assert (event["source_ip"], event["source_port"], event["http_response_status_code"]) == (
        "192.168.131.39",
        2817,
        200,
    )
    assert (event["url_scheme"], event["url_domain"], event["url_path"], event["url_query"]) == (
        "https",
        "www.example.com",
        "/path",
        "x=1",
    )
    assert event["url_original"] == "https://www.example.com:443/path?x=1" and event["tls_version"] == "1.2"
    assert dict(event["labels"])["target_status_code"] == "200"


JSON_LINES = b"""\
{"time_local":"16/Jun/2024:10:00:00 +0200","remote_addr":"203.0.113.9","request":"GET /a?b=1 HTTP/1.1","status":"200","body_bytes_sent":"5","http_user_agent":"curl/8","request_time":"0.010","custom":"x"}
{"level":"info","ts":1718524800.5,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"198.51.100.7","remote_port":"5000","proto":"HTTP/2.0","method":"POST","host":"example.org","uri":"/login","headers":{"User-Agent":["Firefox"]}},"status":401,"size":12,"duration":0.25}
{"ClientHost":"192.0.2.1","ClientUsername":"-","DownstreamStatus":404,"Duration":1500000,"RequestMethod":"GET","RequestPath":"/x","RequestProtocol":"HTTP/1.1","StartUTC":"2024-06-16T08:00:00.000000001Z","request_User-Agent":"curl/7"}
not json
"""  # noqa: E501 (real log lines are data)


def test_json_lines_from_nginx_caddy_and_traefik(tmp_path):
    report, events, dead = parse_bytes(tmp_path, JSON_LINES)
    assert "detected format json_lines" in report.how
    assert [d["reason"][:14] for d in dead] == ["not valid JSON"]
    nginx_json, caddy, traefik = events
    assert nginx_json["timestamp"] == dt.datetime(2024, 6, 16, 8, 0, tzinfo=UTC)
    assert (nginx_json["url_query"], nginx_json["event_duration_us"], dict(nginx_json["labels"])) == (
        "b=1",
        10_000,
        {"custom": "x"},
    )
    assert caddy["timestamp"] == dt.datetime(2024, 6, 16, 8, 0, 0, 500000, tzinfo=UTC)
    assert (caddy["source_ip"], caddy["user_agent_original"], caddy["http_version"]) == (
        "198.51.100.7",
        "Firefox",
        "2.0",
    )
    assert (traefik["http_response_status_code"], traefik["event_duration_us"], traefik["user_name"]) == (
        404,
        1500,
        None,
    )


def test_detection_says_what_it_chose_or_why_not():
    combined = '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-"'
    spec, how = resolve_format("auto", [combined] * 3)
    assert spec == "combined" and "also fit debian_combined" in how
    assert detect_format(["hello world"] * 5).format is None
    assert "no known format" in detect_format(["hello world"] * 5).reason
    assert detect_format([]).reason == "no non-empty lines to detect a format from"


def test_w3c_without_header_dead_letters_with_reason():
    chunks = list(iter_chunks(io.BytesIO(b"2024-06-16 10:00:00 a b\n"), "/w.log", format_spec="w3c"))
    [dead] = parse_chunk(chunks[0]).dead_letters.to_pylist()
    assert dead["reason"] == "no #Fields header before this line, so its fields are unknown"
