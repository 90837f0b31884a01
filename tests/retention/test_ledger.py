"""The ingest ledger: files known by content (renamed, rotated, compressed), read from where earlier runs stopped."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from parsers.reader import iter_chunks
from parsers.splits import FileRange, read_range
from retention import commit
from retention.ledger import FileOutcome, Ledger, produced_alert_ids


def open_raw(path: str):
    return open(path, "rb")


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(b"10.0.0.%d - - [05/Jan/2026:10:00:00 +0000] \"GET /%d HTTP/1.1\" 200 1\n" % (i % 250, i)
                    for i in range(start, start + n))  # fmt: skip


def complete(root: Path, txn: str, plans, reads: dict[str, tuple[int, int]], alert_ids=()) -> None:
    """Record a run that read ``reads[path] = (bytes, lines)`` past each plan's start."""
    outcomes = [FileOutcome(p, *reads.get(p.path, (0, 0))) for p in plans]
    commit.begin_transaction(str(root), txn)
    commit.complete_transaction(str(root), txn, {**Ledger.record(outcomes), "alert_ids": list(alert_ids)})


@pytest.fixture
def archive(tmp_path) -> Path:
    return tmp_path / "out"


def test_a_rerun_plans_nothing_and_says_which_run_archived_it(tmp_path, archive):
    log = tmp_path / "access.log"
    log.write_bytes(lines(100))
    [plan] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    assert (plan.start, plan.first_line, plan.end, plan.earlier_runs) == (0, 1, log.stat().st_size, ())
    complete(archive, "run1", [plan], {str(log): (log.stat().st_size, 100)})
    [again] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    assert again.nothing_to_read and again.earlier_runs == ("run1",)
    assert FileOutcome(again, 0, 0).message() == "access.log: already archived by run run1; 0 new lines"


def test_a_grown_file_is_read_from_where_the_last_run_stopped(tmp_path, archive):
    log = tmp_path / "access.log"
    log.write_bytes(lines(100))
    size = log.stat().st_size
    [plan] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    complete(archive, "run1", [plan], {str(log): (size, 100)})
    with log.open("ab") as handle:
        handle.write(lines(5, start=100))
    [grown] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    assert (grown.start, grown.first_line, grown.end) == (size, 101, log.stat().st_size)
    with open(log, "rb") as raw:
        [chunk] = read_range(raw, FileRange(str(log), grown.start, grown.end, grown.first_line, "combined"))
    assert chunk.data == lines(5, start=100) and chunk.offset == size and chunk.line_number == 101


def test_renamed_and_compressed_copies_are_the_same_file(tmp_path, archive):
    log = tmp_path / "access.log"
    log.write_bytes(lines(300))
    [plan] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    complete(archive, "run1", [plan], {str(log): (log.stat().st_size, 300)})
    full = lines(300) + lines(50, start=300)  # rotated after 50 more lines, then compressed
    rotated = tmp_path / "access.log.1.gz"
    rotated.write_bytes(gzip.compress(full))
    log.unlink()
    [plan] = Ledger.load(str(archive)).plan([str(rotated)], open_raw)
    assert plan.earlier_runs == ("run1",) and plan.start == len(lines(300)) and plan.end is None
    with open(rotated, "rb") as raw:
        chunks = list(read_range(raw, FileRange(str(rotated), plan.start, None, plan.first_line, "combined")))
    assert b"".join(c.data for c in chunks) == lines(50, start=300)
    assert chunks[0].offset == len(lines(300)) and chunks[0].line_number == 301


def test_the_same_content_twice_in_one_run_is_read_once(tmp_path, archive):
    (tmp_path / "a.log").write_bytes(lines(100))
    (tmp_path / "a.log.1").write_bytes(lines(100))
    first, second = Ledger.load(str(archive)).plan([str(tmp_path / "a.log"), str(tmp_path / "a.log.1")], open_raw)
    assert not first.nothing_to_read
    assert second.nothing_to_read and "same content as a.log" in second.skip_reason


def test_a_small_file_that_grows_past_the_head_is_still_recognised(tmp_path, archive):
    log = tmp_path / "small.log"
    log.write_bytes(lines(3))
    [plan] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    assert plan.identity.head_bytes == log.stat().st_size < 4096
    complete(archive, "run1", [plan], {str(log): (log.stat().st_size, 3)})
    with log.open("ab") as handle:
        handle.write(lines(200, start=3))
    [grown] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    assert grown.earlier_runs == ("run1",) and grown.first_line == 4


def test_reprocess_reads_everything_and_an_open_run_counts_for_nothing(tmp_path, archive):
    log = tmp_path / "access.log"
    log.write_bytes(lines(10))
    [plan] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    commit.begin_transaction(str(archive), "killed")  # never completed
    assert Ledger.load(str(archive)).plan([str(log)], open_raw)[0].start == 0
    complete(archive, "run1", [plan], {str(log): (log.stat().st_size, 10)}, alert_ids=["a1", "a2"])
    [forced] = Ledger.load(str(archive)).plan([str(log)], open_raw, reprocess=True)
    assert forced.start == 0 and not forced.nothing_to_read
    assert produced_alert_ids(str(archive)) == {"a1", "a2"}


def test_device_and_inode_are_recorded_for_local_files(tmp_path, archive):
    log = tmp_path / "access.log"
    log.write_bytes(lines(10))
    [plan] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    assert (plan.identity.device, plan.identity.inode) == (os.stat(log).st_dev, os.stat(log).st_ino)
    with open(log, "rb") as raw:
        [chunk] = iter_chunks(raw, str(log), skip_bytes=len(lines(4)))
    assert chunk.data == lines(6, start=4)


def test_one_reading_of_each_record_says_what_was_archived_and_which_alerts_were_raised(tmp_path, archive, monkeypatch):
    """A batch run starts by reading every completed run's record: once, not once more for the alert ids."""
    log = tmp_path / "access.log"
    log.write_bytes(lines(10))
    [plan] = Ledger.load(str(archive)).plan([str(log)], open_raw)
    complete(archive, "run1", [plan], {str(log): (log.stat().st_size, 10)}, alert_ids=["a1", "a2"])
    complete(archive, "run2", [plan], {}, alert_ids=["a3"])
    reads, read_bytes = [], commit.read_bytes
    monkeypatch.setattr(commit, "read_bytes", lambda path: reads.append(path) or read_bytes(path))
    ledger = Ledger.load(str(archive))
    assert ledger.alert_ids == {"a1", "a2", "a3"} == produced_alert_ids(str(archive))
    assert ledger.plan([str(log)], open_raw)[0].nothing_to_read
    assert len(reads) == 2 * 2  # two records, for the ledger and again for produced_alert_ids above
