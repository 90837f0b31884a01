"""Delivering alerts to sinks without ever holding up the job.

Each sink gets its own thread and a bounded queue.  A sink that fails once (a refused
connection, a receiver that never answers) is taken as down for the rest of the run:
its remaining alerts are not tried one timeout after another but marked undelivered
at once, so a dead endpoint costs at most its own timeout.  ``finish`` waits at most
until the total deadline; whatever a sink has not confirmed by then counts as
undelivered (the caller keeps it, encrypted, for the next run).  A thread still
stuck in a socket call at the deadline is abandoned (it is a daemon thread).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from alerts.sinks import DeliveryError, Sink

_LOG = logging.getLogger("logwarden")
_POLL_SECONDS = 0.05


@dataclasses.dataclass
class DeliveryReport:
    """Per sink: ids of the alerts it confirmed, ids it did not get, and why."""

    delivered: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    undelivered: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.undelivered.items() if ids}

    @property
    def undelivered_ids(self) -> set[str]:
        return {i for ids in self.undelivered.values() for i in ids}


class _SinkWorker(threading.Thread):
    def __init__(self, sink: Sink, queue_size: int, on_delivered: Callable[[str, str], None] | None = None):
        super().__init__(name=f"logwarden-sink-{sink.name}", daemon=True)
        self.sink = sink
        self.on_delivered = on_delivered
        self.queue: queue.Queue = queue.Queue(queue_size)
        self.delivered: list[str] = []
        self.undelivered: list[str] = []
        self.error: str | None = None
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self.busy: str | None = None

    def run(self) -> None:
        while True:
            try:
                alert_id, payload = self.queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if self.closing.is_set():
                    return
                continue
            if self.error is not None:
                self.give_up(alert_id)
                continue
            self.busy = alert_id
            try:
                self.sink.send(payload)
            except DeliveryError as problem:
                self._down(alert_id, str(problem))
            except Exception as problem:  # a sink bug must not kill delivery to the others
                self._down(alert_id, f"{type(problem).__name__}: {problem}")
            else:
                with self._lock:
                    if self.busy is not None:
                        self.delivered.append(alert_id)
                        if self.on_delivered is not None:
                            self.on_delivered(self.sink.name, alert_id)
            self.busy = None

    def _down(self, alert_id: str, problem: str) -> None:
        self.error = problem
        _LOG.warning("alert sink %s is down for this run: %s", self.sink.name, problem)
        self.give_up(alert_id)

    def give_up(self, alert_id: str) -> None:
        with self._lock:
            self.undelivered.append(alert_id)

    def abandon(self) -> None:
        """The deadline passed: what is queued or in flight is undelivered (a late success is not counted)."""
        with self._lock:
            if self.busy is not None:
                self.undelivered.append(self.busy)
                self.busy = None
            while True:
                try:
                    alert_id, _ = self.queue.get_nowait()
                except queue.Empty:
                    break
                self.undelivered.append(alert_id)
            if self.error is None:
                self.error = "did not finish before the delivery deadline"


class Delivery:
    """Alerts to several sinks, each from its own bounded queue and thread, within one total deadline."""

    def __init__(
        self,
        sinks: list[Sink],
        deadline_seconds: float = 60,
        queue_size: int = 10_000,
        view: Callable[[dict[str, Any], Sink], dict[str, Any]] | None = None,
        on_delivered: Callable[[str, str], None] | None = None,
    ):
        """``on_delivered(sink name, alert id)`` is called on the sink's thread the moment a sink confirms."""
        self._deadline = time.monotonic() + deadline_seconds
        self._view = view or (lambda alert, sink: alert)
        self._workers = {sink.name: _SinkWorker(sink, queue_size, on_delivered) for sink in sinks}
        for worker in self._workers.values():
            worker.start()

    @property
    def sink_names(self) -> list[str]:
        return list(self._workers)

    def submit(self, alert: dict[str, Any], sink_names: set[str] | None = None, wait: bool = True) -> None:
        """Queue ``alert`` for every sink (or those named); with ``wait`` False a full queue drops it to undelivered."""
        for name, worker in self._workers.items():
            if sink_names is not None and name not in sink_names:
                continue
            item = (alert["alert_id"], self._view(alert, worker.sink))
            try:
                if wait:
                    worker.queue.put(item, timeout=max(0.0, self._deadline - time.monotonic()))
                else:
                    worker.queue.put_nowait(item)
            except queue.Full:
                worker.give_up(alert["alert_id"])

    def take_confirmed(self) -> dict[str, list[str]]:
        """Ids each sink confirmed since the last call (a long-lived delivery records them as they come)."""
        taken = {}
        for name, worker in self._workers.items():
            with worker._lock:
                taken[name], worker.delivered = worker.delivered, []
        return taken

    def down(self) -> dict[str, str]:
        """Sinks taken as down, and why: their queued alerts are given up until a new ``Delivery`` tries again."""
        return {name: worker.error for name, worker in self._workers.items() if worker.error is not None}

    def finish(self, wait_seconds: float | None = None) -> DeliveryReport:
        """Wait for the queues to drain, at most until the deadline (or ``wait_seconds`` from now), then report."""
        report = DeliveryReport()
        deadline = self._deadline if wait_seconds is None else min(self._deadline, time.monotonic() + wait_seconds)
        for worker in self._workers.values():
            worker.closing.set()
        for name, worker in self._workers.items():
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.abandon()
            else:
                try:
                    worker.sink.close()
                except Exception as problem:  # closing is best effort
                    _LOG.warning("closing alert sink %s: %s", name, problem)
            report.delivered[name] = list(worker.delivered)
            report.undelivered[name] = list(worker.undelivered)
            if worker.undelivered and worker.error:
                report.errors[name] = worker.error
        return report
