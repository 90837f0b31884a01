"""Sinks never hold up the job, keep what they could not deliver (sealed), retry it, and send each id once."""

from __future__ import annotations

import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from alerts.outbox import Outbox, load_outbox_key
from alerts.sinks import shared_view
from alerts.sinks.delivery import Delivery
from alerts.sinks.files import JsonLinesSink
from alerts.sinks.owed import deliver_with_retry, owe_alerts
from alerts.sinks.syslog import SyslogSink
from alerts.sinks.webhook import WebhookSink
from retention import sealing
from tests.alerts.test_sinks import ALERT
from tests.conftest import ROOT


def _alert(n: int) -> dict:
    return {**ALERT, "alert_id": f"id-{n:04d}", "count": n}


class _Silent:
    """A TCP server that accepts connections and never answers (the webhook that cost 27 s per alert)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.listen(1000)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def close(self):
        self.sock.close()


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def outbox(tmp_path):
    return Outbox.with_key(str(tmp_path / "out"), load_outbox_key(tmp_path / "outbox.key", environ={}))


def test_a_webhook_that_never_answers_costs_one_timeout_not_one_per_alert(tmp_path):
    silent = _Silent()
    try:
        path = tmp_path / "alerts.jsonl"
        delivery = Delivery([WebhookSink(silent.url, timeout=1, retries=3), JsonLinesSink(str(path))], 30)
        started = time.monotonic()
        for n in range(605):
            delivery.submit(_alert(n))
        report = delivery.finish()
        took = time.monotonic() - started
    finally:
        silent.close()
    assert took < 5, f"{took:.1f}s for 605 alerts to a dead webhook"
    assert (
        len(report.undelivered[f"webhook:{silent.url}"]) == 605
        and "no answer" in report.errors[f"webhook:{silent.url}"]
    )
    assert len(report.delivered[f"jsonl:{path}"]) == 605  # the other sink is not held up


def test_total_deadline_bounds_a_sink_that_is_merely_slow():
    class Slow:
        name, internal = "slow", True

        def send(self, alert):
            time.sleep(0.2)

        def close(self):
            pass

    delivery = Delivery([Slow()], deadline_seconds=1)
    started = time.monotonic()
    for n in range(100):
        delivery.submit(_alert(n))
    report = delivery.finish()
    assert time.monotonic() - started < 2.5
    assert 1 <= len(report.delivered["slow"]) <= 6 and len(report.undelivered["slow"]) >= 94
    assert "deadline" in report.errors["slow"]


def test_undelivered_alerts_are_sealed_and_retried_next_run_once_per_sink(tmp_path, recorder, outbox):
    silent = _Silent()
    down = WebhookSink(silent.url, timeout=0.5, internal=True)
    alerts = [_alert(n) for n in range(3)]
    first = deliver_with_retry(outbox, [down], alerts, 10)
    silent.close()
    assert first.undelivered == 3
    pending_file = tmp_path / "out" / "_state" / "outbox" / "pending.bin"
    assert b"203.0.113.9" not in pending_file.read_bytes() and b"OR 1=1" not in pending_file.read_bytes()

    # Next run: the receiver is back at that address? A new one: the same sink name must be configured.
    back = WebhookSink(recorder.url, internal=True)
    back.name = down.name
    second = deliver_with_retry(outbox, [back], [_alert(3)], 10)
    assert second.retried == 3 and second.undelivered == 0
    assert sorted(b["alert_id"] for b in recorder.bodies) == ["id-0000", "id-0001", "id-0002", "id-0003"]
    assert not pending_file.exists()

    # A rerun over the same logs raises the same ids: the sink gets none of them again.
    third = deliver_with_retry(outbox, [back], [*alerts, _alert(3)], 10)
    assert third.sent == 0 and third.skipped == 4 and len(recorder.bodies) == 4


def test_external_webhook_gets_no_raw_lines_query_strings_addresses_or_users(recorder, outbox):
    alert = {
        **ALERT,
        "user_name": "jane.doe@example.com",
        "url_domain": "shop.example",
        "distinct_sample": ["/login?user=jane.doe@example.com"],
    }
    external = WebhookSink(recorder.url)
    slack = WebhookSink(recorder.url, format="slack")
    slack.name += "#slack"
    internal = WebhookSink(recorder.url, internal=True)
    internal.name += "#internal"
    deliver_with_retry(outbox, [external, slack, internal], [alert], 10)
    bodies = {json.dumps(b) for b in recorder.bodies}
    assert len(bodies) == 3
    leaked = [b for b in bodies if "203.0.113.9" in b or "jane.doe" in b or "OR 1=1" in b or "shop.example" in b]
    assert len(leaked) == 1 and '"evidence"' in leaked[0], leaked  # only the sink marked internal
    shared = next(json.loads(b) for b in bodies if '"key_hash"' in b)
    assert set(shared) == {*shared_view(alert, "x")} and shared["rule_id"] == "http-sqli"


def test_syslog_is_external_unless_marked_internal():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5)
        sink = SyslogSink("127.0.0.1", listener.getsockname()[1], "udp")
        delivery = Delivery([sink], 5, view=lambda a, s: a if s.internal else shared_view(a, "k"))
        delivery.submit(ALERT)
        delivery.finish()
        message = listener.recv(65535)
    assert b"203.0.113.9" not in message and b"OR 1=1" not in message and b"http-sqli" in message


def test_plaintext_jsonl_sink_is_created_owner_only(tmp_path):
    path = tmp_path / "alerts.jsonl"
    sink = JsonLinesSink(str(path))
    sink.send(ALERT)
    sink.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    JsonLinesSink(str(path)).send(ALERT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_outbox_key_is_owner_only_and_workers_cannot_open_parts(tmp_path, outbox):
    key_file = tmp_path / "outbox.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    import pickle

    worker_copy = pickle.loads(pickle.dumps(outbox))
    worker_copy.write_part("run1", [ALERT])
    with pytest.raises(Exception, match="private key"):
        worker_copy.run_alerts("run1")
    assert [a["alert_id"] for a in outbox.run_alerts("run1")] == ["abc123"]
    (part,) = (tmp_path / "out" / ".tmp" / "run1" / "alerts").glob("part-*.bin")
    assert b"203.0.113.9" not in part.read_bytes()
    key_file.chmod(0o644)
    with pytest.raises(Exception, match="chmod 600"):
        load_outbox_key(key_file, environ={})
    assert len(sealing.decode_key(os.environ.get("X", key_file.read_text()))) == 32


def _batch(tmp_path, config_text: str, log) -> subprocess.CompletedProcess:
    config = tmp_path / "logwarden.yaml"
    config.write_text(config_text)
    command = [sys.executable, "-m", "pipelines.cli", "batch", "-c", str(config), "-i", str(log)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*command, "-o", str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=tmp_path
    )


def test_batch_with_a_dead_webhook_exits_1_and_the_next_run_delivers_each_alert_once(tmp_path):
    lines = [
        f'192.0.2.66 - - [01/Nov/2026:10:00:{i:02d} +0000] "GET /item?id=1%27%20UNION%20SELECT%20a%20FROM%20b--{i} '
        'HTTP/1.1" 200 1 "-" "ua"'
        for i in range(3)
    ]
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    silent = _Silent()
    port = silent.sock.getsockname()[1]
    config = (
        f"keys: {{keyring: {tmp_path / 'keyring'}, root_key_file: {tmp_path / 'root.key'}}}\n"
        f"alerts: {{sinks: {{webhook: {{url: 'http://127.0.0.1:{port}/hook', timeout_seconds: 1}}}}}}\n"
    )
    started = time.monotonic()
    first = _batch(tmp_path, config, log)
    silent.close()
    assert first.returncode == 1, first.stderr[-2000:]
    assert "not delivered to a sink: kept sealed, retried next run" in first.stderr
    assert "Traceback" not in first.stderr and time.monotonic() - started < 60

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Recorder)
    server.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        second = _batch(tmp_path, config, log)  # same logs again: the owed alerts go out, the same ids not twice
    finally:
        server.shutdown()
        server.server_close()
    assert second.returncode == 0, second.stderr[-2000:]
    assert "retried" in second.stderr
    ids = [body["alert_id"] for body in server.bodies]
    assert ids and len(ids) == len(set(ids)), "each alert id reaches the sink exactly once across reruns"
    assert all("source_ip" not in body and "evidence" not in body for body in server.bodies)


class _Checking:
    """A sink that, as each alert reaches it, notes what a second process would read of its delivery record."""

    name, internal = "checking", True

    def __init__(self, reader: Outbox):
        self.reader, self.records = reader, []

    def send(self, alert):
        self.records.append(self.reader.delivered(self.name))

    def close(self):
        pass


def test_each_confirmation_is_on_record_before_the_next_send_through_one_open_record_per_sink(
    tmp_path, outbox, monkeypatch
):
    """What makes a ``kill -9`` in the middle of delivering resend only the unconfirmed: each confirmation is in
    the sink's record the moment the sink returns; the record is opened once for the run, not once per alert."""
    reader = Outbox.with_key(outbox.output, load_outbox_key(tmp_path / "outbox.key", environ={}))
    sink = _Checking(reader)
    opened = []
    delivered_log = Outbox.delivered_log
    monkeypatch.setattr(Outbox, "delivered_log", lambda self, name: opened.append(name) or delivered_log(self, name))
    outcome = deliver_with_retry(outbox, [sink], [_alert(n) for n in range(3)], 10)
    tokens = [outbox.id_token(f"id-{n:04d}") for n in range(3)]
    assert outcome.sent == 3 and sink.records == [set(), {tokens[0]}, {tokens[0], tokens[1]}]
    assert reader.delivered(sink.name) == set(tokens) and opened == [sink.name]


