"""The file follower: what ``tail -F`` does, and what a checkpointed restart needs on top."""

from __future__ import annotations

import gzip
import os
import shutil

from parsers.follow import HEAD_BYTES, Follower


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def line(i: int) -> bytes:
    return (
        f'10.0.0.{i % 250} - - [01/Dec/2026:10:00:{i % 60:02d} +0000] "GET /page/{i} HTTP/1.1" 200 {i} "-" "curl"\n'
    ).encode()


def lines(a: int, b: int) -> bytes:
    return b"".join(line(i) for i in range(a, b))


def append(path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def text(chunks) -> bytes:
    return b"".join(c.lines.data for c in chunks)


def follower(tmp_path, pattern="access.log*", **kw) -> Follower:
    kw.setdefault("format_spec", "combined")
    return Follower([str(tmp_path / pattern)], **kw)


def test_appended_lines_come_once_in_order_with_offsets_and_line_numbers(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 10))
    f = follower(tmp_path)
    first = f.poll()
    assert text(first) == lines(0, 10)
    assert first[0].lines.offset == 0 and first[0].lines.line_number == 1
    assert f.poll() == []
    append(log, lines(10, 15))
    second = f.poll()
    assert text(second) == lines(10, 15)
    assert second[0].lines.offset == len(lines(0, 10)) and second[0].lines.line_number == 11
    assert second[-1].position.offset == len(lines(0, 15))


def test_partial_line_is_held_until_its_newline(tmp_path):
    log = tmp_path / "access.log"
    whole = line(1)
    append(log, lines(0, 1) + whole[:20])
    f = follower(tmp_path)
    assert text(f.poll()) == lines(0, 1)
    append(log, whole[20:])
    assert text(f.poll()) == whole


def test_partial_line_is_flushed_as_truncated_after_the_idle_time(tmp_path):
    clock = Clock()
    log = tmp_path / "access.log"
    append(log, lines(0, 1) + b"10.0.0.1 - - [01/Dec/2026:10:00")
    f = follower(tmp_path, clock=clock, partial_line_seconds=5)
    assert text(f.poll()) == lines(0, 1)
    clock.now += 4
    assert f.poll() == []
    clock.now += 2
    flushed = f.poll()
    assert [c.truncated for c in flushed] == [True]
    assert flushed[0].lines.data == b"10.0.0.1 - - [01/Dec/2026:10:00"
    assert flushed[0].position.offset == os.path.getsize(log)


def test_new_files_matching_the_glob_are_picked_up(tmp_path):
    append(tmp_path / "access.log", lines(0, 3))
    f = follower(tmp_path)
    f.poll()
    append(tmp_path / "access.log.new", lines(3, 5))
    assert text(f.poll()) == lines(3, 5)
    assert f.followed == 2


def test_rename_and_create_finishes_the_old_file_then_reads_the_new_from_zero(tmp_path):
    clock = Clock()
    log = tmp_path / "access.log"
    append(log, lines(0, 5))
    f = follower(tmp_path, pattern="access.log", clock=clock, rotate_grace_seconds=2)
    assert text(f.poll()) == lines(0, 5)
    with open(log, "ab") as writer:  # the web server keeps writing to its open handle for a moment
        os.rename(log, tmp_path / "access.log.1")
        writer.write(lines(5, 7))
    append(log, lines(100, 103))
    got = f.poll()
    assert text([c for c in got if c.lines.path.endswith("access.log.1")]) == lines(5, 7)
    assert text([c for c in got if c.lines.path.endswith("access.log")]) == lines(100, 103)
    new_chunk = next(c for c in got if c.lines.path.endswith("access.log"))
    assert new_chunk.lines.offset == 0 and new_chunk.lines.line_number == 1
    clock.now += 3
    f.poll()
    assert f.followed == 1  # the renamed file, drained and out of the globs, is let go


def test_copytruncate_restarts_at_zero_and_reads_only_the_unread_tail_of_the_copy(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 20))
    f = follower(tmp_path)
    assert text(f.poll()) == lines(0, 20)
    append(log, lines(20, 25))  # written after our last read, before the copy: only the copy has them
    shutil.copyfile(log, tmp_path / "access.log.1")
    with open(log, "r+b") as fh:
        fh.truncate(0)
    append(log, lines(200, 202))
    got = f.poll()
    assert text([c for c in got if c.lines.path.endswith(".1")]) == lines(20, 25)
    assert text([c for c in got if c.lines.path.endswith("access.log")]) == lines(200, 202)
    assert f.poll() == []


