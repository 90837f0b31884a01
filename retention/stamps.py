"""The one way records of the archive's state (manifests, ledger, keyring, roles, holds, audit) write "now"."""

from __future__ import annotations

import datetime as dt


def utc_stamp(timespec: str = "seconds") -> str:
    """Now in UTC as ISO 8601 with a ``Z``: ``2026-12-01T23:30:00Z`` (``timespec`` as ``datetime.isoformat``)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")
