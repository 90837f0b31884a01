"""The retention policy as a pure function: what the archive holds, today's date, the policy and the holds -> a plan.

Ages are counted from a partition's day (its event day; dead letters: the day
they were written).  A day is *due* to leave the online tier once it is more
than ``online_days`` old, so even its last second was online that long; a
month *expires* once its last day is more than ``archive_days`` old.

* Compaction works on segments: one ISO week, cut at month ends (keys are per
  month, so a file never mixes months).  A segment moves when all its days are
  due, so a day stays online between ``online_days`` and ``online_days + 7``.
* Deletion and crypto-shredding work on months, because shredding destroys the
  month's keys and so reaches every copy, backups included: a day is kept
  between ``archive_days`` and ``archive_days + 31`` days, then it is gone
  everywhere on the next run.
* A held day is never moved, deleted or shredded: its online partition stays
  put, its archive segment is kept whole, its month keeps its keys.

Nothing here reads files; ``retention.apply`` turns a plan into commits.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from collections.abc import Iterable

from retention.layout import segment_days, segment_start
from retention.tiers import ARCHIVE, ONLINE, month_of


@dataclasses.dataclass(frozen=True)
class Policy:
    online_days: int
    archive_days: int


@dataclasses.dataclass(frozen=True)
class PartitionState:
    """One partition as the planner sees it: where it is, and what its manifests say."""

    tier: str  # ONLINE or ARCHIVE
    dataset: str
    day: dt.date  # online: the day; archive: the segment's first day
    files: int = 0
    rows: int = 0
    size: int = 0
    #: online only: live files whose rows are already in the archive tier (a compaction killed before it ended)
    copied_files: int = 0

    @property
    def days(self) -> tuple[dt.date, ...]:
        return (self.day,) if self.tier == ONLINE else segment_days(self.day)

    @property
    def month(self) -> str:
        return month_of(self.day)

    def label(self) -> str:
        days = self.days
        span = f"{days[0]}" if len(days) == 1 else f"{days[0]}..{days[-1]}"
        return f"{self.tier} {self.dataset} {span}"


@dataclasses.dataclass(frozen=True)
class Inventory:
    partitions: tuple[PartitionState, ...]
    #: months whose keys still exist, and months whose keys were destroyed
    key_months: frozenset[str] = frozenset()
    destroyed: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Compact:
    """Move a segment's online partitions into the archive tier (merged with what is there already)."""

    dataset: str
    segment: dt.date
    online: tuple[PartitionState, ...]
    archived: PartitionState | None

    def describe(self) -> str:
        days = segment_days(self.segment)
        files = sum(p.files for p in self.online)
        rows = sum(p.rows for p in self.online)
        merge = f" + {self.archived.rows} rows already archived" if self.archived else ""
        copied = sum(p.copied_files for p in self.online)
        resume = f" ({copied} of them copied by an interrupted run: only their online copies go)" if copied else ""
        return (
            f"compact {self.dataset} {days[0]}..{days[-1]}: {files} online files, {rows} rows{merge} -> archive tier"
            + resume
        )


@dataclasses.dataclass(frozen=True)
class Delete:
    """Delete every file of one partition (its month has expired)."""

    partition: PartitionState

    def describe(self) -> str:
        p = self.partition
        return f"delete  {p.label()}: {p.files} files, {p.rows} rows"


@dataclasses.dataclass(frozen=True)
class Shred:
    """Destroy every version of a month's keys: every copy of its data, backups included, becomes unreadable."""

    month: str

    def describe(self) -> str:
        return f"shred   {self.month}: destroy its keys (every copy of its data becomes unreadable)"


@dataclasses.dataclass(frozen=True)
class Keep:
    """Something the policy would remove but a hold (or a destroyed key) keeps; reported, not acted on."""

    what: str
    why: str

    def describe(self) -> str:
        return f"keep    {self.what}: {self.why}"


Step = Compact | Delete | Shred | Keep


@dataclasses.dataclass(frozen=True)
class Plan:
    now: dt.date
    policy: Policy
    steps: tuple[Step, ...]

    @property
    def actions(self) -> tuple[Step, ...]:
        """The steps that change something (not ``Keep``)."""
        return tuple(s for s in self.steps if not isinstance(s, Keep))

    def describe(self) -> list[str]:
        return [step.describe() for step in self.steps]


def month_last_day(month: str) -> dt.date:
    year, number = int(month[:4]), int(month[5:7])
    return dt.date(year, number, calendar.monthrange(year, number)[1])


def is_due(day: dt.date, now: dt.date, policy: Policy) -> bool:
    """More than ``online_days`` old: may leave the online tier."""
    return (now - day).days > policy.online_days


def has_expired(month: str, now: dt.date, policy: Policy) -> bool:
    """Its last day is more than ``archive_days`` old: may be deleted and shredded."""
    return (now - month_last_day(month)).days > policy.archive_days


def _holds_on(days: Iterable[dt.date], held: dict[dt.date, tuple[str, ...]]) -> tuple[str, ...]:
    found: list[str] = []
    for day in days:
        for hold_id in held.get(day, ()):
            if hold_id not in found:
                found.append(hold_id)
    return tuple(found)


def plan_retention(
    inventory: Inventory, now: dt.date, policy: Policy, held: dict[dt.date, tuple[str, ...]] | None = None
) -> Plan:
    """The steps that bring the archive in line with ``policy`` at ``now``; ``held`` maps days to hold ids."""
    held = held or {}
    steps: list[Step] = []
    months = sorted({p.month for p in inventory.partitions} | set(inventory.key_months))
    expired = {m for m in months if has_expired(m, now, policy)}

    for month in sorted(expired):
        month_days = [month_last_day(month).replace(day=d) for d in range(1, month_last_day(month).day + 1)]
        month_holds = _holds_on(month_days, held)
        if month in inventory.key_months:
            if month_holds:
                steps.append(Keep(f"keys of {month}", f"held by {', '.join(month_holds)}"))
            else:
                steps.append(Shred(month))
        for partition in sorted(
            (p for p in inventory.partitions if p.month == month), key=lambda p: (p.tier, p.dataset, p.day)
        ):
            holds = _holds_on(partition.days, held)
            if holds:
                steps.append(Keep(partition.label(), f"held by {', '.join(holds)}"))
            else:
                steps.append(Delete(partition))

    archived = {(p.dataset, p.day): p for p in inventory.partitions if p.tier == ARCHIVE}
    segments: dict[tuple[str, dt.date], list[PartitionState]] = {}
    for partition in inventory.partitions:
        if partition.tier == ONLINE and partition.month not in expired:
            segments.setdefault((partition.dataset, segment_start(partition.day)), []).append(partition)
    for (dataset, start), online in sorted(segments.items()):
        days = segment_days(start)
        if not is_due(days[-1], now, policy):
            continue
        label = f"{dataset} {days[0]}..{days[-1]}"
        if month_of(start) in inventory.destroyed:
            steps.append(Keep(f"online {label}", "its keys were destroyed: unreadable, kept until the month expires"))
            continue
        holds = _holds_on(days, held)
        if holds:
            steps.append(Keep(f"online {label}", f"held by {', '.join(holds)} (stays online)"))
            continue
        steps.append(
            Compact(dataset, start, tuple(sorted(online, key=lambda p: p.day)), archived.get((dataset, start)))
        )
    return Plan(now, policy, tuple(steps))
