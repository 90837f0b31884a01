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


#: Runs ``logwarden batch`` with the commit protocol's hook killing the process at the n-th ``step``.
KILLED_BATCH = """
import os, signal, sys
from retention import commit
step, nth = sys.argv[1], int(sys.argv[2])
seen = []
def kill(at, detail):
    seen.append(at)
    if seen.count(step) == nth:
        os.kill(os.getpid(), signal.SIGKILL)
commit._no_hook = kill
from pipelines.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _batch(tmp_path, log, out, kill_at=None):
    prefix = [sys.executable, "-c", KILLED_BATCH, *kill_at] if kill_at else [sys.executable, "-m", "pipelines.cli"]
    # One in-process worker: the kill hook must fire in this process, never in a forked worker.
    argv = [*prefix, "batch", "-i", str(log), "-o", str(out), "-f", "combined", "--direct_num_workers=1"]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        timeout=300,
    )


def test_a_kill_as_a_part_file_lands_is_never_read_and_the_next_run_removes_it(tmp_path):
    from retention import commit
    from retention.archive_reader import open_archive
    from retention.verify import verify_archive

    log = tmp_path / "three-days.log"
    generate(log, lines=3000, attack_ratio=0.0, days=3, seed=7)
    out = tmp_path / "out"
    killed = _batch(tmp_path, log, out, kill_at=(commit.FILE_PUBLISHED, "2"))  # the second day's file landed
    assert killed.returncode == -signal.SIGKILL
    keys = reader_keys(tmp_path / ".logwarden" / "keyring", tmp_path / ".logwarden" / "root.key", environ={})
    landed = [p for p in out.glob("events/dt=*/*.parquet")]
    assert len(landed) == 2  # one day committed inside the run's open transaction, one file of no commit
    assert open_archive(out, keys).count_rows() == 0  # the run never completed: readers see none of it
    report = verify_archive(out, reader=keys)
    assert report.ok and sum("left by a killed run" in f.message for f in report.findings) == 2

    rerun = _batch(tmp_path, log, out)
    assert rerun.returncode == 0, rerun.stderr
    assert "recovered         1 unfinished run(s) withdrawn, 1 unpublished file(s)" in rerun.stderr
    clean = verify_archive(out, reader=keys)
    assert clean.ok and not [f for f in clean.findings if f.level == "warning"]
    assert not list((out / ".tmp").glob("*"))
    offsets = open_archive(out, keys).to_table(columns=["log_offset"])["log_offset"].to_pylist()
    assert len(offsets) == len(set(offsets)) == 3000  # every line once
