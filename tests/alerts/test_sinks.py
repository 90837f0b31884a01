"""Alert sinks against real local endpoints: an HTTP server and syslog listeners on loopback."""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import socket
import threading
import time

import pytest

from alerts.sinks import DeliveryError, build_sinks
from alerts.sinks.delivery import Delivery
from alerts.sinks.files import JsonLinesSink, StdoutSink
from alerts.sinks.syslog import SyslogSink
from alerts.sinks.webhook import WebhookSink
from schemas.config import parse_config
from tests.alerts.events import T0

ALERT = {
    "alert_id": "abc123",
    "rule_id": "http-sqli",
    "rule_title": "SQL injection attempt",
    "severity": "high",
    "category": "injection",
    "technique": "T1190",
    "source_ip": "203.0.113.9",
    "user_name": None,
    "group_key": "203.0.113.9",
    "first_seen": T0,
    "last_seen": T0,
    "count": 1,
    "distinct_sample": [],
    "evidence": [{"log_file_path": "/var/log/a.log", "log_offset": 0, "timestamp": T0, "line": 'GET /?id=1" OR 1=1'}],
    "detected_at": T0,
}


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers with the statuses queued in ``server.plan`` (200 once the plan is used up), sleeping when told."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))
        status = self.server.plan.pop(0) if self.server.plan else 200
        if status == "sleep":
            time.sleep(2)
            status = 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies, server.plan = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def test_webhook_posts_the_alert_as_json(receiver):
    WebhookSink(url(receiver)).send(ALERT)
    (body,) = receiver.bodies
    assert body["alert_id"] == "abc123" and body["first_seen"] == "2026-11-01T12:00:00Z"


def test_webhook_retries_with_backoff_until_the_receiver_recovers(receiver):
    receiver.plan = [503, 500]
    started = time.monotonic()
    WebhookSink(url(receiver), retries=3, backoff=0.1).send(ALERT)
    assert len(receiver.bodies) == 3 and time.monotonic() - started >= 0.3  # waited 0.1 then 0.2


def test_webhook_gives_up_and_says_why(receiver):
    receiver.plan = [503] * 5
    with pytest.raises(DeliveryError, match=r"HTTP 503.*3 attempt"):
        WebhookSink(url(receiver), retries=2, backoff=0.01).send(ALERT)
    receiver.plan = [400]  # a refusal is not retried
    with pytest.raises(DeliveryError, match=r"HTTP 400.*1 attempt"):
        WebhookSink(url(receiver), retries=2, backoff=0.01).send(ALERT)


def test_webhook_never_blocks_forever(receiver):
    receiver.plan = ["sleep", "sleep"]
    started = time.monotonic()
    with pytest.raises(DeliveryError):
        WebhookSink(url(receiver), timeout=0.3, retries=1, backoff=0.01).send(ALERT)
    assert time.monotonic() - started < 1.5


def test_webhook_to_a_closed_port_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryError, match="refused"):
        WebhookSink(f"http://127.0.0.1:{port}/", retries=1, backoff=0.01).send(ALERT)


def test_slack_format_is_a_text_message(receiver):
    WebhookSink(url(receiver), format="slack").send(ALERT)
    (body,) = receiver.bodies
    assert set(body) == {"text"} and "[high] SQL injection attempt from 203.0.113.9" in body["text"]


RFC5424 = re.compile(
    rb"^<(\d+)>1 (\S+) (\S+) logwarden - http-sqli \[logwarden@32473 ([^\]]*)\] \xef\xbb\xbf(\{.*\})$", re.S
)


def check_syslog(message: bytes) -> None:
    match = RFC5424.match(message)
    assert match, message
    assert int(match.group(1)) == 10 * 8 + 3  # authpriv, error (our "high")
    assert b'alert_id="abc123"' in match.group(4) and b'source_ip="203.0.113.9"' in match.group(4)
    assert json.loads(match.group(5))["rule_id"] == "http-sqli"


def test_syslog_udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        sink = SyslogSink("127.0.0.1", listener.getsockname()[1], "udp")
        sink.send(ALERT)
        sink.close()
        check_syslog(listener.recv(65535))


def test_syslog_tcp_uses_octet_counting():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        sink = SyslogSink("127.0.0.1", listener.getsockname()[1], "tcp")
        sink.send(ALERT)
        sink.send(ALERT)
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            data = b""
            while data.count(b"logwarden@32473") < 2:
                data += connection.recv(65535)
        sink.close()
    for _ in range(2):
        length, _, rest = data.partition(b" ")
        check_syslog(rest[: int(length)])
        data = rest[int(length) :]


def test_syslog_tcp_without_listener_reports_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryError):
        SyslogSink("127.0.0.1", port, "tcp", timeout=1).send(ALERT)


def test_one_broken_sink_does_not_stop_the_others(tmp_path, receiver):
    path = tmp_path / "out" / "alerts.jsonl"
    stream = io.StringIO()
    broken = WebhookSink("http://127.0.0.1:9/", retries=0)
    delivery = Delivery([broken, JsonLinesSink(str(path)), StdoutSink(stream)], deadline_seconds=10)
    delivery.submit(ALERT)
    report = delivery.finish()
    assert json.loads(path.read_text())["alert_id"] == "abc123" and json.loads(stream.getvalue())["count"] == 1
    assert report.failed == {"webhook:http://127.0.0.1:9/": 1}


def test_jsonl_file_gets_an_alert_written_just_before_a_kill_once_and_no_torn_line(tmp_path):
    """A kill between writing an alert and recording its confirmation makes the next run send it again; the file
    must still hold it once, and a line cut short by the kill must not stay behind as broken JSON."""
    path = tmp_path / "alerts.jsonl"
    first, second, third = ({**ALERT, "alert_id": i} for i in ("a1", "a2", "a3"))
    sink = JsonLinesSink(str(path))
    sink.send(first)
    sink.send(second)
    sink.close()
    with open(path, "a") as killed_mid_line:
        killed_mid_line.write('{"alert_id":"a3","rule_id":"http-sq')
    rerun = JsonLinesSink(str(path))
    for alert in (second, third):  # both unconfirmed: the rerun sends them again
        rerun.send(alert)
    rerun.close()
    assert [json.loads(line)["alert_id"] for line in path.read_text().splitlines()] == ["a1", "a2", "a3"]


def test_jsonl_file_looks_only_at_its_end_for_alerts_already_written(tmp_path):
    from alerts.sinks.files import ids_at_end

    path = tmp_path / "alerts.jsonl"
    lines = [json.dumps({"alert_id": f"id{i}"}) for i in range(100)]
    path.write_text("not json\n" + "\n".join(lines) + "\n")
    fd = os.open(path, os.O_RDWR)
    try:
        near_end = ids_at_end(fd, tail_bytes=len(lines[-1]) * 3 + 3)
        everything = ids_at_end(fd)
    finally:
        os.close(fd)
    assert "id99" in near_end and "id98" in near_end and "id0" not in near_end
    assert everything == {f"id{i}" for i in range(100)}


def test_sinks_from_config(tmp_path, receiver):
    config = parse_config(
        {
            "alerts": {
                "sinks": {"jsonl": str(tmp_path / "a.jsonl"), "webhook": {"url": url(receiver), "format": "slack"}}
            }
        }
    )
    sinks = build_sinks(config.alerts.sinks)
    assert [type(s).__name__ for s in sinks] == ["JsonLinesSink", "WebhookSink"]