def test_an_outbox_reads_back_what_it_owed_without_unsealing_it_yet_sees_what_another_process_wrote(
    tmp_path, outbox, monkeypatch
):
    """A batch run delivers what it owed a moment ago from memory; the outbox on disk stays the truth."""
    import alerts.outbox

    sink = JsonLinesSink(str(tmp_path / "alerts.jsonl"))
    owe_alerts(outbox, [sink], [_alert(1), _alert(2)])
    with monkeypatch.context() as patch:
        patch.setattr(alerts.outbox, "_unseal", lambda *args: pytest.fail("unsealed what it had just written"))
        assert [(a["alert_id"], names) for a, names in outbox.pending()] == [
            ("id-0001", [sink.name]),
            ("id-0002", [sink.name]),
        ]
    other = Outbox.with_key(outbox.output, load_outbox_key(tmp_path / "outbox.key", environ={}))
    other.set_pending([(_alert(3), [sink.name])])
    assert [a["alert_id"] for a, _ in outbox.pending()] == ["id-0003"]
    other.set_pending([])
    assert outbox.pending() == []


RUN = "20261202T185706Z-e026a0"


def test_a_part_is_written_when_another_worker_made_its_folder_in_between(tmp_path, outbox, monkeypatch):
    """Two bundles sealing their first parts at once both see no folder; the second's mkdirs must not fail the run."""
    import alerts.outbox

    (tmp_path / "out" / ".tmp" / RUN / "alerts").mkdir(parents=True)
    exists, looked = alerts.outbox.FileSystems.exists, []

    def not_yet(path):  # the folder looked for before the other worker made it
        if path.endswith("alerts") and not looked:
            looked.append(path)
            return False
        return exists(path)

    monkeypatch.setattr(alerts.outbox.FileSystems, "exists", not_yet)
    path = outbox.write_part(RUN, [_alert(1)])
    monkeypatch.undo()
    assert path.startswith(str(tmp_path / "out" / ".tmp" / RUN / "alerts")) and outbox.run_alerts(RUN)


