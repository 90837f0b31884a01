"""A killed batch job leaves nothing half-written where readers look."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from bench.generate import generate
from retention.encryption import ArchiveDecryptor
from retention.keyring import reader_keys

ROOT = Path(__file__).resolve().parents[2]


def test_kill_during_writing_leaves_only_complete_files_visible(tmp_path):
    log = tmp_path / "big.log"
    generate(log, lines=300_000, attack_ratio=0.0, days=1, seed=5)
    out = tmp_path / "out"
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "batch", "-i", str(log), "-o", str(out), "-f", "combined"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=tmp_path,  # where the first batch creates its keyring (.logwarden/)
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
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
    keys = reader_keys(tmp_path / ".logwarden" / "keyring", tmp_path / ".logwarden" / "root.key", environ={})
    for path in visible:  # anything a reader can see must be a whole, readable file
        pq.read_metadata(path, decryption_properties=ArchiveDecryptor(keys).file_properties())
    assert list((out / ".tmp").glob("*/*.parquet")), "unfinished files stay hidden under .tmp"
