"""Routing: a sink that takes only some alerts, by category and severity.

Security alerts and service-health alerts come from the same rules engine but
go to different people: ``kinds: [health]`` on the syslog sink and ``kinds:
[security]`` on the webhook send each team its own; ``categories`` and
``min_severity`` narrow further.  (Kinds, because a few security rules, request
floods, are in category ``availability`` too.)  An alert a sink does not take
counts as delivered to it: nothing is owed, nothing retried.
"""

from __future__ import annotations

from typing import Any

from alerts.sinks.delivery import takes_deadline

SEVERITIES = ("info", "low", "medium", "high", "critical")
KINDS = ("health", "security")


class RoutedSink:
    """``inner``, for the alerts of the given kinds and categories (empty: all) at or above ``min_severity``."""

    def __init__(self, inner, categories: tuple[str, ...] = (), min_severity: str = "info", kinds: tuple = ()):
        self.inner = inner
        self.name = inner.name
        self.internal = inner.internal
        self.categories = frozenset(categories)
        self.kinds = frozenset(kinds)
        self.min_rank = SEVERITIES.index(min_severity)
        self._takes_deadline = takes_deadline(inner)
        if hasattr(inner, "in_flight_seconds"):
            self.in_flight_seconds = inner.in_flight_seconds

    def takes(self, alert: dict[str, Any]) -> bool:
        if self.kinds and ("health" if alert.get("health") else "security") not in self.kinds:
            return False
        if self.categories and alert.get("category") not in self.categories:
            return False
        severity = alert.get("severity")
        return severity not in SEVERITIES or SEVERITIES.index(severity) >= self.min_rank

    def send(self, alert: dict[str, Any], deadline: float | None = None) -> None:
        if self.takes(alert):
            if self._takes_deadline:
                self.inner.send(alert, deadline=deadline)
            else:
                self.inner.send(alert)

    def close(self) -> None:
        self.inner.close()


def routed(sink, config) -> Any:
    """``sink`` behind the ``kinds`` / ``categories`` / ``min_severity`` of its config section, if they narrow it."""
    categories = tuple(getattr(config, "categories", ()) or ())
    kinds = tuple(getattr(config, "kinds", ()) or ())
    min_severity = getattr(config, "min_severity", "info") or "info"
    if not categories and not kinds and min_severity == "info":
        return sink
    return RoutedSink(sink, categories, min_severity, kinds)
