"""Delivering alerts to sinks without ever holding up the job, and without sending an alert twice.

Each sink gets its own thread and a bounded queue.  A sink that fails once (a refused
connection, a receiver that never answers) is taken as down for the rest of the run:
its remaining alerts are not tried one timeout after another but marked undelivered
at once, so a dead endpoint costs at most its own timeout.

At the total deadline no sink is handed another alert, and a sink starts no new
attempt (no retry, no backoff) for the one it is sending; that request, already in
flight, is let finish within its own timeout, and if the receiver confirms it, the
confirmation counts.  (Abandoning it instead would count as undelivered an alert the
receiver then gets anyway, and the next run would send it again.)  The wait past the
deadline is bounded by the sink's ``in_flight_seconds`` (the webhook: twice its
timeout, to connect and to hear the answer, plus a second).  A send still not done
then is abandoned (its daemon thread left behind) and its alert counted undelivered:
only then, for a receiver that answers slower than that yet does accept the alert,
can the retry on the next run reach it twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from alerts.sinks import DeliveryError, Sink

_LOG = logging.getLogger("logwarden")
_POLL_SECONDS = 0.05
#: How long a send in flight at the deadline may still take, for a sink that does not say (a local file, stdout).
DEFAULT_IN_FLIGHT_SECONDS = 10.0
DEADLINE_PASSED = "did not finish before the delivery deadline"
#: What ``Delivery.finish`` queues so that a worker waiting on its empty queue ends at once, not a poll later
#: (50 ms after every batch run's delivery).
_WAKE = None


def in_flight_seconds(sink: Sink) -> float:
    """How long ``sink`` may take, past the deadline, to finish the one send it has in flight."""
    return float(getattr(sink, "in_flight_seconds", DEFAULT_IN_FLIGHT_SECONDS))


def takes_deadline(sink: Sink) -> bool:
    """Whether ``sink.send`` accepts ``deadline=`` (a monotonic time past which it starts no new attempt)."""
    try:
        return "deadline" in inspect.signature(sink.send).parameters
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass
class DeliveryReport:
    """Per sink: ids of the alerts it confirmed, ids it did not get, and why."""

    delivered: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    undelivered: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Sinks whose send was still in flight when their bound past the deadline ran out (thread left behind).
    abandoned: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.undelivered.items() if ids}

    @property
    def undelivered_ids(self) -> set[str]:
        return {i for ids in self.undelivered.values() for i in ids}


class _SinkWorker(threading.Thread):
    def __init__(
        self,
        sink: Sink,
        queue_size: int,
        deadline: float,
        on_delivered: Callable[[str, str], None] | None = None,
    ):
        super().__init__(name=f"logwarden-sink-{sink.name}", daemon=True)
        self.sink = sink
        self.on_delivered = on_delivered
        self.queue: queue.Queue = queue.Queue(queue_size)
        self.deadline = deadline
        self.in_flight_seconds = in_flight_seconds(sink)
        self._takes_deadline = takes_deadline(sink)
        self.delivered: list[str] = []
        self.undelivered: list[str] = []
        self.error: str | None = None
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self.busy: str | None = None
        self.stopped = False  # the deadline passed: nothing more is handed to the sink
        self.abandoned = False

    def run(self) -> None:
        while True:
            closing = self.closing.is_set()
            try:
                item = self.queue.get_nowait() if closing else self.queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if closing:
                    return
                continue
            if item is _WAKE:
                continue
            alert_id, payload = item
            with self._lock:
                if self.stopped or time.monotonic() >= self.deadline:
                    self.stopped = True
                    self.error = self.error or DEADLINE_PASSED
                    self.undelivered.append(alert_id)
                    continue
                if self.error is not None:  # down for this run
                    self.undelivered.append(alert_id)
                    continue
                self.busy = alert_id
            try:
                if self._takes_deadline:
                    self.sink.send(payload, deadline=self.deadline)
                else:
                    self.sink.send(payload)
            except DeliveryError as problem:
                self._settle(alert_id, str(problem))
            except Exception as problem:  # a sink bug must not kill delivery to the others
                self._settle(alert_id, f"{type(problem).__name__}: {problem}")
            else:
                self._settle(alert_id, None)

    def _settle(self, alert_id: str, problem: str | None) -> None:
        """The sink returned: a confirmation counts even past the deadline, unless the send was abandoned."""
        with self._lock:
            if self.busy != alert_id:  # abandoned: already counted undelivered, the report is out
                return
            self.busy = None
            if problem is None:
                self.delivered.append(alert_id)
                if self.on_delivered is not None:
                    self.on_delivered(self.sink.name, alert_id)
                return
            self.undelivered.append(alert_id)
            if not self.stopped:
                _LOG.warning("alert sink %s is down for this run: %s", self.sink.name, problem)
            self.error = problem

    def give_up(self, alert_id: str) -> None:
        with self._lock:
            self.undelivered.append(alert_id)

    def stop(self) -> None:
        """The deadline passed: what is queued is undelivered; the send in flight may still finish."""
        with self._lock:
            self.stopped = True
            drained = 0
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _WAKE:
                    continue
                self.undelivered.append(item[0])
                drained += 1
            if self.error is None and (drained or self.busy is not None):
                self.error = DEADLINE_PASSED

    def abandon(self) -> None:
        """The send in flight outlived its bound past the deadline: it counts as undelivered, even if it lands."""
        with self._lock:
            self.abandoned = True
            if self.busy is not None:
                self.undelivered.append(self.busy)
                self.busy = None
                self.error = (
                    f"{DEADLINE_PASSED}; a send still in flight {self.in_flight_seconds:g}s after it was abandoned"
                )


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
        self._workers = {sink.name: _SinkWorker(sink, queue_size, self._deadline, on_delivered) for sink in sinks}
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
        """Wait for the queues to drain, at most until the deadline (or ``wait_seconds`` from now); then hand out
        nothing more, let each send in flight finish within its sink's ``in_flight_seconds``, and report."""
        report = DeliveryReport()
        deadline = self._deadline if wait_seconds is None else min(self._deadline, time.monotonic() + wait_seconds)
        for worker in self._workers.values():
            worker.closing.set()
            with contextlib.suppress(queue.Full):  # a full queue's worker is not waiting: it sees ``closing`` next
                worker.queue.put_nowait(_WAKE)
        for worker in self._workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))
        stopped_at = time.monotonic()
        late = [worker for worker in self._workers.values() if worker.is_alive()]
        for worker in late:
            worker.stop()
        for worker in late:
            worker.join(max(0.0, stopped_at + worker.in_flight_seconds - time.monotonic()))
        for name, worker in self._workers.items():
            if worker.is_alive():
                worker.abandon()
                report.abandoned.append(name)
                _LOG.warning(
                    "alert sink %s: a send was still in flight %gs after the delivery deadline; left behind",
                    name,
                    worker.in_flight_seconds,
                )
            else:
                try:
                    worker.sink.close()
                except Exception as problem:  # closing is best effort
                    _LOG.warning("closing alert sink %s: %s", name, problem)
            with worker._lock:
                report.delivered[name] = list(worker.delivered)
                report.undelivered[name] = list(worker.undelivered)
                if worker.undelivered and worker.error:
                    report.errors[name] = worker.error
        return report
