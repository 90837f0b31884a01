"""Archives with a known number of rows per day, written as the pipeline writes them, and what their tiers hold."""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
from pathlib import Path

import pyarrow as pa

from retention import commit, layout
from retention.apply import RetentionRun
from retention.archive_reader import open_archive
from retention.policy import Policy
from retention.tiers import ARCHIVE, ONLINE, tier_files
from schemas import DEAD_LETTER
from tests.retention.conftest import access_batch, combined_lines, write_partition

POLICY = Policy(online_days=90, archive_days=365)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
BOTH = (ONLINE, ARCHIVE)


def rows_on(day: dt.date) -> int:
    """How many events the simulated site logs on ``day`` (varies, so a lost or doubled day shows)."""
    return 2 + day.toordinal() % 4


def write_day(root: Path, writer, day: dt.date, dead_letters: bool = False) -> None:
    batch = access_batch(combined_lines(MONTHS[day.month - 1], day.year, (day.day,), repeat=rows_on(day)))
    write_partition(root, writer, day.isoformat(), batch, commit_id=f"ingest{day:%Y%m%d}")
    if dead_letters:
        bad = pa.RecordBatch.from_pylist(
            [
                {
                    "raw": f"garbage {day}".encode(),
                    "log_file_path": "/logs/access.log",
                    "log_offset": 0,
                    "line_number": 1,
                    "reason": "test",
                    "event_dataset": "access",
                }
            ],
            schema=DEAD_LETTER,
        )
        write_partition(root, writer, day.isoformat(), bad, commit_id=f"dl{day:%Y%m%d}", dataset="dead_letters")


def events_by_day(root: Path, reader) -> collections.Counter:
    """Rows per event day across both tiers, decrypted (each row once)."""
    table = open_archive(root, reader, "events", tiers=BOTH).to_table(columns=["timestamp"])
    days = table.column("timestamp").to_pylist()
    return collections.Counter(t.date() for t in days)


def manifest_rows(root: Path, dataset: str = "events") -> dict[str, int]:
    """Rows per (tier, partition day) that the manifests list: a cheap view of where everything is."""
    found: dict[str, int] = collections.defaultdict(int)
    for item in tier_files(str(root), dataset, BOTH):
        found[f"{item.tier}:{item.live.day}"] += int(item.live.entry["rows"])
    return dict(found)


def tree(*roots: Path) -> dict[str, bytes]:
    """Every file under ``roots`` with its bytes (for byte-for-byte comparisons)."""
    found = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def run_retention(root: Path, reader, now: dt.date, hook=None):
    return RetentionRun(str(root), reader, POLICY, now, hook=hook).run()


def run_killed(root: Path, reader, now: dt.date, kill_at: int) -> int:
    """Run retention in a forked child that SIGKILLs itself at its ``kill_at``-th step; returns its exit code."""
    import multiprocessing

    def child():
        seen = [0]

        def hook(step, detail):
            seen[0] += 1
            if seen[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        run_retention(root, reader, now, hook)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join()
    return process.exitcode


def leftovers(root: Path) -> list[str]:
    """What recovery would still remove in either tier (nothing, once a run has converged)."""
    found = []
    for base in (str(root), layout.archive_tier_root(str(root))):
        report = commit.recover(base, dry_run=True)
        found += report.orphans + report.retired + report.staging
    return found
