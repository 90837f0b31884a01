"""A killed batch job leaves nothing half-written where readers look."""

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from bench.generate import generate


def test_kill_during_writing_leaves_only_complete_files_visible(tmp_path):
    log = tmp_path / "big.log"
    generate(log, lines=300_000, attack_ratio=0.0, days=1, seed=5)
    out = tmp_path / "out"
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "batch", "-i", str(log), "-o", str(out), "-f", "combined"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if any((out / ".tmp").glob("*/*.parquet")):
            break
        time.sleep(0.05)
    assert job.poll() is None, "the job finished before it could be killed; make the input larger"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    visible = [p for p in out.rglob("*.parquet") if ".tmp" not in p.parts]
    for path in visible:  # anything a reader can see must be a whole, readable file
        pq.read_metadata(path)
    assert list((out / ".tmp").glob("*/*.parquet")), "unfinished files stay hidden under .tmp"
