"""File-like sinks: a JSON-lines file (appended, one alert per line) and standard output.

The JSON-lines file is plaintext personal data (addresses, users, query strings,
evidence lines) that the operator asked for by naming it: it is created readable by
its owner only (mode 600), and an existing file is narrowed to that mode.

The file sink closes the one window the outbox leaves (an alert written in the instant before a
``kill -9``, before its confirmation was recorded, is sent again): on opening a file it reads the
ids of the alerts at its end and does not append those again, and a line torn by the kill is cut
off so its alert is written whole.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from alerts.sinks import DeliveryError, alert_json

#: How much of an existing file's end is read for the ids already in it: far more than a sink
#: thread has in flight when killed (one alert).
TAIL_BYTES = 1 << 20


def ids_at_end(fd: int, tail_bytes: int = TAIL_BYTES) -> set[str]:
    """The alert ids of the whole lines in the file's last ``tail_bytes``; a torn last line is cut off."""
    size = os.fstat(fd).st_size
    start = max(0, size - tail_bytes)
    tail = os.pread(fd, size - start, start)
    end = tail.rfind(b"\n") + 1
    if end < len(tail):  # killed mid-line: that alert was never confirmed, so it is written again whole
        os.ftruncate(fd, start + end)
    lines = tail[:end].split(b"\n")
    if start:
        lines = lines[1:]  # the first line may begin before the tail
    ids = set()
    for line in lines:
        try:
            ids.add(json.loads(line)["alert_id"])
        except (ValueError, KeyError, TypeError):
            continue  # not an alert line (a file an operator also writes to): nothing to skip
    return ids


class JsonLinesSink:
    """Appends each alert as one line and flushes, so a reader tailing the file sees it at once."""

    internal = True

    def __init__(self, path: str):
        self.name = f"jsonl:{path}"
        self._path = path
        self._handle = None
        self._at_end: set[str] = set()

    def send(self, alert: dict[str, Any]) -> None:
        try:
            if self._handle is None:
                directory = os.path.dirname(self._path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                os.fchmod(fd, 0o600)
                self._at_end = ids_at_end(fd)
                self._handle = os.fdopen(fd, "a", encoding="utf-8")
            if alert.get("alert_id") in self._at_end:
                return  # written just before a kill, never confirmed: it is in the file once already
            self._handle.write(alert_json(alert) + "\n")
            self._handle.flush()
        except OSError as problem:
            raise DeliveryError(f"cannot write {self._path}: {problem.strerror or problem}") from None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class StdoutSink:
    name = "stdout"
    internal = True

    def __init__(self, stream=None):
        self._stream = stream

    def send(self, alert: dict[str, Any]) -> None:
        stream = self._stream or sys.stdout
        stream.write(alert_json(alert) + "\n")
        stream.flush()

    def close(self) -> None:
        pass
