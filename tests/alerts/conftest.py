"""Helpers for detection tests: replay files or hand-built batches through the default pack."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from alerts.replay import detect_files
from alerts.rules import load_rules
from pipelines.read import open_raw

SYSLOG_PREFIX = re.compile(rb"^[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d \S+ [\w./-]+(?:\[\d+\])?: ")


@pytest.fixture(scope="session")
def default_rules():
    return load_rules()


def same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def alert_ips(alerts) -> set[str]:
    return {str(ipaddress.ip_address(a["source_ip"])) for a in alerts if a.get("source_ip")}


def strip_syslog(src: Path, dst: Path) -> Path:
    """Lines as the web server wrote them, without a syslog header (what CrowdSec's syslog-logs parser strips)."""
    dst.write_bytes(b"".join(SYSLOG_PREFIX.sub(b"", line) for line in src.read_bytes().splitlines(keepends=True)))
    return dst


def replay(rules, paths, format_spec="auto"):
    reports = []
    alerts = detect_files(rules, [str(p) for p in paths], open_raw, format_spec, reports)
    return alerts, reports