def test_a_run_s_alerts_reach_the_file_sink_as_its_workers_wrote_them_rendered_once(tmp_path, outbox, monkeypatch):
    """After the job, the run's alerts are owed and delivered from the text its workers sealed: the file gets that
    text byte for byte (health windows, quotes and non-ASCII included), and nothing renders an alert again."""
    import alerts.outbox
    import alerts.sinks

    odd = {
        **_alert(2),
        "user_name": "jörg",
        "evidence": [{**ALERT["evidence"][0], "line": 'GET /caf\u00e9?q=\u2603 "\\x00"'}],
        "health": {"measure": "error_rate", "value": 0.25, "window_start": ALERT["first_seen"]},
    }
    written = [_alert(1), odd]
    outbox.write_part(RUN, written)
    texts = [alerts.outbox.alert_to_json(a) for a in written]
    sink = JsonLinesSink(str(tmp_path / "alerts.jsonl"))
    with monkeypatch.context() as patch:
        for module in (alerts.outbox, alerts.sinks):
            patch.setattr(module, "row_to_json_dict", lambda row: pytest.fail("rendered an alert again"))
        run_alerts = outbox.run_alerts(RUN)
        owe_alerts(outbox, [sink], run_alerts)
        outcome = deliver_with_retry(outbox, [sink], run_alerts, 10)
    assert outcome.sent == 2 and outbox.pending() == []
    assert (tmp_path / "alerts.jsonl").read_text(encoding="utf-8") == "".join(t + "\n" for t in texts)
    # what makes the saved rendering safe: reading an alert back and rendering it gives the same text
    assert [alerts.sinks.alert_json(alerts.outbox.alert_from_json(t)) for t in texts] == texts


