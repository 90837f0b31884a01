"""Legal holds: day ranges that retention must neither move, delete nor shred until the hold is released.

One JSON file per hold in ``<archive>/_holds/``, created exclusively and never
rewritten; releasing writes a second file beside it.  So a hold's history can
only grow, and two people releasing the same hold cannot both succeed.
Every change goes through the audit trail (``logwarden hold``), which is where
a deleted hold file shows: retention refuses to delete anything while a hold
the trail knows about has lost its file (``missing_from``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from retention.stamps import utc_stamp

HOLDS_DIR = "_holds"
_ID = re.compile(r"^H(\d+)$")


class HoldError(Exception):
    """A hold cannot be added or released as asked (bad dates, unknown id, already released)."""


def parse_day(text: str, what: str = "date") -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise HoldError(f"bad {what} {text!r}: expected YYYY-MM-DD") from None


@dataclasses.dataclass(frozen=True)
class Hold:
    hold_id: str
    first_day: dt.date
    last_day: dt.date
    reason: str
    created: str
    created_by: str
    released: str | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released is None

    def covers(self, day: dt.date) -> bool:
        """Whether this hold, while active, protects ``day``."""
        return self.active and self.first_day <= day <= self.last_day

    def describe(self) -> str:
        span = f"{self.first_day}..{self.last_day}" if self.first_day != self.last_day else f"{self.first_day}"
        state = "active" if self.active else f"released {self.released} ({self.release_reason})"
        return f"{self.hold_id} {span}: {self.reason} [{state}]"


def _write_exclusive(path: Path, doc: dict) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        os.unlink(tmp)


class HoldStore:
    """The holds of one archive."""

    def __init__(self, archive: str | os.PathLike):
        self.directory = Path(archive) / HOLDS_DIR

    def _path(self, hold_id: str, released: bool = False) -> Path:
        return self.directory / (f"{hold_id}.released.json" if released else f"{hold_id}.json")

    def holds(self) -> list[Hold]:
        """Every hold ever placed, active or released, by number."""
        found = []
        if not self.directory.is_dir():
            return found
        for path in self.directory.glob("H*.json"):
            match = _ID.match(path.name.removesuffix(".json"))
            if not match:
                continue
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                release_path = self._path(path.stem, released=True)
                release = json.loads(release_path.read_text(encoding="utf-8")) if release_path.exists() else {}
                found.append(
                    Hold(
                        hold_id=doc["hold_id"],
                        first_day=dt.date.fromisoformat(doc["first_day"]),
                        last_day=dt.date.fromisoformat(doc["last_day"]),
                        reason=doc["reason"],
                        created=doc["created"],
                        created_by=doc.get("created_by", ""),
                        released=release.get("released"),
                        released_by=release.get("released_by"),
                        release_reason=release.get("reason"),
                    )
                )
            except (OSError, ValueError, KeyError) as error:
                # A damaged hold must stop deletion, not be ignored: fail loudly.
                raise HoldError(f"{path}: damaged hold record ({error}); fix it before retention runs") from None
        return sorted(found, key=lambda h: int(h.hold_id[1:]))

    def active(self) -> list[Hold]:
        return [h for h in self.holds() if h.active]

    def get(self, hold_id: str) -> Hold:
        for hold in self.holds():
            if hold.hold_id == hold_id:
                return hold
        raise HoldError(f"no hold {hold_id!r} in {self.directory} (see 'logwarden hold list')")

    def add(self, first_day: dt.date, last_day: dt.date, reason: str, who: str) -> Hold:
        if last_day < first_day:
            raise HoldError(f"--to {last_day} is before --from {first_day}")
        if not reason or not reason.strip():
            raise HoldError("a hold needs a reason (--reason TEXT)")
        while True:
            number = 1 + max((int(h.hold_id[1:]) for h in self.holds()), default=0)
            hold = Hold(f"H{number}", first_day, last_day, reason.strip(), utc_stamp(), who)
            doc = {
                "hold_id": hold.hold_id,
                "first_day": first_day.isoformat(),
                "last_day": last_day.isoformat(),
                "reason": hold.reason,
                "created": hold.created,
                "created_by": who,
            }
            if _write_exclusive(self._path(hold.hold_id), doc):
                return hold
            # someone else took this number at the same moment: take the next

    def release(self, hold_id: str, reason: str, who: str) -> Hold:
        hold = self.get(hold_id)
        if not reason or not reason.strip():
            raise HoldError("releasing a hold needs a reason (--reason TEXT)")
        if not hold.active:
            raise HoldError(f"hold {hold_id} was already released on {hold.released}")
        doc = {"hold_id": hold_id, "released": utc_stamp(), "released_by": who, "reason": reason.strip()}
        if not _write_exclusive(self._path(hold_id, released=True), doc):
            raise HoldError(f"hold {hold_id} was released by someone else just now")
        return self.get(hold_id)


def held_days(holds: Iterable[Hold]) -> frozenset[dt.date]:
    """Every day an active hold covers."""
    days = set()
    for hold in holds:
        if hold.active:
            day = hold.first_day
            while day <= hold.last_day:
                days.add(day)
                day += dt.timedelta(days=1)
    return frozenset(days)


def missing_from(store: HoldStore, audited: Iterable[dict]) -> list[str]:
    """Holds the audit trail says were added (and not released) whose files are gone from ``store``."""
    placed, released = set(), set()
    for entry in audited:
        if entry.get("result") != "ok" or not isinstance(entry.get("query"), dict):
            continue
        hold_id = entry["query"].get("hold_id")
        if entry.get("command") == "hold add" and hold_id:
            placed.add(hold_id)
        elif entry.get("command") == "hold release" and hold_id:
            released.add(hold_id)
    present = {h.hold_id for h in store.holds()}
    return sorted(placed - released - present, key=lambda h: int(h[1:]) if h[1:].isdigit() else 0)
