"""Hand-built event batches for detection tests (access and error events, in the real schemas)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from schemas import ACCESS_EVENT, ERROR_EVENT

T0 = dt.datetime(2026, 11, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def access(seconds: float, ip: str = "203.0.113.9", url: str = "/", status: int = 200, **fields) -> dict:
    path, _, query = url.partition("?")
    row = {
        "timestamp": T0 + dt.timedelta(seconds=seconds),
        "source_ip": ip,
        "source_address": ip,
        "http_request_method": fields.pop("method", "GET"),
        "url_original": url,
        "url_path": path,
        "url_query": query,
        "http_version": "1.1",
        "http_response_status_code": status,
        "user_agent_original": fields.pop("agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"),
        "event_dataset": "apache.access",
    }
    row["http_request_line"] = f"{row['http_request_method']} {url} HTTP/1.1"
    row.update(fields)
    return row


def error(seconds: float, message: str, ip: str = "198.51.100.7", **fields) -> dict:
    row = {
        "timestamp": T0 + dt.timedelta(seconds=seconds),
        "log_level": "error",
        "source_ip": ip,
        "message": message,
        "event_dataset": "apache.error",
    }
    row.update(fields)
    return row


def batch(rows: list[dict], schema: pa.Schema = ACCESS_EVENT, path: str = "/var/log/test.log") -> pa.RecordBatch:
    """Rows in file order; offsets count 100 bytes per line so evidence can be checked."""
    offset = 0
    full = []
    for row in rows:
        full.append({"log_file_path": path, "log_offset": offset, **row})
        offset += 100
    return pa.RecordBatch.from_pylist(full, schema=schema)


def error_batch(rows: list[dict], path: str = "/var/log/error.log") -> pa.RecordBatch:
    return batch(rows, ERROR_EVENT, path)
