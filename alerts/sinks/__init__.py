"""Where alerts go: JSON-lines files, standard output, an HTTP webhook, syslog.

Every sink has ``name``, ``internal``, ``send(alert)`` and ``close()``.  A sink that
is not ``internal`` (by default the webhook and syslog, which may well be a chat,
paging or hosted service) receives only ``shared_view``: rule, severity, counts,
times, a keyed hash of the key and the id to look the alert up with
``logwarden alerts show``; never raw lines, query strings, addresses or users.
``delivery.Delivery`` sends to the sinks from their own threads within a deadline.
A sink that talks to the network also has ``in_flight_seconds`` (how long one send
may still take once begun) and takes ``send(alert, deadline=...)``: past that
``time.monotonic()`` it starts no new attempt.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from schemas.json_rows import row_to_json_dict

_LOG = logging.getLogger("logwarden")


class DeliveryError(Exception):
    """A sink could not deliver an alert (after its retries)."""


class Sink(Protocol):
    name: str
    #: True when what the sink receives stays inside the company (full alert); False: ``shared_view`` only.
    internal: bool

    def send(self, alert: dict[str, Any]) -> None: ...  # network sinks: ``send(alert, deadline=None)``

    def close(self) -> None: ...


class RenderedAlert(dict):
    """An alert with its ``alert_json`` already made (``Outbox.alert_json``): what a batch run hands its internal
    sinks, so the file sink writes the text the run's workers rendered rather than rendering 1,300 alerts again.
    The text is of these very contents: not to be changed."""

    __slots__ = ("json",)

    def __init__(self, alert: dict[str, Any], json_text: str):
        super().__init__(alert)
        self.json = json_text


def alert_json(alert: dict[str, Any]) -> str:
    """One alert as compact JSON (timestamps ISO-8601 UTC, nulls omitted)."""
    if type(alert) is RenderedAlert:
        return alert.json
    return json.dumps(row_to_json_dict(alert), ensure_ascii=False, separators=(",", ":"))


def alert_summary(alert: dict[str, Any]) -> str:
    """One human line: severity, title, who, how many, since when."""
    who = alert.get("source_ip") or alert.get("user_name") or alert.get("group_key")
    first = alert["first_seen"].strftime("%Y-%m-%d %H:%M:%S UTC")
    health = alert.get("health")
    if health:  # a service-health alert: what was measured against what, and whether it is over
        state = "RESOLVED " if health.get("status") == "resolved" else ""
        baseline = f", baseline {health['baseline']:g}" if health.get("baseline") is not None else ""
        return (
            f"{state}[{alert['severity']}] {alert['rule_title']} on {who}: {health['measure']} {health['value']:g}"
            f"{baseline} ({health['threshold']}) since {first} (rule {alert['rule_id']}, {alert['category']})"
        )
    return (
        f"[{alert['severity']}] {alert['rule_title']} from {who}: {alert['count']} event(s) since {first} "
        f"(rule {alert['rule_id']}, {alert['technique']})"
    )


#: What a sink that leaves the company gets: enough to act on and to look the alert up, nothing a client sent.
SHARED_FIELDS = (
    "alert_id",
    "rule_id",
    "rule_title",
    "severity",
    "category",
    "technique",
    "count",
    "first_seen",
    "last_seen",
    "detected_at",
)


def shared_view(alert: dict[str, Any], key_hash: str | None) -> dict[str, Any]:
    """The alert as an external sink receives it: no addresses, users, hosts, paths, evidence lines or samples;
    ``key_hash`` (a keyed hash of the alert's key) stands in for who it is about."""
    view = {name: alert.get(name) for name in SHARED_FIELDS}
    view["key_hash"] = key_hash
    if alert.get("health"):  # a health alert's measure, window, value, baseline, threshold: nothing a client sent
        view["health"] = alert["health"]
    return view


def build_sinks(config) -> list[Sink]:
    """The sinks an ``AlertSinksConfig`` asks for."""
    from alerts.sinks.files import JsonLinesSink, StdoutSink
    from alerts.sinks.routing import routed
    from alerts.sinks.syslog import SyslogSink
    from alerts.sinks.webhook import WebhookSink

    sinks: list[Sink] = []
    if config.jsonl:
        sinks.append(JsonLinesSink(config.jsonl))
    if config.stdout:
        sinks.append(StdoutSink())
    if config.webhook.url:
        w = config.webhook
        webhook = WebhookSink(w.url, w.timeout_seconds, w.retries, w.backoff_seconds, w.format, w.internal)
        sinks.append(routed(webhook, w))
    if config.syslog.host:
        s = config.syslog
        sinks.append(routed(SyslogSink(s.host, s.port, s.protocol, s.facility, s.app_name, internal=s.internal), s))
    return sinks
