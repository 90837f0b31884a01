"""Alert records: the ``ALERT`` row a rule firing produces, with an id that a re-run reproduces."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from alerts.rules import Rule

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(us))


def alert_id(rule_id: str, group_key: str, first_seen_us: int) -> str:
    """Same rule, key and start of the attack give the same id, so replaying a day does not duplicate alerts."""
    digest = hashlib.sha256(f"{rule_id}\x1f{group_key}\x1f{first_seen_us}".encode()).hexdigest()
    return digest[:32]


def build_alert(
    rule: Rule,
    group_key: str,
    fields: dict[str, str | None],
    first_seen_us: int,
    last_seen_us: int,
    count: int,
    distinct_sample: list[str],
    evidence: list[tuple[int, str, int, str | None]],
    detected_at: dt.datetime,
) -> dict[str, Any]:
    """One row of ``schemas.ALERT``; ``evidence`` holds ``(ts_us, path, offset, line)``."""
    return {
        "alert_id": alert_id(rule.id, group_key, first_seen_us),
        "rule_id": rule.id,
        "rule_title": rule.title,
        "severity": rule.severity,
        "category": rule.category,
        "technique": rule.technique,
        "description": rule.description,
        "source_ip": fields.get("source_ip"),
        "user_name": fields.get("user_name"),
        "url_domain": fields.get("url_domain"),
        "group_key": group_key,
        "first_seen": from_us(first_seen_us),
        "last_seen": from_us(last_seen_us),
        "count": count,
        "distinct_sample": list(distinct_sample),
        "evidence": [
            {"log_file_path": path, "log_offset": offset, "timestamp": from_us(ts), "line": line}
            for ts, path, offset, line in evidence
        ],
        "detected_at": detected_at,
    }


def alert_sort_key(alert: dict[str, Any]) -> tuple:
    return (alert["first_seen"], alert["rule_id"], alert["group_key"])
