"""Which stored aggregates count, decided by the ingest ledger, so re-runs and overlaps never double-count.

The ledger (``retention.ledger``: the records of completed transactions) says
which byte ranges of which file each transaction archived.  Every aggregate row
carries its file's ledger key and the offsets of its first and last line, so a
row counts only when

* the transaction that stored it completed: a run killed before its commit
  point (withdrawn by ``recover``) or still running counts nothing, and a run
  that archived nothing new has no range to own anything with;
* every one of its lines belongs to the row's owner.  A byte belongs to whoever
  read it last: the owner of the latest completed range covering it.

A batch range is owned by its run.  Every stream cut is owned by one owner, the
stream (``STREAM_OWNER``), because a stream's report windows span cuts and
restarts.  "Whoever read it last" makes a ``--reprocess`` run, which reads and
archives a file whole again (after a parser or enrichment change, typically),
the owner of what it re-read: the earlier readings' figures for those lines are
set aside, so the report shows the fresh reading once.  A plain re-run reads
only what no completed run archived, and a grown file's new bytes are a new
range, so those never overlap.

A row whose lines are split between owners (a later run re-read only part of
it) cannot be divided: it is left out and counted in ``partial`` so the report
can warn that figures may be low; rows with lines no range holds (stored
outside a ledgered run) are left out and counted in ``unledgered``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

#: Owner (and stored ``run_id``) of every stream part.
STREAM_OWNER = "stream"


@dataclasses.dataclass(frozen=True)
class LedgerRange:
    """Bytes ``[start, end)`` of the file ``key``, read by ``owner``; ``order`` sorts by completion."""

    owner: str
    key: str
    start: int
    end: int
    order: tuple


def ledger_ranges(records: Mapping[str, dict]) -> list[LedgerRange]:
    """The non-empty ranges of completed transaction records (``commit.completed_transactions``)."""
    ranges = []
    for txn, record in records.items():
        owner = STREAM_OWNER if record.get("kind") == "stream" else txn
        order = (str(record.get("completed", "")), int(record.get("completed_ns", 0)), txn)
        for item in record.get("inputs", ()):
            start, end = int(item["start"]), int(item["end"])
            if end > start:
                ranges.append(LedgerRange(owner, str(item["key"]), start, end, order))
    return ranges


@dataclasses.dataclass(frozen=True)
class OwnerSegments:
    """One file's bytes as disjoint segments ``[bounds[i], bounds[i+1])``, each owned by ``owners[i]`` (or None)."""

    bounds: np.ndarray
    owners: list[str | None]

    @classmethod
    def of(cls, ranges: Iterable[LedgerRange]) -> OwnerSegments:
        ranges = sorted(ranges, key=lambda r: r.order, reverse=True)  # latest first: it keeps what it covers
        bounds = np.unique(np.array([b for r in ranges for b in (r.start, r.end)], np.int64))
        names = sorted({r.owner for r in ranges})
        code = np.full(max(len(bounds) - 1, 0), -1, np.int64)
        for r in ranges:
            lo, hi = np.searchsorted(bounds, [r.start, r.end])
            piece = code[lo:hi]
            piece[piece < 0] = names.index(r.owner)
        keep = np.r_[True, code[1:] != code[:-1]] if len(code) else np.zeros(0, bool)
        return cls(
            np.r_[bounds[:-1][keep], bounds[-1:]] if len(code) else bounds,
            [names[c] if c >= 0 else None for c in code[keep]],
        )

    def segment_of(self, offsets: np.ndarray) -> np.ndarray:
        """Index of the segment holding each offset; -1 outside every segment."""
        where = np.searchsorted(self.bounds, offsets, side="right") - 1
        where[(where >= len(self.owners)) | (offsets < 0)] = -1
        return where


@dataclasses.dataclass
class Ownership:
    counted: np.ndarray  # one bool per row
    owners: set[str]  # owners with counted rows
    superseded: int = 0  # rows whose lines a later reading owns
    partial: int = 0  # rows left out although only part of their lines are another's
    unledgered: int = 0  # rows with lines the ledger gives to nobody (stored outside a ledgered run)
    unfinished: set[str] = dataclasses.field(default_factory=set)  # stored transactions that never completed


def decide(
    publishers: Iterable[str],
    owners: Iterable[str],
    sources: Iterable[str],
    first_offsets: np.ndarray,
    last_offsets: np.ndarray,
    records: Mapping[str, dict],
) -> Ownership:
    """Which aggregate rows count, given each row's publishing transaction (the store file's id), owner
    (``run_id``), source (ledger key) and line offsets, and the completed transaction records."""
    publishers, owners, sources = list(publishers), list(owners), list(sources)
    first, last = np.asarray(first_offsets, np.int64), np.asarray(last_offsets, np.int64)
    ranges = ledger_ranges(records)
    ledgered_stream = any(r.owner == STREAM_OWNER for r in ranges)
    counted = np.zeros(len(owners), bool)
    unfinished = set()
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, (publisher, owner, source) in enumerate(zip(publishers, owners, sources)):
        if owner == STREAM_OWNER and not ledgered_stream:
            counted[i] = True  # parts of a stream from before the ledger recorded cuts: its checkpoint counted once
        elif publisher not in records:
            unfinished.add(publisher)
        else:
            by_source[source].append(i)
    ranges_of: dict[str, list[LedgerRange]] = defaultdict(list)
    for r in ranges:
        ranges_of[r.key].append(r)
    superseded = partial = unledgered = 0
    for source, rows in by_source.items():
        if source not in ranges_of:
            unledgered += len(rows)
            continue
        segments = OwnerSegments.of(ranges_of[source])
        rows = np.array(rows)
        lo, hi = segments.segment_of(first[rows]), segments.segment_of(last[rows])
        holder = np.array([segments.owners[s] if s >= 0 else None for s in lo], object)
        whole = (lo == hi) & (lo >= 0)
        mine = whole & (holder == np.array([owners[i] for i in rows], object))
        counted[rows[mine]] = True
        nobody = (lo < 0) | (hi < 0) | (whole & (holder == None))  # noqa: E711 (elementwise)
        superseded += int((whole & ~mine & ~nobody).sum())
        unledgered += int(nobody.sum())
        partial += int((~whole & ~nobody).sum())
    owners_counted = {o for o, c in zip(owners, counted) if c}
    return Ownership(counted, owners_counted, superseded, partial, unledgered, unfinished)
