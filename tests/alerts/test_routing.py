"""Routing by category and severity: ops get the health alerts on their syslog, security keeps its own."""

from __future__ import annotations

import socket

import pytest

from alerts.sinks import build_sinks, shared_view
from alerts.sinks.delivery import Delivery
from schemas.config import ConfigErrors, parse_config
from tests.alerts.test_health import RATIO, rules_of, run, traffic


def test_a_syslog_for_ops_takes_the_health_alerts_and_nothing_else(tmp_path):
    alerts = run(rules_of(tmp_path, RATIO), traffic(wave=("b.example", 5400, 6000)))
    security = {**alerts[0], "alert_id": "x" * 32, "rule_id": "http-sqli", "category": "injection", "health": None}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        syslog = {"host": "127.0.0.1", "port": port, "facility": 3, "kinds": ["health"]}
        config = parse_config({"alerts": {"sinks": {"syslog": syslog}}}).alerts.sinks
        delivery = Delivery(build_sinks(config), 5, view=lambda a, s: a if s.internal else shared_view(a, "k"))
        for alert in [security, *alerts]:
            delivery.submit(alert)
        report = delivery.finish()
        received = []
        try:
            while True:
                received.append(listener.recv(65535))
        except TimeoutError:
            pass
    assert not report.failed
    assert len(received) == 2 and all(b"t-5xx" in m for m in received)  # the episode: fired, then resolved
    assert not any(b"http-sqli" in m for m in received)


def test_a_minimum_severity_and_a_bad_one_in_the_config():
    config = parse_config({"alerts": {"sinks": {"webhook": {"url": "http://127.0.0.1:9/", "min_severity": "high"}}}})
    (sink,) = build_sinks(config.alerts.sinks)
    assert sink.takes({"severity": "critical"}) and not sink.takes({"severity": "medium"})
    with pytest.raises(ConfigErrors, match="min_severity"):
        parse_config({"alerts": {"sinks": {"syslog": {"host": "x", "min_severity": "urgent"}}}})
    with pytest.raises(ConfigErrors, match="kinds"):
        parse_config({"alerts": {"sinks": {"syslog": {"host": "x", "kinds": ["ops"]}}}})
    config = parse_config({"alerts": {"sinks": {"webhook": {"url": "http://127.0.0.1:9/", "categories": ["bot"]}}}})
    (sink,) = build_sinks(config.alerts.sinks)
    assert sink.takes({"severity": "low", "category": "bot"}) and not sink.takes({"category": "exploit"})
