"""A send in flight at the delivery deadline: let finish and counted, so a rerun does not send it twice; bounded.

Real local HTTP servers that answer slowly, answer "busy" slowly, or trickle their answer; no mocks.
Timings only ever make the servers slower than the deadline (load makes them slower still), and the one
upper bound asserted is the sink's own stated bound with a wide margin.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from alerts.outbox import Outbox, load_outbox_key
from alerts.sinks.delivery import Delivery
from alerts.sinks.owed import deliver_with_retry
from alerts.sinks.webhook import WebhookSink
from tests.alerts.test_sinks import ALERT
from tests.conftest import ROOT
from tests.hardening.commands import batch_command


def _alert(n: int) -> dict:
    return {**ALERT, "alert_id": f"id-{n:04d}", "count": n}


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Records each body the moment it arrives, then waits ``server.delay`` before answering ``server.status``
    (the first ``server.prompt`` requests are answered at once)."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.bodies.append(body)
            prompt = len(self.server.bodies) <= self.server.prompt
        time.sleep(0 if prompt else self.server.delay)
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(delay: float, status: int = 200, prompt: int = 0) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    server.bodies, server.delay, server.status, server.lock = [], delay, status, threading.Lock()
    server.prompt = prompt
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    return server


@pytest.fixture
def slow():
    servers = []

    def start(delay: float, status: int = 200, prompt: int = 0):
        servers.append(_serve(delay, status, prompt))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def outbox(tmp_path):
    return Outbox.with_key(str(tmp_path / "out"), load_outbox_key(tmp_path / "outbox.key", environ={}))


def _sink_threads_alive(url: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"logwarden-sink-webhook:{url}" and t.is_alive()]


def test_an_alert_in_flight_at_the_deadline_is_confirmed_and_a_rerun_does_not_send_it_again(slow, outbox):
    server = slow(delay=4)  # answers 2 s after the deadline, well within the 15 s timeout
    sink = WebhookSink(server.url, timeout=15, internal=True)
    alerts = [_alert(n) for n in range(3)]
    started = time.monotonic()
    first = deliver_with_retry(outbox, [sink], alerts, deadline_seconds=2)
    took = time.monotonic() - started
    assert [b["alert_id"] for b in server.bodies] == ["id-0000"], "nothing new is handed out past the deadline"
    assert first.sent == 1 and first.undelivered == 2, first  # the answer that came after the deadline counts
    assert 4 <= took < 2 + sink.in_flight_seconds + 10, f"waited {took:.1f}s past a 2 s deadline"
    assert not _sink_threads_alive(server.url)

    server.delay = 0  # the rerun: the same alerts again (a rerun over the same logs raises the same ids)
    second = deliver_with_retry(outbox, [sink], alerts, deadline_seconds=30)
    ids = [b["alert_id"] for b in server.bodies]
    assert sorted(ids) == ["id-0000", "id-0001", "id-0002"], f"each alert id reaches the receiver once: {ids}"
    assert second.sent == 2 and second.skipped == 1 and second.undelivered == 0


def test_no_retry_begins_past_the_deadline_and_no_sink_thread_is_left_running(slow):
    server = slow(delay=1.5, status=503)  # busy, and slow to say so
    sink = WebhookSink(server.url, timeout=15, retries=3, backoff=1)
    delivery = Delivery([sink], deadline_seconds=2)
    delivery.submit(_alert(0))
    report = delivery.finish()
    assert report.undelivered[sink.name] == ["id-0000"] and "HTTP 503" in report.errors[sink.name]
    assert not _sink_threads_alive(server.url), "the retry loop ended with the deadline"
    assert len(server.bodies) == 1, "the attempt in flight at the deadline was the last"


class _Trickler:
    """Accepts a request and answers one header byte every 0.2 s, for ever: each byte within any timeout."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.done.wait(0.2):
                try:
                    conn.sendall(b"a")
                except OSError:
                    return

    def close(self):
        self.done.set()
        self.sock.close()


