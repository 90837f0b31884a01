"""Evidence lines: a readable log line rebuilt from an event's fields, for the few rows an alert shows.

The archive keeps the parsed fields, not the raw bytes, so an alert quotes the
line in combined-log (access) or error-log shape; ``log_file_path`` and
``log_offset`` point at the original bytes for anyone who needs them exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa


def _dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _clf_time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000") if value else "-"


def access_line(row: dict[str, Any]) -> str:
    request = row.get("http_request_line")
    if request is None and row.get("url_original") is not None:
        request = " ".join(_dash(row.get(k)) for k in ("http_request_method", "url_original", "http_version"))
    host = f"{row['url_domain']} " if row.get("url_domain") else ""
    return (
        f"{host}{_dash(row.get('source_address') or row.get('source_ip'))} - {_dash(row.get('user_name'))} "
        f'[{_clf_time(row.get("timestamp"))}] "{request or ""}" {_dash(row.get("http_response_status_code"))} '
        f'{_dash(row.get("http_response_body_bytes"))} "{_dash(row.get("http_request_referrer"))}" '
        f'"{_dash(row.get("user_agent_original"))}"'
    )


def error_line(row: dict[str, Any]) -> str:
    when = row.get("timestamp")
    stamp = when.astimezone(dt.timezone.utc).strftime("%a %b %d %H:%M:%S.%f %Y") if when else "-"
    level = ":".join(_dash(v) for v in (row.get("log_logger"), row.get("log_level")) if v)
    client = f" [client {row['source_ip']}]" if row.get("source_ip") else ""
    code = f" {row['error_code']}:" if row.get("error_code") else ""
    return f"[{stamp}] [{level or '-'}]{client}{code} {_dash(row.get('message'))}"


EVIDENCE_COLUMNS = {
    "access": (
        "timestamp", "source_address", "source_ip", "user_name", "http_request_line", "http_request_method",
        "url_original", "http_version", "url_domain", "http_response_status_code", "http_response_body_bytes",
        "http_request_referrer", "user_agent_original",
    ),
    "error": ("timestamp", "log_logger", "log_level", "source_ip", "error_code", "message"),
}  # fmt: skip

LINE_BUILDERS = {"access": access_line, "error": error_line}


def evidence_lines(batch, rows, dataset: str) -> list[str]:
    """Readable lines for ``rows`` of ``batch`` (only the few rows an alert may quote)."""
    if not len(rows):
        return []
    table = batch.select(list(EVIDENCE_COLUMNS[dataset])).take(pa.array(rows))
    build = LINE_BUILDERS[dataset]
    return [build(row) for row in table.to_pylist()]
