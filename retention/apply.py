"""``retention apply``: take stock of an archive, plan (``retention.policy``) and carry the plan out.

Every change is a commit of ``retention.commit`` or a keyring operation, each
atomic, and the plan is made afresh from what the manifests say on every run;
so a run killed at any point leaves a state the next run recognises and
finishes, and a second run with nothing to do does nothing.  For a segment:

1. its online files (and the segment's existing files, when late data arrived)
   are read, sorted and written to staged archive files;
2. one commit publishes them into the archive tier, naming the online files
   taken in as its ``sources`` (from here readers of both tiers skip those);
3. the published segment is read back in full and its rows counted against
   what went in;
4. one remove-only commit per online day drops the online copies, and the
   emptied partition is pruned.

For an expired month: its keys are destroyed first (so every copy, backups
included, is unreadable from that moment), then each partition's files are
removed by a commit and the partition pruned.  Holds are read again right
before each step, so a hold placed while a run is going still wins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import os
import uuid
from collections.abc import Callable, Iterator

from retention import commit, layout
from retention.compaction import CompactionSettings, compact, read_batches
from retention.encryption import ArchiveDecryptor
from retention.holds import HoldStore
from retention.keyring import Keyring, ReaderKeys
from retention.layout import DATASETS
from retention.policy import (
    Compact,
    Delete,
    Inventory,
    Keep,
    PartitionState,
    Plan,
    Policy,
    Shred,
    has_expired,
    is_due,
    plan_retention,
)
from retention.tiers import ARCHIVE, ONLINE, compacted_sources, source_record, tier_root

Hook = Callable[[str, str], None]

SEGMENT_WRITTEN = "segment_written"
SEGMENT_VERIFIED = "segment_verified"
ONLINE_REMOVED = "online_removed"
PARTITION_DELETED = "partition_deleted"
PRUNED = "pruned"
SHREDDED = "shredded"


class RetentionError(RuntimeError):
    """Retention cannot go on safely (a check failed); nothing past the last finished step was changed."""


class RetentionBusy(RetentionError):
    """Another ``retention apply`` holds the archive."""


def _no_hook(step: str, detail: str) -> None:
    pass


def held_map(archive: str) -> dict[dt.date, tuple[str, ...]]:
    """Day -> ids of the active holds covering it."""
    held: dict[dt.date, list[str]] = {}
    for hold in HoldStore(archive).active():
        day = hold.first_day
        while day <= hold.last_day:
            held.setdefault(day, []).append(hold.hold_id)
            day += dt.timedelta(days=1)
    return {day: tuple(ids) for day, ids in held.items()}


def take_inventory(root: str, keyring: Keyring) -> tuple[Inventory, list[tuple[str, str, str]]]:
    """What the manifests hold, per tier, dataset and partition; and the emptied partitions (tier, dataset, day)."""
    partitions: list[PartitionState] = []
    empty: list[tuple[str, str, str]] = []
    for dataset in DATASETS:
        copied = compacted_sources(root, dataset)
        for tier in (ONLINE, ARCHIVE):
            base = tier_root(root, tier)
            if not commit.dataset_exists(base, dataset):
                continue
            for day in commit.partition_days(base, dataset):
                view = commit.read_partition(base, dataset, day)
                if not view.live:
                    if view.manifests and not view.problems:
                        empty.append((tier, dataset, day))
                    continue
                entries = list(view.live.items())
                partitions.append(
                    PartitionState(
                        tier=tier,
                        dataset=dataset,
                        day=dt.date.fromisoformat(day),
                        files=len(entries),
                        rows=sum(int(e["rows"]) for _, e in entries),
                        size=sum(int(e.get("size") or 0) for _, e in entries),
                        copied_files=sum((day, n, e.get("sha256")) in copied for n, e in entries)
                        if tier == ONLINE
                        else 0,
                    )
                )
    key_months = frozenset(r.period for r in keyring.records())
    return Inventory(tuple(partitions), key_months, frozenset(keyring.destroyed())), empty


@dataclasses.dataclass
class ApplyReport:
    plan: Plan
    done: list[str] = dataclasses.field(default_factory=list)
    #: what the audit entry lists: {"path", "rows", "change"}
    touched: list[dict] = dataclasses.field(default_factory=list)
    rows_moved: int = 0
    rows_deleted: int = 0
    online_bytes_moved: int = 0
    archive_bytes_written: int = 0
    shredded: list[str] = dataclasses.field(default_factory=list)
    recovered: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        ratio = (
            f", compaction {self.online_bytes_moved / self.archive_bytes_written:.2f}x"
            if self.archive_bytes_written
            else ""
        )
        return (
            f"{self.rows_moved} rows moved to the archive tier{ratio}, {self.rows_deleted} rows deleted, "
            f"{len(self.shredded)} month(s) shredded"
        )


def plan_for(root: str, keyring: Keyring, now: dt.date, policy: Policy) -> Plan:
    inventory, _empty = take_inventory(root, keyring)
    return plan_retention(inventory, now, policy, held_map(root))


@contextlib.contextmanager
def _only_run(root: str) -> Iterator[None]:
    """An exclusive lock for the whole run: two overlapping runs would both compact a segment and double it."""
    path = layout.retention_lock_path(root)
    commit.mkdirs(path.rsplit("/", 1)[0])
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetentionBusy(f"another retention run is working on {root}; try again when it has finished") from None
        yield
    finally:
        os.close(fd)


class RetentionRun:
    """One ``retention apply`` over one archive; ``run()`` returns what it did."""

    def __init__(
        self,
        root: str,
        reader: ReaderKeys,
        policy: Policy,
        now: dt.date,
        settings: CompactionSettings | None = None,
        hook: Hook | None = None,
        run_id: str | None = None,
    ):
        self.root = str(root)
        self.tier = layout.archive_tier_root(self.root)
        self.reader = reader
        self.keyring = reader.keyring
        self.policy = policy
        self.now = now
        self.settings = settings or CompactionSettings()
        self.hook = hook or _no_hook
        self.run_id = run_id or f"retention-{dt.datetime.now(dt.timezone.utc):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"

    def run(self) -> ApplyReport:
        with _only_run(self.root), commit.RunLease(self.root, self.run_id), commit.RunLease(self.tier, self.run_id):
            recovered = [commit.recover(self.root, own_run=self.run_id), commit.recover(self.tier, own_run=self.run_id)]
            inventory, empty = take_inventory(self.root, self.keyring)
            plan = plan_retention(inventory, self.now, self.policy, held_map(self.root))
            report = ApplyReport(plan)
            report.recovered = [r.summary() for r in recovered if r.changed]
            for tier, dataset, day in empty:  # emptied by a run killed before it pruned
                commit.prune_partition(tier_root(self.root, tier), dataset, day)
            for step in plan.steps:
                if isinstance(step, Keep):
                    report.done.append(step.describe())
                elif isinstance(step, Shred):
                    self._shred(step, report)
                elif isinstance(step, Delete):
                    self._delete(step, report)
                elif isinstance(step, Compact):
                    self._compact(step, report)
            commit.clear_staging(self.tier, self.run_id)
            commit.clear_staging(self.root, self.run_id)
        return report

    # --- steps ----------------------------------------------------------------------------------------------

    def _still_unheld(self, days) -> bool:
        held = held_map(self.root)
        return not any(day in held for day in days)

    def _shred(self, step: Shred, report: ApplyReport) -> None:
        if not has_expired(step.month, self.now, self.policy):
            raise RetentionError(f"refusing to shred {step.month}: it has not expired")
        month_days = [d for d in held_map(self.root) if f"{d:%Y-%m}" == step.month]
        if month_days:
            report.done.append(f"keep    keys of {step.month}: a hold was placed while this run went on")
            return
        destroyed = self.keyring.destroy_period(step.month)
        self.hook(SHREDDED, step.month)
        report.shredded.append(step.month)
        report.done.append(f"shredded {step.month}: destroyed {', '.join(destroyed) or 'its remaining keys'}")

    def _delete(self, step: Delete, report: ApplyReport) -> None:
        partition = step.partition
        if not has_expired(partition.month, self.now, self.policy):
            raise RetentionError(f"refusing to delete {partition.label()}: its month has not expired")
        if not self._still_unheld(partition.days):
            report.done.append(f"keep    {partition.label()}: a hold was placed while this run went on")
            return
        base, day = tier_root(self.root, partition.tier), partition.day.isoformat()
        view = commit.read_partition(base, partition.dataset, day)
        if view.live:
            commit.commit(base, partition.dataset, day, self.run_id, add=(), remove=list(view.live), hook=self.hook)
            self.hook(PARTITION_DELETED, view.directory)
        commit.prune_partition(base, partition.dataset, day)
        self.hook(PRUNED, view.directory)
        rows = sum(int(e["rows"]) for e in view.live.values())
        report.rows_deleted += rows
        for name, entry in view.live.items():
            report.touched.append({"path": view.path(name), "rows": int(entry["rows"]), "change": "deleted"})
        report.done.append(f"deleted {partition.label()}: {len(view.live)} files, {rows} rows")

    def _compact(self, step: Compact, report: ApplyReport) -> None:
        days = layout.segment_days(step.segment)
        if not all(is_due(day, self.now, self.policy) for day in days):
            raise RetentionError(f"refusing to compact {step.describe()}: not all its days are due")
        if not self._still_unheld(days):
            report.done.append(
                f"keep    {step.dataset} {days[0]}..{days[-1]}: a hold was placed while this run went on"
            )
            return
        dataset, start = step.dataset, step.segment.isoformat()
        schema = DATASETS[dataset]
        segment = commit.read_partition(self.tier, dataset, start)
        carried = [s for m in segment.manifests.values() for s in m.sources] if segment.live else []
        taken = {(o["day"], o["file"], o.get("sha256")) for s in carried if (o := s.get("online"))}
        online = [commit.read_partition(self.root, dataset, p.day.isoformat()) for p in step.online]
        pending = [
            (view, name, entry)
            for view in online
            for name, entry in view.live.items()
            if (view.day, name, entry.get("sha256")) not in taken
        ]
        expected = sum(int(e["rows"]) for e in segment.live.values()) + sum(int(e["rows"]) for _, _, e in pending)
        if pending:
            inputs = [segment.path(n) for n in segment.live] + [view.path(name) for view, name, _ in pending]
            written = compact(inputs, schema, start, self.reader, self.tier, self.run_id, self.settings, expected)
            self.hook(SEGMENT_WRITTEN, start)
            if sum(w.rows for w in written) != expected:
                raise RetentionError(
                    f"compacting {dataset} {start}: wrote {sum(w.rows for w in written)} rows of {expected}"
                )
            sources = carried + [source_record(dataset, view.day, name, entry) for view, name, entry in pending]
            commit.commit(
                self.tier,
                dataset,
                start,
                self.run_id,
                add=written,
                remove=list(segment.live),
                sources=sources,
                hook=self.hook,
                signer=self.reader.commit_signer(),  # readers believe only signed additions
            )
            report.archive_bytes_written += sum(w.size for w in written)
            report.online_bytes_moved += sum(int(e.get("size") or 0) for _, _, e in pending)
            report.rows_moved += sum(int(e["rows"]) for _, _, e in pending)
            segment = commit.read_partition(self.tier, dataset, start)
        self._verify_segment(segment, expected)
        self.hook(SEGMENT_VERIFIED, start)
        for view in online:
            if not view.live:
                continue
            commit.commit(self.root, dataset, view.day, self.run_id, add=(), remove=list(view.live), hook=self.hook)
            self.hook(ONLINE_REMOVED, view.directory)
            commit.prune_partition(self.root, dataset, view.day)
            self.hook(PRUNED, view.directory)
            for name, entry in view.live.items():
                report.touched.append({"path": view.path(name), "rows": int(entry["rows"]), "change": "moved"})
        moved = sum(len(v.live) for v in online)
        report.done.append(
            f"moved   {dataset} {days[0]}..{days[-1]}: {moved} online files -> {len(segment.live)} archive files, "
            f"{expected} rows"
        )

    def _verify_segment(self, segment: commit.PartitionView, expected: int) -> None:
        """Read every row of the published segment back; only then may the online copies go."""
        if segment.problems:
            raise RetentionError(f"{segment.directory}: {segment.problems[0][1]}; online copies kept")
        listed = sum(int(e["rows"]) for e in segment.live.values())
        decryptor = ArchiveDecryptor(self.reader)
        schema = DATASETS[segment.dataset]
        paths = [segment.path(n) for n in segment.live]
        try:
            read = sum(b.num_rows for b in read_batches(paths, schema, decryptor))
        except OSError as error:
            raise RetentionError(f"{segment.directory}: cannot read the compacted segment back ({error})") from None
        if listed != expected or read != expected:
            raise RetentionError(
                f"{segment.directory}: {read} rows read back, manifest lists {listed}, expected {expected}; "
                "online copies kept"
            )