def test_a_send_still_in_flight_past_its_bound_is_left_behind_and_counted_undelivered():
    trickler = _Trickler()
    try:
        sink = WebhookSink(trickler.url, timeout=1)
        delivery = Delivery([sink], deadline_seconds=0.5)
        started = time.monotonic()
        delivery.submit(_alert(0))
        report = delivery.finish()
        took = time.monotonic() - started
    finally:
        trickler.close()
    assert report.undelivered[sink.name] == ["id-0000"] and report.abandoned == [sink.name]
    assert "in flight" in report.errors[sink.name]
    # the bound is the deadline plus the sink's in_flight_seconds (3 s here); never the receiver's whim
    assert took < 0.5 + sink.in_flight_seconds + 10, f"{took:.1f}s"


def _command(tmp_path, config_text: str, log) -> list[str]:
    config = tmp_path / "logwarden.yaml"
    config.write_text(config_text)
    return batch_command(config, log, tmp_path / "out")


_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _batch(tmp_path, config_text: str, log) -> subprocess.CompletedProcess:
    return subprocess.run(_command(tmp_path, config_text, log), capture_output=True, text=True, env=_ENV, cwd=tmp_path)


def _attack_log(tmp_path, sources: int = 3):
    lines = [
        f'192.0.2.{60 + i} - - [01/Nov/2026:10:00:{i:02d} +0000] "GET /item?id=1%27%20UNION%20SELECT%20a%20FROM%20b-- '
        'HTTP/1.1" 200 1 "-" "ua"'
        for i in range(sources)
    ]
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def _config(tmp_path, sinks: str) -> str:
    keys = f"keys: {{keyring: {tmp_path / 'keyring'}, root_key_file: {tmp_path / 'root.key'}}}\n"
    return keys + f"alerts: {{sinks: {{{sinks}}}}}\n"


def test_batch_with_a_slow_webhook_sends_each_alert_once_across_a_rerun(tmp_path, slow):
    log = _attack_log(tmp_path)
    server = slow(delay=6)  # slower than the 2 s delivery deadline, well within the 20 s timeout
    config = _config(tmp_path, f"deadline_seconds: 2, webhook: {{url: '{server.url}', timeout_seconds: 20}}")
    first = _batch(tmp_path, config, log)
    assert first.returncode == 1, first.stderr[-2000:]  # the alerts not started before the deadline are owed
    assert "not delivered to a sink: kept sealed, retried next run" in first.stderr
    assert "Traceback" not in first.stderr
    assert len(server.bodies) == 1, "one alert was in flight at the deadline; none was handed out after it"

    server.delay = 0
    second = _batch(tmp_path, config, log)  # same logs: the same alert ids; only the owed ones go out
    assert second.returncode == 0, second.stderr[-2000:]
    ids = [body["alert_id"] for body in server.bodies]
    assert len(ids) >= 3 and len(ids) == len(set(ids)), f"each alert id reaches the sink exactly once: {ids}"


def test_a_run_killed_while_delivering_sends_only_what_was_not_confirmed_next_time(tmp_path, slow):
    """The first alert is confirmed at once, the second held: once the second arrives, the first's confirmation
    is on disk (the sink's thread records it before taking the next), and a kill -9 then loses nothing of it."""
    log = _attack_log(tmp_path)
    server = slow(delay=600, prompt=1)
    config = _config(tmp_path, f"webhook: {{url: '{server.url}', timeout_seconds: 900}}")
    job = subprocess.Popen(
        _command(tmp_path, config, log), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_ENV, cwd=tmp_path
    )
    try:
        waited = 0.0
        while len(server.bodies) < 2 and job.poll() is None and waited < 600:
            time.sleep(0.05)
            waited += 0.05
        assert len(server.bodies) == 2, job.stderr.read().decode()[-2000:] if job.poll() is not None else "no 2nd"
        job.kill()
    finally:
        job.kill()
        job.wait()
    first_id = server.bodies[0]["alert_id"]

    server.delay = 0
    rerun = _batch(tmp_path, config, log)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    ids = [body["alert_id"] for body in server.bodies]
    assert ids.count(first_id) == 1, f"the alert confirmed before the kill was sent again: {ids}"
    assert len(ids) >= 3 and len(set(ids)) == len(ids) - 1  # the held one, unconfirmed, is sent again: once more
