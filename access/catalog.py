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

from retention import commit, layout

TIERS = ("online", "all")
#: Where retention keeps the compacted archive tier: a sub-root with the same layout.
ARCHIVE_TIER = "archive"


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
        roots.append((archive / ARCHIVE_TIER, True))
    return [(root, compacted) for root, compacted in roots if (root / dataset).is_dir()]


def published_files(
    archive: str | Path,
    dataset: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    tier: str = "online",
    destroyed: set[str] = frozenset(),
) -> Iterator[ArchiveFile]:
    """Files of ``dataset`` whose partition day is within [start, end], oldest first; shredded months left out.

    A partition of the archive tier is named by its first day and holds up to a week, so those starting up to
    six days before ``start`` are included too (the search filters their rows by time).
    """
    layout.check_dataset(dataset)
    found = []
    for root, compacted in dataset_roots(Path(archive), dataset, tier):
        slack = dt.timedelta(days=6 if compacted else 0)
        for day in commit.partition_days(str(root), dataset):
            if layout.month_of_day(day) in destroyed:
                continue
            date = dt.date.fromisoformat(day)
            if (start and date + slack < start) or (end and date > end):
                continue
            view = commit.read_partition(str(root), dataset, day)
            for name, entry in view.live.items():
                found.append(ArchiveFile(Path(view.path(name)), dataset, day, entry, compacted))
    yield from sorted(found, key=lambda f: (f.day, str(f.path)))