def test_delivery_ends_when_its_sinks_are_done_not_a_queue_poll_later(monkeypatch):
    """Every batch run waits for its delivery: a sink thread idle on its empty queue ends at once."""
    import alerts.sinks.delivery

    monkeypatch.setattr(alerts.sinks.delivery, "_POLL_SECONDS", 30.0)
    sink = _Counting()
    delivery = Delivery([sink], 60)
    delivery.submit(_alert(1))
    while not sink.sent:
        time.sleep(0.01)
    started = time.monotonic()
    report = delivery.finish()
    assert report.delivered == {sink.name: ["id-0001"]} and time.monotonic() - started < 10


class _Counting:
    name, internal = "counting", True

    def __init__(self):
        self.sent = []

    def send(self, alert):
        self.sent.append(alert["alert_id"])

    def close(self):
        pass


def test_a_bundle_s_many_alerts_are_sealed_in_parts_of_bounded_size_and_read_back_each_once(
    tmp_path, outbox, monkeypatch
):
    """A batch job's alerts leave its workers sealed in parts of about ``PART_TEXT_BYTES``, not one part a bundle:
    sealing one part copies its text a few times, and the 5M-line bench's single 9.5 MB part was the job's peak."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline

    import pipelines.detect
    from alerts.outbox import alert_to_json
    from pipelines.detect import WriteAlertParts

    monkeypatch.setattr(pipelines.detect, "PART_TEXT_BYTES", 4096)
    written = [_alert(n) for n in range(60)]
    sizes = [len(alert_to_json(a)) + 1 for a in written]
    with TestPipeline() as p:
        _ = p | beam.Create(written, reshuffle=False) | WriteAlertParts(outbox, RUN)
    parts = list((tmp_path / "out" / ".tmp" / RUN / "alerts").iterdir())
    # each part is sealed once its text reaches 4096 bytes, so it holds at most 4096 + one alert's text
    assert len(parts) >= sum(sizes) // (4096 + max(sizes)) > 1
    back = outbox.run_alerts(RUN)
    assert sorted(a["alert_id"] for a in back) == sorted(a["alert_id"] for a in written)


def test_an_outbox_remembers_delivery_tokens_but_not_without_bound(monkeypatch, tmp_path, outbox):
    """A batch run asks for each alert's token up to four times: worked out once.  A stream's outbox asks for
    every alert it ever delivers: what it remembers stays bounded, and a token is the same however it was got."""
    import alerts.outbox

    first = {f"alert-{i}": outbox.id_token(f"alert-{i}") for i in range(10)}
    assert len(set(first.values())) == 10
    same_key = Outbox.with_key(str(tmp_path / "out"), load_outbox_key(tmp_path / "outbox.key", environ={}))
    assert all(same_key.id_token(i) == token for i, token in first.items())  # a later run records the same tokens
    monkeypatch.setattr(alerts.outbox, "TOKENS_KEPT", 4)
    for i in range(50):
        outbox.id_token(f"later-{i}")
    assert len(outbox._tokens) <= 4
    assert all(outbox.id_token(i) == token for i, token in first.items())
