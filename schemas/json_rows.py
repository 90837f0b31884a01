"""Records as JSON objects: the shape of ``logwarden parse`` output, dead-letter files and alert lines.

Timestamps become ISO-8601 UTC strings (``2015-05-17T10:05:03Z``, with
microseconds only when present), nulls are omitted, binary values become text
with undecodable bytes shown as ``\\xHH`` plus an exact ``<name>_base64`` copy.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa


def _iso(value: dt.datetime) -> str:
    value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if value and isinstance(value[0], tuple) and len(value[0]) == 2:  # Arrow map
            return {k: _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    return value


def row_to_json_dict(row: dict[str, Any]) -> dict[str, Any]:
    """One record (as ``to_pylist`` gives it) as a JSON-ready dict."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            continue
        if isinstance(value, bytes):
            try:
                out[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                out[key] = value.decode("utf-8", "backslashreplace")
                out[f"{key}_base64"] = base64.b64encode(value).decode("ascii")
            continue
        out[key] = _plain(value)
    return out


def batch_to_json_lines(batch: pa.RecordBatch | pa.Table) -> Iterator[str]:
    """Each row of ``batch`` as one compact JSON line (without the newline)."""
    for row in batch.to_pylist():
        yield json.dumps(row_to_json_dict(row), ensure_ascii=False, separators=(",", ":"))
