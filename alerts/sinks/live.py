"""A stream's alert delivery: each alert to the sinks the moment it is raised, and never lost or sent twice.

A stream runs for months, so the batch approach (deliver after the run, keep what
failed for the next run) becomes, per sink:

- alerts are queued to the sink's thread at once (``Delivery``, no waiting: a slow
  sink never holds the stream up); each confirmation is recorded on the sink's
  thread the moment it comes, appended as a keyed hash of the id (``Outbox.append_delivered``: a ``kill -9``
  keeps it, a power cut may lose the last few), so a restart that raises the same
  alert again does not send it again;
- before each cut's commit point, every alert some sink has not confirmed is sealed
  in the stream's outbox (``<output>/_state/stream/outbox``, apart from batch's, so
  neither rewrites the other's records): the cut's checkpoint moves past the lines
  that raised it, but the alert stays owed and is retried;
- a sink taken as down is retried every ``RETRY_SECONDS`` (a fresh thread), with
  what it is owed;
- bounded state: after each cut the delivered-id records forget the cut's alerts
  once no sink is owed them (a committed cut's alerts are never raised again: the
  checkpoint and the ledger say their lines are done), so they hold the alerts of
  about one cut interval; at most ``MAX_OWED`` alerts are kept owed (the oldest
  beyond that are dropped with a warning).

An alert whose sink accepted it in the instant before a ``kill -9``, before the
confirmation was appended, is sent again after the restart (same
``alert_id``): delivery to a webhook or syslog is at least once, with that one
window; the JSON-lines file sink skips ids already at its end (``alerts.sinks.files``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from alerts.outbox import Outbox
from alerts.sinks import Sink, shared_view
from alerts.sinks.delivery import Delivery

_LOG = logging.getLogger("logwarden")

#: The stream's outbox folder under ``<output>/_state``.
STREAM_OUTBOX = ("stream", "outbox")
#: Seconds between two tries of a sink taken as down.
RETRY_SECONDS = 30.0
#: Alerts kept owed at most (a sink down for weeks must not grow the state without bound).
MAX_OWED = 10_000


class LiveDelivery:
    """One ``Delivery`` per sink (so one can be restarted alone), the owed alerts and the delivered-id records."""

    def __init__(
        self,
        outbox: Outbox,
        sinks: list[Sink],
        queue_size: int = 10_000,
        retry_seconds: float = RETRY_SECONDS,
        max_owed: int = MAX_OWED,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._outbox = outbox
        self._sinks = {sink.name: sink for sink in sinks}
        self._queue_size = queue_size
        self._retry_seconds = retry_seconds
        self._max_owed = max_owed
        self._clock = clock
        self._deliveries: dict[str, Delivery] = {}
        self._records = threading.Lock()  # the delivered-id files: appended by sink threads, rewritten after cuts
        self._down_since: dict[str, float] = {}
        self._delivered = {name: outbox.delivered(name) for name in self._sinks}
        #: alert id -> (alert, sinks that have not confirmed it), in the order raised.
        self._owed: dict[str, tuple[dict[str, Any], set[str]]] = {}
        #: Ids of committed cuts still owed at their commit: their records are forgotten once confirmed.
        self._committed_owed: set[str] = set()
        self.sent = 0
        self.closed = False

    @property
    def owed(self) -> int:
        return len(self._owed)

    def _view(self, alert: dict[str, Any], sink: Sink) -> dict[str, Any]:
        return alert if sink.internal else shared_view(alert, self._outbox.key_hash(alert.get("group_key")))

    def _delivery(self, name: str) -> Delivery:
        if name not in self._deliveries:
            self._deliveries[name] = Delivery(
                [self._sinks[name]], float("inf"), self._queue_size, self._view, self._record
            )
        return self._deliveries[name]

    def start(self) -> None:
        """Resend what earlier runs still owe (to sinks still configured), unless a sink confirmed it since."""
        for alert, names in self._outbox.pending():
            still = set(names) & set(self._sinks)
            if set(names) - still:
                _LOG.warning(
                    "alert %s was owed to sinks no longer configured: %s", alert["alert_id"], set(names) - still
                )
            self._owe(alert, self._unconfirmed(alert, still))

    def send(self, alerts: list[dict[str, Any]]) -> None:
        """Queue each alert for every sink that has not confirmed its id; returns at once."""
        for alert in alerts:
            self._owe(alert, self._unconfirmed(alert, set(self._sinks)))

    def _unconfirmed(self, alert: dict[str, Any], names: set[str]) -> set[str]:
        token = self._outbox.id_token(alert["alert_id"])
        return {name for name in names if token not in self._delivered[name]}

    def _owe(self, alert: dict[str, Any], names: set[str]) -> None:
        known = self._owed.get(alert["alert_id"])
        fresh = names - (known[1] if known else set())
        if not fresh:
            return
        if known:
            known[1].update(fresh)
        else:
            self._owed[alert["alert_id"]] = (alert, set(fresh))
        for name in fresh:
            if name not in self._down_since:
                self._delivery(name).submit(alert, wait=False)

    def _record(self, name: str, alert_id: str) -> None:
        """On the sink's thread, right after it confirmed: the record a restart reads (the window a ``kill -9``
        can fall into is this call)."""
        with self._records:
            self._outbox.append_delivered(name, [alert_id])

    def collect(self) -> None:
        """Record the confirmations that came in (durably, before anything else moves); retry sinks that are down."""
        for name, delivery in list(self._deliveries.items()):
            confirmed = delivery.take_confirmed().get(name, [])
            if confirmed:  # already recorded by ``_record``
                self._delivered[name].update(self._outbox.id_token(i) for i in confirmed)
                self.sent += len(confirmed)
                for alert_id in confirmed:
                    entry = self._owed.get(alert_id)
                    if entry is not None:
                        entry[1].discard(name)
                        if not entry[1]:
                            del self._owed[alert_id]
            problem = delivery.down().get(name)
            if problem is not None and name not in self._down_since:
                self._down_since[name] = self._clock()
        for name, since in list(self._down_since.items()):
            if self._clock() - since >= self._retry_seconds and not self.closed:
                self._retry(name)

    def _retry(self, name: str) -> None:
        old = self._deliveries.pop(name, None)
        if old is not None:
            old.finish(wait_seconds=0)
        del self._down_since[name]
        owed = [alert for alert, names in self._owed.values() if name in names]
        _LOG.info("alert sink %s: trying again with %d owed alert(s)", name, len(owed))
        for alert in owed:
            self._delivery(name).submit(alert, wait=False)

    def before_commit(self) -> None:
        """Before a cut's commit point: every alert not confirmed by all its sinks sealed in the outbox."""
        self.collect()
        if len(self._owed) > self._max_owed:
            dropped = list(self._owed)[: len(self._owed) - self._max_owed]
            _LOG.warning(
                "%d owed alert(s) dropped: more than %d kept for sinks that are down", len(dropped), self._max_owed
            )
            for alert_id in dropped:
                del self._owed[alert_id]
        self._outbox.set_pending([(alert, sorted(names)) for alert, names in self._owed.values()])

    def after_commit(self, committed: list[str]) -> None:
        """After a cut's commit point: the delivered-id records forget the cut's alerts (never raised again),
        except those still owed to some sink, which are forgotten at a later cut, once confirmed everywhere."""
        settled = (set(committed) | self._committed_owed) - set(self._owed)
        self._committed_owed = (set(committed) | self._committed_owed) & set(self._owed)
        for name in self._sinks:
            with self._records:
                self._outbox.forget_delivered(name, settled)
            self._delivered[name] -= {self._outbox.id_token(i) for i in settled}

    def close(self, wait_seconds: float) -> None:
        """At shutdown: wait up to ``wait_seconds`` for the queues, record what was confirmed."""
        if self.closed:
            return
        self.closed = True
        for delivery in self._deliveries.values():
            delivery.finish(wait_seconds=wait_seconds)
        self.collect()
