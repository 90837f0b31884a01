"""The alerts an archive holds, read for search (``--rule``) and for subject requests.

Alerts live in the encrypted ``alerts`` dataset (``<archive>/alerts/dt=<day>/``,
read with the role's keys like events); archives written before that also hold
plaintext JSON-lines files ``<archive>/alerts/alerts-<run>.jsonl``, which are
read (and, by subject requests, rewritten) too.  ``rule_windows`` turns the
alerts of one rule into the event windows behind them: the alert's key (its
source address, else its user) from first to last sighting.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from retention.access.catalog import published_files
from retention.access.search import Window
from retention.encryption import ArchiveDecryptor
from retention.keyring import ArchiveKeys
from retention.layout import ALERTS_DIR


def alert_files(archive: str | Path) -> list[Path]:
    """The plaintext JSON-lines alert files of an archive written before alerts were encrypted."""
    return sorted((Path(archive) / ALERTS_DIR).glob("alerts-*.jsonl"))


def read_alerts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _archived_alerts(archive: str | Path, keys: ArchiveKeys, rule_id: str) -> Iterator[dict]:
    """Alerts of ``rule_id`` in the encrypted alerts dataset (only their key and time columns are decrypted)."""
    decryptor = ArchiveDecryptor(keys)
    columns = ["rule_id", "source_ip", "user_name", "first_seen", "last_seen"]
    for file in published_files(archive, ALERTS_DIR, tier="all", destroyed=set(keys.keyring.destroyed())):
        table = pq.ParquetFile(file.path, decryption_properties=decryptor.file_properties()).read(columns=columns)
        for alert in table.filter(pc.equal(table.column("rule_id"), rule_id)).to_pylist():
            yield {**alert, "first_seen": alert["first_seen"].isoformat(), "last_seen": alert["last_seen"].isoformat()}


def alerts_of_rule(
    archive: str | Path, rule_id: str, start: dt.date, end: dt.date, keys: ArchiveKeys | None = None
) -> Iterator[dict]:
    """Alerts of ``rule_id`` whose sightings overlap the days [start, end]."""
    legacy = (alert for path in alert_files(archive) for alert in read_alerts(path))
    archived = _archived_alerts(archive, keys, rule_id) if keys is not None else iter(())
    for alert in itertools.chain(archived, legacy):
        if alert.get("rule_id") != rule_id:
            continue
        first, last = _time(alert["first_seen"]), _time(alert["last_seen"])
        if first.date() <= end and last.date() >= start:
            yield alert


def rule_windows(
    archive: str | Path, rule_id: str, start: dt.date, end: dt.date, keys: ArchiveKeys | None = None
) -> tuple[Window, ...]:
    windows = set()
    for alert in alerts_of_rule(archive, rule_id, start, end, keys):
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