def test_compressed_rotated_copy_of_read_content_is_not_read_again(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 40))
    f = follower(tmp_path)
    assert text(f.poll()) == lines(0, 40)
    os.rename(log, tmp_path / "access.log.1")
    append(log, lines(40, 41))
    assert text(f.poll()) == lines(40, 41)
    with open(tmp_path / "access.log.1", "rb") as src, gzip.open(tmp_path / "access.log.2.gz", "wb") as dst:
        dst.write(src.read())
    os.unlink(tmp_path / "access.log.1")
    assert f.poll() == []
    assert f.poll() == []
    positions = f.positions()
    assert any(p.path.endswith(".gz") and p.finished for p in positions)


def test_compressed_copy_gives_what_was_appended_after_the_last_read(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 40))
    f = follower(tmp_path, pattern="access.log*")
    f.poll()
    saved = f.positions()
    f.close()
    append(log, lines(40, 45))  # the job is down while the file grows, rotates and is compressed
    with open(log, "rb") as src, gzip.open(tmp_path / "access.log.1.gz", "wb") as dst:
        dst.write(src.read())
    os.unlink(log)
    append(log, lines(100, 101))
    g = follower(tmp_path, positions=saved)
    got = g.poll()
    assert text([c for c in got if c.lines.path.endswith(".gz")]) == lines(40, 45)
    assert text([c for c in got if c.lines.path.endswith("access.log")]) == lines(100, 101)


def test_deleted_file_is_drained_then_let_go(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 3))
    f = follower(tmp_path)
    f.poll()
    with open(log, "ab") as writer:
        os.unlink(log)
        writer.write(lines(3, 4))
    assert text(f.poll()) == lines(3, 4)
    assert f.followed == 0


def test_restart_from_positions_resumes_exactly_after_the_last_line(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 30) + line(30)[:10])
    f = follower(tmp_path)
    assert text(f.poll()) == lines(0, 30)
    saved = f.positions()
    f.close()
    append(log, line(30)[10:] + lines(31, 33))
    g = follower(tmp_path, positions=saved)
    got = g.poll()
    assert text(got) == lines(30, 33)
    assert got[0].lines.line_number == 31


def test_restart_after_copytruncate_while_down(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 30))
    f = follower(tmp_path)
    f.poll()
    saved = f.positions()
    assert saved[0].head_len == HEAD_BYTES
    f.close()
    append(log, lines(30, 32))
    shutil.copyfile(log, tmp_path / "access.log.1")
    with open(log, "r+b") as fh:
        fh.truncate(0)
    append(log, lines(300, 340))  # already longer than the old position: only the first bytes tell
    g = follower(tmp_path, positions=saved)
    got = g.poll()
    assert text([c for c in got if c.lines.path.endswith(".1")]) == lines(30, 32)
    assert text([c for c in got if c.lines.path.endswith("access.log")]) == lines(300, 340)


def test_start_at_end_skips_what_was_there_on_first_start(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 10))
    f = follower(tmp_path, start_at_end=True)
    assert f.poll() == []
    append(log, lines(10, 12))
    assert text(f.poll()) == lines(10, 12)


def test_big_appends_are_cut_into_chunks_of_whole_lines(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 2000))
    f = follower(tmp_path, chunk_bytes=10_000)
    got = f.poll()
    assert len(got) > 10
    assert all(c.lines.data.endswith(b"\n") for c in got)
    assert text(got) == lines(0, 2000)
    assert [c.lines.offset for c in got[1:]] == [c.position.offset for c in got[:-1]]


