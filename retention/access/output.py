"""Writing records out as they are found: a readable table, JSON lines or CSV, one table of rows at a time.

JSON lines use ``schemas.json_rows`` (the shape of ``logwarden parse``).  CSV
has a fixed header known before the first row (the columns given), with
nested values as JSON text, so a stream of tables from different files gives
one well-formed file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO

import pyarrow as pa

from schemas.json_rows import row_to_json_dict

FORMATS = ("table", "jsonl", "csv")
TABLE_COLUMNS = (
    ("timestamp", 20),
    ("source_ip", 39),
    ("user_name", 16),
    ("http_request_method", 6),
    ("http_response_status_code", 3),
    ("url_path", 48),
)


class RecordWriter:
    """Rows of Arrow tables to ``out`` in one of ``FORMATS``; ``extra`` columns (e.g. ``dataset``) come first."""

    def __init__(self, out: IO[str], fmt: str, columns: Sequence[str], extra: Sequence[str] = ()):
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self._out = out
        self._format = fmt
        self._columns = [*extra, *columns]
        self._csv = csv.writer(out) if fmt == "csv" else None
        self._started = False
        self.rows = 0

    def _header(self) -> None:
        if self._started:
            return
        self._started = True
        if self._csv is not None:
            self._csv.writerow(self._columns)
        elif self._format == "table":
            self._out.write(" ".join(f"{name[:width]:<{width}}" for name, width in TABLE_COLUMNS).rstrip() + "\n")

    def write(self, table: pa.Table, **extra: str) -> None:
        self.write_records([row_to_json_dict(row) for row in table.to_pylist()], **extra)

    def write_records(self, records: list[dict], **extra: str) -> None:
        """Records already in JSON shape (as ``schemas.json_rows`` makes them, or alert lines)."""
        self._header()
        for row in records:
            record = {**extra, **row}
            if self._format == "jsonl":
                self._out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            elif self._csv is not None:
                self._csv.writerow([_cell(record.get(name)) for name in self._columns])
            else:
                cells = [f"{_cell(record.get(name))[:width]:<{width}}" for name, width in TABLE_COLUMNS]
                self._out.write(" ".join(cells).rstrip() + "\n")
            self.rows += 1
        self._out.flush()

    def close(self) -> None:
        self._header()
        self._out.flush()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def union_columns(schemas: Sequence[pa.Schema]) -> list[str]:
    """Every column name of ``schemas``, first appearance order (the CSV header of a mixed export)."""
    return list(dict.fromkeys(name for schema in schemas for name in schema.names))
