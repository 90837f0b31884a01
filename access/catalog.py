"""Which archive files a read must open: published files by dataset, tier and day, with their manifest entries.

Only files a manifest lists are returned (an orphan is never read), in day
order, so a search streams oldest first and ``--limit`` stops early.  Each
file's blind index lives beside its partition's manifests as
``_index-<file name>.lwi``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

from retention.parquet_files import DATASETS

TIERS = ("online", "all")


@dataclasses.dataclass(frozen=True)
class ArchiveFile:
    path: Path
    dataset: str
    day: str  # the partition's first day (YYYY-MM-DD)
    entry: dict  # the manifest entry: rows, size, sha256, key_ids

    @property
    def month(self) -> str:
        return self.day[:7]

    @property
    def personal_key_id(self) -> str | None:
        return next((k for k in self.entry.get("key_ids", ()) if k.startswith("personal-")), None)

    @property
    def index_path(self) -> Path:
        return self.path.with_name(f"_index-{self.path.name}.lwi")


def _manifest_entries(partition: Path) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    for manifest in sorted(partition.glob("_manifest-*.json")):
        try:
            for entry in json.loads(manifest.read_text(encoding="utf-8"))["files"]:
                entries[entry["file"]] = entry
        except (ValueError, KeyError, TypeError):
            continue  # archive verify reports damaged manifests; a read skips what it cannot trust
    return entries


def _partition_day(partition: Path) -> str | None:
    day = partition.name.removeprefix("dt=")
    try:
        dt.date.fromisoformat(day)
    except ValueError:
        return None
    return day


def dataset_roots(archive: Path, dataset: str, tier: str) -> list[Path]:
    """The directories holding ``dataset``'s partitions in ``tier`` (``all`` adds the compacted archive tier)."""
    roots = [archive / dataset]
    if tier == "all":
        roots.append(archive / "archive" / dataset)
    return [root for root in roots if root.is_dir()]


def published_files(
    archive: str | Path,
    dataset: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    tier: str = "online",
    destroyed: set[str] = frozenset(),
) -> Iterator[ArchiveFile]:
    """Files of ``dataset`` whose partition day is within [start, end], oldest first; shredded months left out."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}")
    found = []
    for root in dataset_roots(Path(archive), dataset, tier):
        for partition in root.glob("dt=*"):
            day = _partition_day(partition)
            if day is None or day[:7] in destroyed:
                continue
            date = dt.date.fromisoformat(day)
            if (start and date < start) or (end and date > end):
                continue
            entries = _manifest_entries(partition)
            for path in partition.glob("*.parquet"):
                entry = entries.get(path.name)
                if entry is not None:
                    found.append(ArchiveFile(path, dataset, day, entry))
    yield from sorted(found, key=lambda f: (f.day, str(f.path)))
