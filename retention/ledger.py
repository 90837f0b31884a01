"""The ingest ledger: which bytes of which input file are already in the archive, and which run put them there.

A file is known by its content, not its name: the SHA-256 of its first
``HEAD_BYTES`` decompressed bytes (fewer for a smaller file), so ``access.log``
renamed to ``access.log.1`` or compressed to ``access.log.1.gz`` is the same
file.  Device and inode are kept too where the file is local, to say which file
was read.  For each file the ledger holds the byte ranges (offsets in the
decompressed stream, as in ``log_offset``) and line counts that runs archived.

The ledger is not a file of its own that could disagree with the archive: each
run's ranges are part of the record that completes its transaction
(``retention.commit.complete_transaction``), written after every commit of the
run and making them visible at once.  A run killed before that record has
archived nothing, as far as readers and the next run are concerned: its
commits are withdrawn by ``recover``.  So a rerun reads exactly what no
completed run archived: nothing twice, nothing lost.

Streaming can record the offsets its cuts archived the same way, one
transaction per cut (``Ledger.record`` builds the record).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from collections.abc import Callable, Iterable
from typing import BinaryIO

from parsers.reader import compression_of, iter_chunks
from retention import commit

#: Bytes of a file's start that identify it.
HEAD_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class FileIdentity:
    """What makes two paths the same log: the hash of the same first bytes."""

    head_sha256: str
    head_bytes: int
    device: int | None = None
    inode: int | None = None

    @property
    def key(self) -> str:
        return f"{self.head_sha256[:32]}-{self.head_bytes}"


def _head(path: str, open_raw: Callable[[str], BinaryIO]) -> bytes:
    """The first ``HEAD_BYTES`` decompressed bytes of a file."""
    with open_raw(path) as raw:
        if not compression_of(path):
            return raw.read(HEAD_BYTES)
        head = b""
        for chunk in iter_chunks(raw, path, chunk_bytes=HEAD_BYTES, format_spec="auto"):
            head += chunk.data
            if len(head) >= HEAD_BYTES:
                break
        return head[:HEAD_BYTES]


def _inode(path: str) -> tuple[int | None, int | None]:
    if commit.is_local(path):
        with_stat = os.stat(path)
        return with_stat.st_dev, with_stat.st_ino
    return None, None


@dataclasses.dataclass(frozen=True)
class ArchivedRange:
    """Bytes ``[start, end)`` of a file, holding ``lines`` lines, archived by transaction ``run``."""

    start: int
    end: int
    lines: int
    run: str


@dataclasses.dataclass
class FileHistory:
    """Everything completed runs archived of one file identity."""

    key: str
    head_bytes: int
    ranges: list[ArchivedRange] = dataclasses.field(default_factory=list)

    def archived(self) -> tuple[int, int]:
        """(end of the bytes archived from the start without a gap, lines in them)."""
        lines_before = {0: 0}  # offsets reached from the start, and the lines before them
        for r in sorted(self.ranges, key=lambda r: (r.start, r.end)):
            if r.start in lines_before:
                lines_before[r.end] = max(lines_before.get(r.end, 0), lines_before[r.start] + r.lines)
        end = max(lines_before)
        return end, lines_before[end]

    @property
    def runs(self) -> list[str]:
        return sorted({r.run for r in self.ranges})


@dataclasses.dataclass(frozen=True)
class FilePlan:
    """What a run reads of one input: from ``start`` (line ``first_line``) to ``end`` (None: to the end)."""

    path: str
    identity: FileIdentity
    start: int = 0
    first_line: int = 1
    end: int | None = None
    #: Runs that archived the part before ``start``.
    earlier_runs: tuple[str, ...] = ()
    #: Set when the whole input is skipped (a second path with the same content in this run).
    skip_reason: str | None = None

    @property
    def nothing_to_read(self) -> bool:
        return self.skip_reason is not None or bool(
            self.earlier_runs and self.end is not None and self.start >= self.end
        )


@dataclasses.dataclass(frozen=True)
class FileOutcome:
    """What a run read of one planned input (from the run's counters): bytes and lines past ``plan.start``."""

    plan: FilePlan
    bytes_read: int
    lines_read: int

    def message(self) -> str:
        name = os.path.basename(self.plan.path)
        if self.plan.skip_reason:
            return f"{name}: {self.plan.skip_reason}; 0 new lines"
        earlier = ", ".join(self.plan.earlier_runs)
        if not self.lines_read and earlier:
            return f"{name}: already archived by run {earlier}; 0 new lines"
        if earlier:
            return f"{name}: {self.lines_read} new lines from line {self.plan.first_line} (before: run {earlier})"
        return f"{name}: {self.lines_read} lines"


class Ledger:
    """The histories of every file identity that completed transactions of an archive recorded, and the alert ids
    those runs raised."""

    def __init__(self, histories: dict[str, FileHistory] | None = None, alert_ids: frozenset[str] = frozenset()):
        self.histories = histories or {}
        self.alert_ids = alert_ids

    @classmethod
    def load(cls, root: str) -> Ledger:
        """Every completed run's record, read once: an archive of a year of nightly runs has 365 of them."""
        histories: dict[str, FileHistory] = {}
        alert_ids: list = []
        for txn, record in commit.completed_transactions(root).items():
            for item in record.get("inputs", ()):
                history = histories.setdefault(item["key"], FileHistory(item["key"], int(item["head_bytes"])))
                if int(item["end"]) > int(item["start"]):
                    history.ranges.append(ArchivedRange(int(item["start"]), int(item["end"]), int(item["lines"]), txn))
            alert_ids.append(record.get("alert_ids", ()))
        return cls(histories, frozenset(itertools.chain.from_iterable(alert_ids)))

    def identify(self, path: str, open_raw: Callable[[str], BinaryIO]) -> tuple[FileIdentity, FileHistory | None]:
        """The file's identity, and its history when some run archived part of it (matched on the history's head)."""
        head = _head(path, open_raw)
        device, inode = _inode(path)
        for history in sorted(self.histories.values(), key=lambda h: -h.head_bytes):
            if 0 < history.head_bytes <= len(head):
                digest = hashlib.sha256(head[: history.head_bytes]).hexdigest()
                if f"{digest[:32]}-{history.head_bytes}" == history.key:
                    return FileIdentity(digest, history.head_bytes, device, inode), history
        return FileIdentity(hashlib.sha256(head).hexdigest(), len(head), device, inode), None

    def plan(
        self, paths: Iterable[str], open_raw: Callable[[str], BinaryIO], reprocess: bool = False
    ) -> list[FilePlan]:
        """What to read of each path: what completed runs did not archive (everything with ``reprocess``)."""
        plans, seen = [], {}
        for path in paths:
            identity, history = self.identify(path, open_raw)
            if identity.key in seen:
                reason = f"same content as {os.path.basename(seen[identity.key])}, read in this run"
                plans.append(FilePlan(path, identity, skip_reason=reason))
                continue
            seen[identity.key] = path
            end = None if compression_of(path) else _size(path)
            if history is None or reprocess:
                plans.append(FilePlan(path, identity, end=end))
                continue
            start, lines = history.archived()
            plans.append(FilePlan(path, identity, start, lines + 1, end, tuple(history.runs)))
        return plans

    @staticmethod
    def record(outcomes: Iterable[FileOutcome]) -> dict:
        """The ``inputs`` part of a transaction record: the ranges this run archived."""
        return {
            "inputs": [
                {
                    "key": o.plan.identity.key,
                    "head_bytes": o.plan.identity.head_bytes,
                    "path": o.plan.path,
                    "device": o.plan.identity.device,
                    "inode": o.plan.identity.inode,
                    "start": o.plan.start,
                    "end": o.plan.start + o.bytes_read,
                    "lines": o.lines_read,
                }
                for o in outcomes
                if not o.plan.skip_reason
            ]
        }


def _size(path: str) -> int:
    size = commit.file_size(path)
    return 0 if size is None else size


def produced_alert_ids(root: str) -> set[str]:
    """Alert ids that completed runs already raised (so a rerun does not raise them again)."""
    return set(Ledger.load(root).alert_ids)
