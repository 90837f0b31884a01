"""The alerts an archive holds, read for search (``--rule``) and for subject requests.

Alerts are the JSON-lines files batch runs publish under ``<archive>/alerts/``
(one per run).  ``rule_windows`` turns the alerts of one rule into the event
windows behind them: the alert's key (its source address, else its user) from
first to last sighting.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

from access.search import Window
from retention.layout import ALERTS_DIR


def alert_files(archive: str | Path) -> list[Path]:
    return sorted((Path(archive) / ALERTS_DIR).glob("alerts-*.jsonl"))


def read_alerts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def alerts_of_rule(archive: str | Path, rule_id: str, start: dt.date, end: dt.date) -> Iterator[dict]:
    """Alerts of ``rule_id`` whose sightings overlap the days [start, end]."""
    for path in alert_files(archive):
        for alert in read_alerts(path):
            if alert.get("rule_id") != rule_id:
                continue
            first, last = _time(alert["first_seen"]), _time(alert["last_seen"])
            if first.date() <= end and last.date() >= start:
                yield alert


def rule_windows(archive: str | Path, rule_id: str, start: dt.date, end: dt.date) -> tuple[Window, ...]:
    windows = set()
    for alert in alerts_of_rule(archive, rule_id, start, end):
        field, value = ("source_ip", alert.get("source_ip")) if alert.get("source_ip") else ("user_name", None)
        value = value or alert.get("user_name")
        if value:
            windows.add(Window(field, value, _time(alert["first_seen"]), _time(alert["last_seen"])))
    return tuple(sorted(windows, key=lambda w: (w.first_seen, w.field, w.value)))


def replace_alerts(path: Path, alerts: list[dict]) -> None:
    """Rewrite an alerts file whole or not at all (temporary file, fsync, rename, fsync the folder)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for alert in alerts:
            fh.write(json.dumps(alert, ensure_ascii=False, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
