"""Bounded resources on input: a maximum line length, regular files only, links not followed by default."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import socket
import subprocess
import sys

import pytest

from parsers.reader import iter_chunks
from parsers.registry import parse_chunk
from parsers.splits import FileRange, read_range
from pipelines.batch import run_batch
from pipelines.inputs import InputError, list_files, open_local
from pipelines.options import pipeline_options
from tests.conftest import ROOT

LINE = b'198.51.100.1 - - [01/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 1 "-" "ua"\n'


class _Endless(io.RawIOBase):
    """``size`` bytes without a single newline, produced on demand (like a huge line)."""

    def __init__(self, size: int):
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._left)
        buffer[:n] = b"A" * n
        self._left -= n
        return n


def test_long_line_is_cut_kept_as_dead_letter_and_offsets_stay_exact():
    data = LINE * 3 + b"x" * 5000 + b"\n" + LINE
    results = [
        parse_chunk(c) for c in iter_chunks(io.BytesIO(data), "a.log", 256, format_spec="combined", max_line_bytes=100)
    ]
    assert sum(r.lines_read for r in results) == 5 and sum(r.lines_truncated for r in results) == 1
    dead = [d for r in results for d in r.dead_letters.to_pylist()]
    assert [(d["line_number"], d["log_offset"], len(d["raw"])) for d in dead] == [(4, 3 * len(LINE), 100)]
    assert "5000 bytes" in dead[0]["reason"] and "max_line_bytes" in dead[0]["reason"]
    offsets = [o for r in results for o in r.events.column("log_offset").to_pylist()]
    assert offsets == [0, len(LINE), 2 * len(LINE), 3 * len(LINE) + 5001]


@pytest.mark.parametrize("compressed", [False, True])
def test_a_range_resumed_past_the_start_cuts_long_lines_too_plain_or_gzip(tmp_path, compressed):
    """The ledger resumes a grown file at an offset (a .gz one by skipping decompressed bytes): same limit."""
    data = LINE * 3 + b"x" * 5000 + b"\n" + LINE
    path = tmp_path / ("a.log.gz" if compressed else "a.log")
    path.write_bytes(gzip.compress(data) if compressed else data)
    start = len(LINE)
    with open(path, "rb") as raw:
        chunks = list(read_range(raw, FileRange(str(path), start, None, 2, "combined"), 256, max_line_bytes=100))
    results = [parse_chunk(c) for c in chunks]
    assert sum(r.lines_read for r in results) == 4 and sum(r.lines_truncated for r in results) == 1
    assert sum(c.span for c in chunks) == len(data) - start  # what the ledger records as read
    offsets = [o for r in results for o in r.events.column("log_offset").to_pylist()]
    assert offsets == [len(LINE), 2 * len(LINE), 3 * len(LINE) + 5001]


def _peak_rss_mib_reading_one_line(size: int) -> float:
    """Peak RSS of a child process that reads one ``size``-byte line without a newline (1 MiB of it kept)."""
    code = (
        "import io, resource, sys\n"
        "from tests.hardening.test_bounded_input import _Endless\n"
        "from parsers.reader import iter_chunks\n"
        "from parsers.registry import parse_chunk\n"
        f"chunks = iter_chunks(io.BufferedReader(_Endless({size})), 'a.log', format_spec='combined')\n"
        "r = [parse_chunk(c) for c in chunks]\n"
        "assert sum(x.lines_truncated for x in r) == 1, r\n"
        "assert len(r[0].dead_letters.column('raw')[0].as_py()) == 1 << 20\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return int(out.stdout.strip()) / 1024


def test_a_512_mb_line_costs_bounded_memory():
    """A 512 MB line costs what a 2 MiB one does: memory is bounded by max_line_bytes, not by the line.

    Compared with the same child reading a 2 MiB line, because the imports' own footprint differs between
    machines and virtualenvs; before the limit, the 512 MB line alone took 4.3 GB.
    """
    small = _peak_rss_mib_reading_one_line(2 << 20)
    huge = _peak_rss_mib_reading_one_line(512 << 20)
    assert huge - small < 64, f"peak RSS {huge:.0f} MiB for a 512 MB line against {small:.0f} MiB for 2 MiB"


def test_fifo_device_and_socket_are_refused_clearly(tmp_path):
    fifo = tmp_path / "pipe.log"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        list_files([str(fifo)])
    with pytest.raises(InputError, match="FIFO"):
        open_local(str(fifo))  # must not block
    with pytest.raises(InputError, match="character device"):
        list_files(["/dev/zero"])
    sock_path = tmp_path / "s.log"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        with pytest.raises(InputError, match="socket"):
            list_files([str(sock_path)])
    finally:
        server.close()


def test_directory_with_a_fifo_is_refused_before_any_work(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "access.log").write_bytes(LINE)
    os.mkfifo(tmp_path / "logs" / "trap.log")
    with pytest.raises(InputError, match=r"trap\.log.*FIFO"):
        list_files([str(tmp_path / "logs")])


def _planted_link(tmp_path):
    """A log folder holding one real log and ``planted.log``, a link to a secret (a stand-in for /etc/shadow)."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret:19000:0:99999:7:::\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_bytes(LINE)
    (logs / "planted.log").symlink_to(secret)
    return logs


