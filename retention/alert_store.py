"""Alerts at rest: the archive's ``alerts`` dataset, encrypted like events under the keys of their month.

An alert quotes what a client sent (addresses, users, query strings, evidence lines),
so it is kept only in the encrypted archive, partitioned by the day of its
``first_seen``: destroying a month's keys shreds that month's alerts with its events.
The security team reads them with ``logwarden alerts list|show`` (reader role) and
receives them through sinks; a plaintext copy exists only where the configuration
names a JSON-lines sink.  A run's alerts are written by the process that drives the
job, once the job is done (they are few, and come from event-time timers that a
group-by cannot follow on the local runner); the stream stages them with each cut
(``stage_alerts``) and commits them in the cut's transaction.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from retention import commit, layout
from retention.encryption import ArchiveEncryptor
from retention.keyring import ArchiveKeys, WriterKeys
from retention.parquet_files import ParquetFileWriter, WrittenFile
from retention.signing import Signer
from schemas import ALERT
from schemas.config import ArchiveConfig


def _day(alert: dict[str, Any]) -> str:
    return alert["first_seen"].astimezone(dt.timezone.utc).strftime(layout.DAY_FORMAT)


def stage_alerts(
    output: str, run_id: str, alerts: Iterable[dict[str, Any]], keys: WriterKeys, config: ArchiveConfig
) -> list[tuple[str, WrittenFile]]:
    """Alerts as complete encrypted files in the run's staging folder, one per day, to commit as ``(day, file)``."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_day.setdefault(_day(alert), []).append(alert)
    encryptor = ArchiveEncryptor(keys)
    staged = []
    for day, rows in sorted(by_day.items()):
        writer = ParquetFileWriter(
            commit.staging_path(output, run_id),
            ALERT,
            commit.create,
            encryption=encryptor.for_day(ALERT, day),
            compression=config.compression,
        )
        writer.write(pa.RecordBatch.from_pylist(rows, schema=ALERT))
        staged.append((day, writer.close()))
    return staged


def write_alerts(
    output: str,
    run_id: str,
    alerts: Iterable[dict[str, Any]],
    keys: WriterKeys,
    config: ArchiveConfig,
    signer: Signer | None = None,
) -> int:
    """Commit a run's alerts to ``<output>/alerts/dt=<day>/`` (encrypted, one file per day, signed by ``signer``)."""
    staged = stage_alerts(output, run_id, alerts, keys, config)
    for day, written in staged:
        commit.commit(output, layout.ALERTS_DIR, day, run_id, [written], signer=signer)
    return sum(written.rows for _, written in staged)


def read_alerts(root: str | os.PathLike, keys: ArchiveKeys, alert_id: str | None = None) -> list[dict[str, Any]]:
    """The archive's alerts (those of shredded months excluded), oldest first; one id's only if given."""
    from retention.archive_reader import ArchiveReadError, open_archive  # readers only: pyarrow.dataset, ~15 MiB

    try:
        dataset = open_archive(root, keys, layout.ALERTS_DIR)
    except ArchiveReadError:
        if not os.path.isdir(os.path.join(root, layout.ALERTS_DIR)):
            return []  # no run has raised an alert yet
        raise
    table = dataset.to_table(filter=pc.field("alert_id") == alert_id if alert_id else None)
    rows = table.drop_columns([c for c in table.column_names if c not in ALERT.names]).to_pylist()
    # A rerun over the same logs raises the same alert ids again: each alert is shown once.
    unique = {row["alert_id"]: row for row in sorted(rows, key=lambda a: a["detected_at"], reverse=True)}
    return sorted(unique.values(), key=lambda a: (a["first_seen"], a["rule_id"], a["group_key"] or ""))
