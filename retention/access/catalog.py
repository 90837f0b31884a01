"""Which archive files a read must open: published files by dataset, tier and day, with their manifest entries.

Only files the partitions' manifests list and no later commit removed are
returned (``retention.commit.read_partition``: an orphan is never read), in day
order, so a search streams oldest first and ``--limit`` stops early.  Each
file's blind index lives beside its partition's manifests as
``_index-<file name>.lwi``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from retention import commit, layout, tiers

TIERS = ("online", "all")


@dataclasses.dataclass(frozen=True)
class ArchiveFile:
    path: Path
    dataset: str
    day: str  # the partition's first day (YYYY-MM-DD)
    entry: dict  # the manifest entry: rows, size, sha256, key_ids
    compacted: bool = False  # in the archive tier: the partition holds several days

    @property
    def root(self) -> Path:
        """The layout root the file's partition belongs to (the archive, or its archive tier)."""
        return self.path.parent.parent.parent

    @property
    def month(self) -> str:
        return self.day[:7]

    @property
    def personal_key_id(self) -> str | None:
        return next((k for k in self.entry.get("key_ids", ()) if k.startswith("personal-")), None)

    @property
    def index_path(self) -> Path:
        return self.path.with_name(f"_index-{self.path.name}.lwi")


def dataset_roots(archive: Path, dataset: str, tier: str) -> list[tuple[Path, bool]]:
    """(root, is the archive tier) of the layouts holding ``dataset`` in ``tier`` (``all`` adds the archive tier)."""
    roots = [(archive, False)]
    if tier == "all":
        roots.append((Path(layout.archive_tier_root(str(archive))), True))
    return [(root, compacted) for root, compacted in roots if (root / dataset).is_dir()]


def half_compacted(archive: str | Path, dataset: str) -> set[tuple[str, str, str]]:
    """Online files already copied into an archive segment whose compaction has not removed them yet."""
    copied = tiers.compacted_sources(str(archive), dataset)
    if not copied or not commit.dataset_exists(str(archive), dataset):
        return set()
    live = {(f.day, layout.base_name(f.path), f.entry.get("sha256")) for f in commit.live_files(str(archive), dataset)}
    return copied & live


def published_files(
    archive: str | Path,
    dataset: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    tier: str = "online",
    destroyed: set[str] = frozenset(),
) -> Iterator[ArchiveFile]:
    """Files of ``dataset`` whose partition day is within [start, end], oldest first; shredded months left out.

    A partition of the archive tier is a segment (up to a week, named by its first day), included when any of
    its days is in range (the search filters its rows by time).  With both tiers, online files that a compaction
    already copied into a segment are left out (``retention.tiers``), so no row is read twice.
    """
    layout.check_dataset(dataset)
    found = []
    skip = half_compacted(archive, dataset) if tier == "all" else set()
    for root, compacted in dataset_roots(Path(archive), dataset, tier):
        for day in commit.partition_days(str(root), dataset):
            if layout.month_of_day(day) in destroyed:
                continue
            first = dt.date.fromisoformat(day)
            last = layout.segment_days(first)[-1] if compacted else first
            if (start and last < start) or (end and first > end):
                continue
            view = commit.read_partition(str(root), dataset, day)
            for name, entry in view.live.items():
                if (day, name, entry.get("sha256")) not in skip:
                    found.append(ArchiveFile(Path(view.path(name)), dataset, day, entry, compacted))
    yield from sorted(found, key=lambda f: (f.day, str(f.path)))
