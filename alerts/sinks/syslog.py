"""Syslog sink: RFC 5424 messages over UDP, or TCP with octet-counting framing (RFC 6587).

The message carries the rule id as MSGID, the alert's key facts as structured
data, and the alert as JSON in the free-form part, so both a plain syslog
reader and a SIEM parser get something useful.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import Any

from alerts.sinks import DeliveryError, alert_json

#: Our severities on syslog's scale (2 critical, 3 error, 4 warning, 5 notice, 6 informational).
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
#: Enterprise number for the structured-data id (32473 is IANA's example number, RFC 5612).
SD_ID = "logwarden@32473"


def _sd_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(value: str, limit: int) -> str:
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def rfc5424(alert: dict[str, Any], facility: int, app_name: str, hostname: str | None = None) -> bytes:
    pri = facility * 8 + SYSLOG_SEVERITY.get(alert.get("severity", ""), 5)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    host = _token(hostname or socket.gethostname(), 255)
    params = {
        k: alert.get(k) for k in ("alert_id", "rule_id", "severity", "technique", "source_ip", "user_name", "count")
    }
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items() if v is not None) + "]"
    header = f"<{pri}>1 {stamp} {host} {_token(app_name, 48)} - {_token(alert['rule_id'], 32)} {sd} "
    return header.encode("utf-8") + b"\xef\xbb\xbf" + alert_json(alert).encode("utf-8")


class SyslogSink:
    def __init__(
        self, host: str, port: int = 514, protocol: str = "udp", facility: int = 10, app_name: str = "logwarden",
        timeout: float = 5.0, internal: bool = False,
    ):  # fmt: skip
        if protocol not in ("udp", "tcp"):
            raise ValueError(f"syslog protocol must be udp or tcp, got {protocol!r}")
        self.name = f"syslog:{protocol}://{host}:{port}"
        self.internal = internal
        self._address = (host, port)
        self._protocol, self._facility, self._app_name, self._timeout = protocol, facility, app_name, timeout
        self._socket: socket.socket | None = None
        #: Connecting and sending, each within ``timeout``, and a second for the rest (no reconnect past a deadline).
        self.in_flight_seconds = 2 * timeout + 1

    def _connect(self) -> socket.socket:
        if self._socket is None:
            if self._protocol == "udp":
                family = socket.getaddrinfo(*self._address, type=socket.SOCK_DGRAM)[0][0]
                self._socket = socket.socket(family, socket.SOCK_DGRAM)
                self._socket.settimeout(self._timeout)
            else:
                self._socket = socket.create_connection(self._address, timeout=self._timeout)
        return self._socket

    def send(self, alert: dict[str, Any], deadline: float | None = None) -> None:
        """Send ``alert``, reconnecting once (the receiver may have restarted); past ``deadline``
        (``time.monotonic()``) the reconnect is not tried."""
        message = rfc5424(alert, self._facility, self._app_name)
        for attempt in range(2):
            try:
                sock = self._connect()
                if self._protocol == "udp":
                    sock.sendto(message, self._address)
                else:
                    sock.sendall(str(len(message)).encode() + b" " + message)
                return
            except OSError as problem:
                self.close()
                if attempt or (deadline is not None and time.monotonic() >= deadline):
                    raise DeliveryError(f"{self.name}: {problem}") from None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
