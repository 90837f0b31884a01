"""The two tiers of an archive, and which files to read so that a row is seen once across both.

The online tier is what the pipelines write (one partition per day, at the
archive root); the archive tier (``retention.layout.archive_tier_root``) holds
the same rows compacted per segment by ``logwarden retention apply``.  While a
compaction is between its two commits (the segment published, the online
copies not yet removed) a row is in both tiers; the archive segment's manifest
lists the online files it took in (``sources``), and ``tier_files`` leaves
those out, so a reader of both tiers never sees a row twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from retention import commit, layout

ONLINE = "online"
ARCHIVE = "archive"
TIERS = (ONLINE, ARCHIVE)


def month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def tier_root(root: str, tier: str) -> str:
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
    return root if tier == ONLINE else layout.archive_tier_root(root)


def source_record(dataset: str, day: str, name: str, entry: dict) -> dict:
    """How an archive segment's manifest names one online file it took in."""
    return {
        "online": {"dataset": dataset, "day": day, "file": name, "sha256": entry.get("sha256"), "rows": entry["rows"]}
    }


def compacted_sources(root: str, dataset: str) -> set[tuple[str, str, str]]:
    """(day, file name, sha256) of every online file of ``dataset`` already in a live archive segment."""
    tier = layout.archive_tier_root(root)
    found = set()
    if not commit.dataset_exists(tier, dataset):
        return found
    for start in commit.partition_days(tier, dataset):
        view = commit.read_partition(tier, dataset, start)
        if not view.live:
            continue
        for manifest in view.manifests.values():
            for source in manifest.sources:
                online = source.get("online") if isinstance(source, dict) else None
                if online and online.get("dataset") == dataset:
                    found.add((online["day"], online["file"], online.get("sha256")))
    return found


@dataclasses.dataclass(frozen=True)
class TierFile:
    tier: str
    live: commit.LiveFile

    @property
    def path(self) -> str:
        return self.live.path


def tier_files(
    root: str, dataset: str, tiers: tuple[str, ...] = (ONLINE,), trusted: dict[str, bytes] | None = None
) -> list[TierFile]:
    """Live files of ``dataset`` in ``tiers``; with both, online files already compacted are left out.

    ``trusted``: only files of manifests those signers signed (``retention.commit.read_partition``).
    """
    found: list[TierFile] = []
    skip = compacted_sources(root, dataset) if ARCHIVE in tiers and ONLINE in tiers else set()
    for tier in tiers:
        base = tier_root(root, tier)
        if not commit.dataset_exists(base, dataset):
            continue
        for live in commit.live_files(base, dataset, trusted):
            if tier == ONLINE and (live.day, layout.base_name(live.path), live.entry.get("sha256")) in skip:
                continue
            found.append(TierFile(tier, live))
    return found