def test_a_copy_seen_while_it_is_still_being_written_is_not_taken_for_new_content(tmp_path):
    log = tmp_path / "access.log"
    append(log, lines(0, 40))
    f = follower(tmp_path)
    assert text(f.poll()) == lines(0, 40)
    saved = f.positions()
    f.close()
    content = log.read_bytes()
    copy = tmp_path / "access.log.1"
    copy.write_bytes(content[:300])  # cp caught half-way, at the restart
    with open(log, "r+b") as fh:
        fh.truncate(0)
    g = follower(tmp_path, positions=saved)
    assert g.poll() == []
    copy.write_bytes(content + lines(40, 42))
    got = g.poll()
    assert text([c for c in got if c.lines.path.endswith(".1")]) == lines(40, 42)


def test_restarts_from_earlier_checkpoints_while_logs_rotate_both_ways_give_every_line_once(tmp_path):
    """Like kill -9: each session resumes from the positions of a random earlier poll, after some downtime."""
    import collections
    import random
    import re
    import time

    from bench.live_writer import LiveWriter

    log = tmp_path / "access.log"
    log.touch()
    writer = LiveWriter(log, 2000, attack_every=100, rotate_every=0.6, seed=4)
    writer.start()
    rng, positions, seen = random.Random(4), None, collections.Counter()
    ends = time.monotonic() + 8
    while time.monotonic() < ends:
        f = Follower([str(log) + "*"], format_spec="combined", positions=positions, rotate_grace_seconds=0.5)
        polls = []
        until = time.monotonic() + rng.uniform(0.05, 0.8)
        while time.monotonic() < until:
            polls.append((f.poll(), f.positions()))
            time.sleep(rng.uniform(0, 0.05))
        kept = rng.randrange(len(polls))
        for chunks, _ in polls[: kept + 1]:
            seen.update(int(n) for c in chunks for n in re.findall(rb'" (?:200|400) (\d+) "', c.lines.data))
        positions = polls[kept][1]
        f.close()
        time.sleep(rng.uniform(0, 1.0))
    writer.stop()
    f = Follower([str(log) + "*"], format_spec="combined", positions=positions, rotate_grace_seconds=0.5)
    for _ in range(30):
        seen.update(int(n) for c in f.poll() for n in re.findall(rb'" (?:200|400) (\d+) "', c.lines.data))
        time.sleep(0.05)
    assert writer.written.rotations["rename"] >= 3 and writer.written.rotations["copytruncate"] >= 3
    assert [n for n in range(writer.written.lines) if seen[n] != 1] == []


def test_content_keeps_one_ledger_name_from_its_first_bytes_the_batch_ledger_recognises(tmp_path):
    from parsers.follow import LEDGER_HEAD_BYTES
    from retention.ledger import HEAD_BYTES as LEDGER_HEAD
    from retention.ledger import ArchivedRange, FileHistory, Ledger

    assert LEDGER_HEAD_BYTES == LEDGER_HEAD
    log = tmp_path / "access.log"
    append(log, lines(0, 3))  # shorter than the ledger's head: named by what there is
    f = follower(tmp_path)
    f.poll()
    (first,) = f.positions()
    append(log, lines(3, 200))
    f.poll()
    (later,) = f.positions()
    assert (later.ledger_sha256, later.ledger_head_bytes) == (first.ledger_sha256, first.ledger_head_bytes)
    assert first.ledger_head_bytes == len(lines(0, 3)) and (later.read_from, later.read_from_line) == (0, 1)
    key = f"{later.ledger_sha256[:32]}-{later.ledger_head_bytes}"
    history = FileHistory(key, later.ledger_head_bytes, [ArchivedRange(0, later.offset, 200, "stream-run")])
    (plan,) = Ledger({key: history}).plan([str(log)], lambda p: open(p, "rb"))  # noqa: SIM115 - the ledger closes it
    assert (plan.start, plan.first_line, plan.earlier_runs) == (later.offset, 201, ("stream-run",))


def test_positions_of_files_that_vanished_while_stopped_are_forgotten_in_time(tmp_path):
    clock = Clock()
    log = tmp_path / "access.log"
    append(log, lines(0, 5))
    first = follower(tmp_path, clock=clock)
    first.poll()
    saved = first.positions()
    first.close()
    log.unlink()  # gone while the job was down: no poll will ever drain it
    again = follower(tmp_path, clock=clock, positions=saved, forget_after_seconds=3600)
    again.poll()
    assert len(again.positions()) == 1
    clock.now += 3601
    again.poll()
    assert again.positions() == []
