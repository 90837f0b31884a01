"""One run's delivery: this run's alerts plus those earlier runs still owe, each sink sent each id once.

An alert is owed to a sink until that sink confirmed it.  What a run cannot deliver
(sink down, deadline passed) is sealed into the outbox and tried again by the next
run; ids a sink already confirmed are never sent to it again, so re-running a day
over the same logs (which reproduces the same alert ids) sends nothing twice.

On a local output each confirmation is appended to the sink's record the moment the
sink returns (``Outbox.delivered_log``, on the sink's thread), so a run killed
in the middle of delivering (``kill -9`` included) leaves the next run to send only
what was not confirmed; the one window is the instant between a receiver's answer
and that append (closed for the JSON-lines file, which skips ids already at its
end).  A remote output's records are written once delivery is over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from apache_beam.io.filesystems import FileSystems

from alerts.outbox import Outbox
from alerts.sinks import RenderedAlert, Sink, shared_view
from alerts.sinks.delivery import Delivery

_LOG = logging.getLogger("logwarden")


@dataclasses.dataclass
class DeliveryOutcome:
    sent: int = 0  # alert deliveries confirmed by a sink, this run
    retried: int = 0  # alerts owed by earlier runs that were tried again
    skipped: int = 0  # deliveries left out because the sink already had that alert id
    undelivered: int = 0  # alerts still owed to at least one sink (kept in the outbox)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)


def owe_alerts(outbox: Outbox, sinks: list[Sink], alerts: list[dict[str, Any]]) -> None:
    """Record ``alerts`` as owed to every sink that has not confirmed them, before the run that raised them
    completes: a run killed after completing, before delivering, leaves them for the next run to send."""
    names = {sink.name for sink in sinks}
    delivered = {name: outbox.delivered(name) for name in names}
    owed = {alert["alert_id"]: (alert, set(sinks_)) for alert, sinks_ in outbox.pending()}
    for alert in alerts:
        token = outbox.id_token(alert["alert_id"])
        missing = {name for name in names if token not in delivered[name]}
        if missing:
            owed.setdefault(alert["alert_id"], (alert, set()))[1].update(missing)
    outbox.set_pending([(alert, sorted(names_)) for alert, names_ in owed.values()])


@contextlib.contextmanager
def confirmed_at_once(outbox: Outbox) -> Iterator[Callable[[str, str], None] | None]:
    """For ``Delivery(on_delivered=...)``: each confirmation appended to its sink's record as it comes, through
    one open record per sink (``Outbox.delivered_log``), closed on leaving; a remote output's records are
    rewritten whole after delivery (``None`` here)."""
    if FileSystems.get_scheme(outbox.root) is not None:
        yield None
        return
    lock = threading.Lock()
    logs: dict[str, TextIO] = {}
    closed = False

    def record(sink_name: str, alert_id: str) -> None:
        with lock:
            if closed:  # a send that outlived the delivery (never counted): recorded all the same
                outbox.append_delivered(sink_name, [alert_id])
                return
            log = logs.get(sink_name)
            if log is None:
                log = logs[sink_name] = outbox.delivered_log(sink_name)
            log.write(outbox.id_token(alert_id) + "\n")

    try:
        yield record
    finally:
        with lock:
            closed = True
            for log in logs.values():
                log.close()
            logs.clear()


def deliver_with_retry(
    outbox: Outbox,
    sinks: list[Sink],
    run_alerts: list[dict[str, Any]],
    deadline_seconds: float,
    queue_size: int = 10_000,
) -> DeliveryOutcome:
    """Deliver ``run_alerts`` and everything owed to ``sinks``; keep what is still owed in the outbox."""
    outcome = DeliveryOutcome()
    names = {sink.name for sink in sinks}
    wanted: dict[str, tuple[dict[str, Any], set[str]]] = {}
    delivered_before = {name: outbox.delivered(name) for name in names}
    this_run = {alert["alert_id"] for alert in run_alerts}
    for alert, owed_to in outbox.pending():
        token = outbox.id_token(alert["alert_id"])
        # a sink that confirmed it before a crash kept the pending list from being rewritten has it already
        still = {name for name in set(owed_to) & names if token not in delivered_before[name]}
        if set(owed_to) - names:
            _LOG.warning("alert %s was owed to sinks no longer configured: %s", alert["alert_id"], set(owed_to) - names)
        if still:
            wanted[alert["alert_id"]] = (alert, still)
            outcome.retried += alert["alert_id"] not in this_run
    for alert in run_alerts:
        token = outbox.id_token(alert["alert_id"])
        owed = {name for name in names if token not in delivered_before[name]}
        outcome.skipped += len(names) - len(owed)
        if alert["alert_id"] in wanted:
            wanted[alert["alert_id"]][1].update(owed)
        elif owed:
            wanted[alert["alert_id"]] = (alert, owed)
    if not wanted:
        return outcome

    def view(alert: dict[str, Any], sink: Sink) -> dict[str, Any]:
        if sink.internal:
            return RenderedAlert(alert, outbox.alert_json(alert))
        return shared_view(alert, outbox.key_hash(alert.get("group_key")))

    with confirmed_at_once(outbox) as on_delivered:
        delivery = Delivery(sinks, deadline_seconds, queue_size, view, on_delivered=on_delivered)
        for alert, owed in wanted.values():
            delivery.submit(alert, owed)
        report = delivery.finish()
    for name, ids in report.delivered.items():
        outbox.record_delivered(name, ids)
        outcome.sent += len(ids)
    confirmed = {(name, i) for name, ids in report.delivered.items() for i in ids}
    still_owed = []
    for alert_id, (alert, owed) in wanted.items():
        left = sorted(name for name in owed if (name, alert_id) not in confirmed)
        if left:
            still_owed.append((alert, left))
    outbox.set_pending(still_owed)
    outcome.undelivered = len(still_owed)
    outcome.errors = dict(report.errors)
    return outcome