def test_symlinks_are_not_followed_unless_asked(tmp_path, archive_config):
    logs = _planted_link(tmp_path)
    with pytest.raises(InputError, match="symbolic link"):
        list_files([str(logs)])
    with pytest.raises(InputError, match="symbolic link"):
        open_local(str(logs / "planted.log"))
    assert len(list_files([str(logs)], follow_symlinks=True)) == 2
    (tmp_path / "zero.log").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="character device"):
        list_files([str(tmp_path / "zero.log")], follow_symlinks=True)


def test_batch_counts_cut_lines(tmp_path, archive_config):
    log = tmp_path / "access.log"
    log.write_bytes(LINE + b"GET /" + b"a" * 3000 + b"\n" + LINE)
    config = dataclasses.replace(archive_config, input=dataclasses.replace(archive_config.input, max_line_bytes=1000))
    result = run_batch([str(log)], str(tmp_path / "out"), config, pipeline_options([], config.runner))
    c = result.counts
    assert (c.lines_read, c.lines_parsed, c.lines_dead_lettered, c.lines_truncated) == (3, 2, 1, 1)
    assert c.balanced


def test_cli_refuses_a_planted_link_with_a_clear_message(tmp_path):
    (tmp_path / "planted.log").symlink_to("/etc/hostname")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "batch",
            "-i",
            str(tmp_path / "planted.log"),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "symbolic link" in done.stderr and "--follow-symlinks" in done.stderr and "Traceback" not in done.stderr


def test_the_stream_follows_neither_a_planted_link_nor_a_fifo_in_its_directory(tmp_path, caplog):
    """``logwarden stream -i DIR`` followed a link to a secret (a stand-in for /etc/shadow) and archived it."""
    from parsers.follow import Follower

    logs = _planted_link(tmp_path)
    os.mkfifo(logs / "trap.log")
    follower = Follower([str(logs)], format_spec="combined")
    with caplog.at_level("WARNING", logger="logwarden"):
        read = b"".join(c.lines.data for c in follower.poll() + follower.poll())
    assert read == LINE and follower.followed == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("planted.log is a symbolic link" in w and "--follow-symlinks" in w for w in warnings) == 1  # once
    assert sum("trap.log is a FIFO" in w for w in warnings) == 1
    followed = Follower([str(logs)], format_spec="combined", follow_symlinks=True)
    assert b"root:$6$secret" in b"".join(c.lines.data for c in followed.poll())


def test_the_stream_refuses_a_named_link_or_fifo_before_any_work(tmp_path):
    (tmp_path / "planted.log").symlink_to("/etc/hostname")
    os.mkfifo(tmp_path / "pipe.log")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, words in [("planted.log", ["symbolic link", "--follow-symlinks"]), ("pipe.log", ["FIFO"])]:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "stream", "-i", str(tmp_path / name), "-o", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert all(w in done.stderr for w in words) and "Traceback" not in done.stderr, done.stderr[-2000:]
