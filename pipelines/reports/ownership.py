"""Which run's aggregates count for each input source, so re-runs and overlaps never double-count.

Every run records, per input source (a fingerprint of the file's first
decompressed bytes) the byte range of the lines it counted.  A run's figures
for a source are set aside when another run counted a range containing it (the
same file read again after it grew, or rotated and compressed); of runs with
the same range the latest wins.  Ranges that only partly overlap cannot be told
apart at this level: both are kept and reported, so the caller can warn.  (The
ingest ledger of the one-graph work will say per line which run owns it; this
rule is what can be decided from the aggregates alone.)
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class SourceRange:
    run_id: str
    source: str
    first_offset: int
    last_offset: int

    def contains(self, other: SourceRange) -> bool:
        return self.first_offset <= other.first_offset and self.last_offset >= other.last_offset

    def overlaps(self, other: SourceRange) -> bool:
        return self.first_offset <= other.last_offset and other.first_offset <= self.last_offset


@dataclasses.dataclass
class Ownership:
    owners: set[tuple[str, str]]  # (run_id, source) pairs whose rows count
    superseded: set[tuple[str, str]]
    partial_overlaps: list[tuple[SourceRange, SourceRange]]


def _superseded_by(candidate: SourceRange, other: SourceRange) -> bool:
    if other.run_id == candidate.run_id or not other.contains(candidate):
        return False
    same = candidate.contains(other)
    return not same or other.run_id > candidate.run_id  # run ids sort by start time


def decide_owners(ranges: Iterable[SourceRange]) -> Ownership:
    """Owners among the ``(run, source)`` ranges of an aggregate store."""
    by_source: dict[str, list[SourceRange]] = defaultdict(list)
    for r in ranges:
        by_source[r.source].append(r)
    owners, superseded, partial = set(), set(), []
    for candidates in by_source.values():
        kept = []
        for candidate in candidates:
            if any(_superseded_by(candidate, other) for other in candidates):
                superseded.add((candidate.run_id, candidate.source))
            else:
                kept.append(candidate)
        owners.update((r.run_id, r.source) for r in kept)
        partial += [(a, b) for i, a in enumerate(kept) for b in kept[i + 1 :] if a.overlaps(b)]
    return Ownership(owners, superseded, partial)
