"""The stream's alert delivery: what a sink did not confirm survives a restart sealed, each id reaches a sink once."""

from __future__ import annotations

import datetime as dt
import threading
import time

from alerts.outbox import Outbox
from alerts.sinks import DeliveryError
from alerts.sinks.live import STREAM_OUTBOX, LiveDelivery
from retention import sealing

T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.timezone.utc)


class RecordingSink:
    """Counts what it received; while ``down`` it refuses, like a webhook whose receiver is gone."""

    def __init__(self, name: str, internal: bool = True):
        self.name, self.internal = name, internal
        self.received: list[dict] = []
        self.down = threading.Event()

    def send(self, alert):
        if self.down.is_set():
            raise DeliveryError("connection refused")
        self.received.append(alert)

    def close(self):
        pass


def alert(n: int) -> dict:
    return {"alert_id": f"id-{n:04d}", "rule_id": "http-sqli", "source_ip": f"192.0.2.{n % 250}",
            "group_key": f"192.0.2.{n % 250}", "first_seen": T0, "last_seen": T0, "count": 1,
            "severity": "high", "detected_at": T0}  # fmt: skip


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)
    return condition()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_an_alert_a_sink_refused_is_sealed_retried_and_reaches_each_sink_once_across_a_restart(tmp_path):
    key = sealing.new_private_key()
    outbox = Outbox.with_key(str(tmp_path), key, STREAM_OUTBOX)
    up, flaky, clock = RecordingSink("jsonl"), RecordingSink("webhook", internal=False), Clock()
    flaky.down.set()
    live = LiveDelivery(outbox, [up, flaky], retry_seconds=30, clock=clock)
    live.start()
    live.send([alert(1), alert(2)])
    assert wait_until(lambda: len(up.received) == 2)
    assert wait_until(lambda: (live.collect(), live.owed == 2)[1])  # confirmed by jsonl, owed to the webhook
    live.before_commit()
    pending = Outbox.with_key(str(tmp_path), key, STREAM_OUTBOX).pending()
    assert sorted((a["alert_id"], names) for a, names in pending) == [
        ("id-0001", ["webhook"]),
        ("id-0002", ["webhook"]),
    ]
    assert b"192.0.2" not in (tmp_path / "_state" / "stream" / "outbox" / "pending.bin").read_bytes(), "sealed"
    live.after_commit(["id-0001", "id-0002"])
    live.close(0)

    # A restart (kill -9 after the cut): the same alert raised again and the owed ones come back.
    flaky.down.clear()
    again = LiveDelivery(Outbox.with_key(str(tmp_path), key, STREAM_OUTBOX), [up, flaky], clock=clock)
    again.start()
    again.send([alert(2), alert(3)])
    assert wait_until(lambda: len(flaky.received) == 3 and len(up.received) == 3)
    again.close(1)
    assert sorted(a["alert_id"] for a in up.received) == ["id-0001", "id-0002", "id-0003"]
    assert sorted(a["alert_id"] for a in flaky.received) == ["id-0001", "id-0002", "id-0003"]
    assert all("source_ip" not in a for a in flaky.received), "an external sink gets the shared view only"
    assert again.owed == 0


def test_a_sink_down_is_tried_again_after_the_retry_interval_with_what_it_is_owed(tmp_path):
    outbox = Outbox.with_key(str(tmp_path), sealing.new_private_key(), STREAM_OUTBOX)
    sink, clock = RecordingSink("webhook"), Clock()
    sink.down.set()
    live = LiveDelivery(outbox, [sink], retry_seconds=30, clock=clock)
    live.send([alert(1)])
    assert wait_until(lambda: (live.collect(), "webhook" in live._down_since)[1])
    sink.down.clear()
    live.send([alert(2)])  # queued nowhere while the sink is down: owed
    clock.now = 10
    live.collect()
    time.sleep(0.2)
    assert sink.received == []
    clock.now = 31
    live.collect()
    assert wait_until(lambda: len(sink.received) == 2)
    assert wait_until(lambda: (live.collect(), live.owed == 0)[1])
    live.close(0)


def test_state_stays_bounded_delivered_ids_pruned_after_a_cut_owed_alerts_capped(tmp_path):
    outbox = Outbox.with_key(str(tmp_path), sealing.new_private_key(), STREAM_OUTBOX)
    sink, dead = RecordingSink("jsonl"), RecordingSink("webhook")
    dead.down.set()
    live = LiveDelivery(outbox, [sink, dead], max_owed=50)
    live.send([alert(n) for n in range(200)])
    assert wait_until(lambda: len(sink.received) == 200)
    assert wait_until(lambda: (live.collect(), len(outbox.delivered("jsonl")) == 200)[1])
    live.before_commit()
    assert len(outbox.pending()) == 50, "only the newest 50 kept owed"
    live.after_commit([f"id-{n:04d}" for n in range(200)])
    assert len(outbox.delivered("jsonl")) == 50, "ids of committed cuts dropped, those still owed elsewhere kept"
    live.close(0)
