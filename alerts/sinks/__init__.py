"""Where alerts go: JSON-lines files, standard output, an HTTP webhook, syslog.

Every sink has ``send(alert)`` and ``close()``.  ``Deliverer`` sends each alert
to every configured sink and records failures instead of raising them, so a
dead receiver is reported in the run summary but never stops detection.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Protocol

from schemas.json_rows import row_to_json_dict

_LOG = logging.getLogger("logwarden")


class DeliveryError(Exception):
    """A sink could not deliver an alert (after its retries)."""


class Sink(Protocol):
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def alert_json(alert: dict[str, Any]) -> str:
    """One alert as compact JSON (timestamps ISO-8601 UTC, nulls omitted)."""
    return json.dumps(row_to_json_dict(alert), ensure_ascii=False, separators=(",", ":"))


def alert_summary(alert: dict[str, Any]) -> str:
    """One human line: severity, title, who, how many, since when."""
    who = alert.get("source_ip") or alert.get("user_name") or alert.get("group_key")
    first = alert["first_seen"].strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"[{alert['severity']}] {alert['rule_title']} from {who}: {alert['count']} event(s) since {first} "
        f"(rule {alert['rule_id']}, {alert['technique']})"
    )


@dataclasses.dataclass
class DeliveryReport:
    delivered: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[str, int] = dataclasses.field(default_factory=dict)
    last_error: dict[str, str] = dataclasses.field(default_factory=dict)


class Deliverer:
    """Sends alerts to several sinks; one failing sink neither blocks nor silences the others."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks
        self.report = DeliveryReport()

    def send(self, alert: dict[str, Any]) -> bool:
        ok = True
        for sink in self.sinks:
            try:
                sink.send(alert)
            except DeliveryError as problem:
                ok = False
                self.report.failed[sink.name] = self.report.failed.get(sink.name, 0) + 1
                self.report.last_error[sink.name] = str(problem)
                _LOG.warning("alert %s not delivered to %s: %s", alert["alert_id"], sink.name, problem)
            else:
                self.report.delivered[sink.name] = self.report.delivered.get(sink.name, 0) + 1
        return ok

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def build_sinks(config) -> list[Sink]:
    """The sinks an ``AlertSinksConfig`` asks for."""
    from alerts.sinks.files import JsonLinesSink, StdoutSink
    from alerts.sinks.syslog import SyslogSink
    from alerts.sinks.webhook import WebhookSink

    sinks: list[Sink] = []
    if config.jsonl:
        sinks.append(JsonLinesSink(config.jsonl))
    if config.stdout:
        sinks.append(StdoutSink())
    if config.webhook.url:
        w = config.webhook
        sinks.append(WebhookSink(w.url, w.timeout_seconds, w.retries, w.backoff_seconds, w.format))
    if config.syslog.host:
        s = config.syslog
        sinks.append(SyslogSink(s.host, s.port, s.protocol, s.facility, s.app_name))
    return sinks
