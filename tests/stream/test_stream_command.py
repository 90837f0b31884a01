"""``logwarden stream`` as an operator runs it: a service stopped with SIGTERM, bad config refused up front."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_LOG = ROOT / "examples" / "logs" / "access.log"


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def test_sigterm_drains_publishes_and_exits_zero_with_progress_lines(tmp_path):
    log = tmp_path / "access.log"
    log.write_bytes(EXAMPLE_LOG.read_bytes())
    config = tmp_path / "c.yaml"
    config.write_text(
        f"keys: {{keyring: {tmp_path / 'keyring'}, root_key_file: {tmp_path / 'root.key'}}}\n"
        f"stream: {{state_key_file: {tmp_path / 'state.key'}, progress_seconds: 1}}\n"
    )
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "stream",
            "-i",
            str(log),
            "-o",
            str(tmp_path / "out"),
            "-c",
            str(config),
        ],
        stderr=subprocess.PIPE,
        env=_env(),
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "out" / ".tmp").exists():
        time.sleep(0.2)  # files are staged as soon as the first lines are read
    time.sleep(3)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    assert "lines/s" in err and "files followed" in err and "alerts" in err
    assert "stopped after" in err and "Traceback" not in err
    assert list((tmp_path / "out" / "events").glob("dt=*/part-*.parquet"))
    assert list((tmp_path / "out" / "alerts").glob("dt=*/part-*.parquet")), "alerts archived, encrypted"
    assert not list((tmp_path / "out" / "alerts").glob("*.jsonl"))


def test_a_bad_stream_setting_is_refused_naming_its_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("stream: {cut_seconds: -5}\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "stream", "-i", str(tmp_path / "x.log"), "-o", str(tmp_path / "o"),
         "-c", str(config)],
        capture_output=True, text=True, env=_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "stream.cut_seconds" in done.stderr and "Traceback" not in done.stderr
