"""HTTP webhook sink: each alert POSTed as JSON, retried with backoff, bounded in time.

``format: slack`` posts ``{"text": "..."}`` instead, which Slack, Mattermost and
Teams-compatible incoming webhooks accept.  A busy receiver (503, 429...) is
retried with backoff; one that does not answer within ``timeout`` is not retried
(it would cost another timeout per attempt), and ``Delivery`` then takes it as
down for the run.  Past the delivery deadline no retry (and no backoff) begins:
the attempt in flight is the last, so it ends within ``in_flight_seconds``.
Unless ``internal``, it receives only ``shared_view``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from alerts.sinks import DeliveryError, alert_json, alert_summary

#: Statuses worth retrying: the receiver is busy or briefly broken, not refusing the request.
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


def slack_payload(alert: dict[str, Any]) -> str:
    lines = [alert_summary(alert)]
    lines += [f"> {e['line']}" for e in alert.get("evidence", [])[:3] if e.get("line")]
    return json.dumps({"text": "\n".join(lines)}, ensure_ascii=False)


class WebhookSink:
    def __init__(
        self,
        url: str,
        timeout: float = 5,
        retries: int = 3,
        backoff: float = 1,
        format: str = "json",
        internal: bool = False,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {url!r}")
        self.name = f"webhook:{url}"
        self.internal = internal
        self._url, self._timeout, self._retries, self._backoff, self._format = url, timeout, retries, backoff, format
        #: One attempt: connecting, then waiting for the answer, each within ``timeout`` (urllib's timeout is per
        #: socket operation); a second for the rest.  ``Delivery`` waits this long past its deadline at most.
        self.in_flight_seconds = 2 * timeout + 1

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self._url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "logwarden"}
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            response.read(65536)  # the status is the answer; a receiver's long body is not read

    def send(self, alert: dict[str, Any], deadline: float | None = None) -> None:
        """POST ``alert``, retrying a busy receiver; past ``deadline`` (``time.monotonic()``) no attempt begins."""
        body = (slack_payload(alert) if self._format == "slack" else alert_json(alert)).encode("utf-8")
        problem, attempts = "", 0
        while attempts <= self._retries:
            if attempts:
                pause = self._backoff * 2 ** (attempts - 1)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    problem += " (no retry past the delivery deadline)"
                    break
                time.sleep(pause)
            attempts += 1
            try:
                self._post(body)
                return
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code} {error.reason}"
                if error.code not in RETRYABLE:
                    break
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                if isinstance(reason, TimeoutError) or isinstance(error, TimeoutError):
                    raise DeliveryError(f"no answer within {self._timeout}s") from None
                problem = str(reason)
        raise DeliveryError(f"{problem} after {attempts} attempt(s)")

    def close(self) -> None:
        pass
