"""File-like sinks: a JSON-lines file (appended, one alert per line) and standard output.

The JSON-lines file is plaintext personal data (addresses, users, query strings,
evidence lines) that the operator asked for by naming it: it is created readable by
its owner only (mode 600), and an existing file is narrowed to that mode.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from alerts.sinks import DeliveryError, alert_json


class JsonLinesSink:
    """Appends each alert as one line and flushes, so a reader tailing the file sees it at once."""

    internal = True

    def __init__(self, path: str):
        self.name = f"jsonl:{path}"
        self._path = path
        self._handle = None

    def send(self, alert: dict[str, Any]) -> None:
        try:
            if self._handle is None:
                directory = os.path.dirname(self._path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                os.fchmod(fd, 0o600)
                self._handle = os.fdopen(fd, "a", encoding="utf-8")
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
