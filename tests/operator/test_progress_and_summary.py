"""Issue 16 §3: a progress display on a terminal, quiet otherwise, quiet Beam workers, a fuller summary."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

from bench.generate import generate
from pipelines import progress
from tests.operator.helpers import ACCESS_LOG, EXAMPLES, ROOT, env, logwarden, write_config


def run_on_a_terminal(args: list, cwd) -> tuple[int, str]:
    """``logwarden ARGS`` with stderr on a pseudo-terminal, as an operator watching it sees it."""
    master, slave = pty.openpty()
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *map(str, args)],
        stdout=subprocess.DEVNULL, stderr=slave, env={**env(), "COLUMNS": "80", "TERM": "xterm"}, cwd=cwd,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            seen += chunk
        elif job.poll() is not None:
            break
    code = job.wait(timeout=300)
    os.close(master)
    return code, seen.decode("utf-8", "replace")


def test_a_terminal_gets_a_progress_display_with_lines_rate_and_alerts(tmp_path):
    log = tmp_path / "big.log"
    generate(log, lines=150_000, attack_ratio=0.01, days=1, seed=3)
    code, seen = run_on_a_terminal(
        ["batch", "--input", log, "--output", tmp_path / "out", "--format", "combined", "-c", write_config(tmp_path)],
        tmp_path,
    )
    assert code == 0, seen[-2000:]
    assert "lines/s" in seen and "files 1/1" in seen and " alerts" in seen and "MB" in seen, seen[-2000:]
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", seen)
    # an 80-column terminal shows every number whole (rich would cut the widest column with an ellipsis)
    assert re.search(r"/[\d.]+ MB files 1/1 +[\d,]+ lines +[\d,]+ lines/s +\d+ alerts", plain), plain[-2000:]
    assert "logwarden batch" in seen  # the summary follows the display


def test_a_pipe_gets_no_progress_display_but_a_fuller_summary(tmp_path):
    config = write_config(tmp_path)
    done = logwarden("batch", "--input", EXAMPLES / "logs", "--output", tmp_path / "out", "-c", config)
    assert done.returncode == 0, done.stderr
    assert "━" not in done.stderr and not re.search(r"lines/s +\d+ alerts", done.stderr)
    assert "events from       2026-10-31 00:00:00 .. 2026-11-01 23:59:20 UTC" in done.stderr
    assert f"2000 lines  combined         {ACCESS_LOG}" in done.stderr
    assert "dead letters              2 x expected" in done.stderr
    assert f"alerts kept in    {tmp_path / 'out'}/alerts/ (encrypted" in done.stderr
    assert "reports           " in done.stderr


def test_multi_processing_workers_do_not_flood_stderr(tmp_path):
    done = logwarden(
        "batch", "--input", ACCESS_LOG, "--output", tmp_path / "out", "-c", write_config(tmp_path),
        "--direct_num_workers", "2", "--direct_running_mode", "multi_processing",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    beam_lines = [line for line in done.stderr.splitlines() if not line.startswith(("logwarden", "  "))]
    assert len(beam_lines) <= 8, beam_lines  # was about 60 (each worker's INFO start-up and shut-down)


def test_the_collector_sums_what_workers_append(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path))
    from parsers.lines import LineChunk
    from parsers.registry import parse_chunk

    data = ACCESS_LOG.read_bytes()[:5000]
    data = data[: data.rfind(b"\n") + 1] + b"garbage line\n"
    result = parse_chunk(LineChunk("/x/access.log", 0, 1, data, "combined"))
    progress.record_chunk("/x/access.log", "combined", len(data), result)
    progress.record_alerts(3)
    progress._close_handles()
    totals = progress.Collector(tmp_path).poll()
    assert (totals.bytes, totals.lines, totals.dead, totals.alerts) == (len(data), result.lines_read, 1, 3)
    assert totals.files["/x/access.log"].format == "combined"
    assert progress.time_range(totals).endswith("UTC")
    assert ROOT.is_dir()
