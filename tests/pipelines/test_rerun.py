"""kill -9 at random moments of a 1M-line batch run, then rerun until it completes: every line archived once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bench.generate import generate
from retention.archive_reader import open_archive
from retention.keyring import reader_keys
from retention.verify import verify_archive

ROOT = Path(__file__).resolve().parents[2]
LINES = 1_000_000


def _start(tmp_path: Path, log: Path, out: Path) -> subprocess.Popen:
    config = tmp_path / "logwarden.yaml"
    config.write_text(f"alerts:\n  sinks:\n    jsonl: {tmp_path / 'sink.jsonl'}\n")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "batch",
            "-i",
            str(log),
            "-o",
            str(out),
            "-f",
            "combined",
            "-c",
            config,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
    )


def test_kill_9_at_random_moments_then_rerun_archives_every_line_exactly_once(tmp_path):
    log = tmp_path / "access.log"
    generate(log, lines=LINES, attack_ratio=0.02, days=3, seed=11)
    out = tmp_path / "out"
    rng = random.Random(20261201)
    kills = []
    for _ in range(3):  # three runs killed at random moments: while reading, committing days, or completing
        job = _start(tmp_path, log, out)
        moment = rng.uniform(1.0, 14.0)
        try:
            job.wait(moment)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
            kills.append(round(moment, 1))
        if job.returncode == 0:
            break
    for _attempt in range(3):  # then rerun until a run completes
        job = _start(tmp_path, log, out)
        _, stderr = job.communicate(timeout=600)
        if job.returncode == 0:
            break
    assert job.returncode == 0, f"killed at {kills}: {stderr[-2000:]}"

    keys = reader_keys(tmp_path / ".logwarden" / "keyring", tmp_path / ".logwarden" / "root.key", environ={})
    offsets = pa.concat_arrays(
        [
            open_archive(out, keys, dataset).to_table(columns=["log_offset"])["log_offset"].combine_chunks()
            for dataset in ("events", "errors", "dead_letters")
            if (out / dataset).is_dir()
        ]
    )
    print(f"killed at {kills} s")
    assert len(offsets) == LINES, f"killed at {kills}"
    assert len(pc.unique(offsets)) == LINES, f"killed at {kills}: duplicates"
    alert_ids = open_archive(out, keys, "alerts").to_table(columns=["alert_id"])["alert_id"].to_pylist()
    assert alert_ids and len(alert_ids) == len(set(alert_ids)), f"killed at {kills}: an alert raised twice"
    sent = [json.loads(line)["alert_id"] for line in (tmp_path / "sink.jsonl").read_text().splitlines()]
    assert sorted(sent) == sorted(alert_ids), f"killed at {kills}: each alert must reach the sink exactly once"
    report = verify_archive(out, reader=keys)
    assert report.ok and not [f for f in report.findings if f.level == "warning"], report.findings
    assert report.rows == LINES + len(alert_ids)

    again = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "batch", "-i", str(log), "-o", str(out), "-f", "combined"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
    )
    assert again.returncode == 0 and "access.log: already archived by run" in again.stderr
    assert "; 0 new lines" in again.stderr
    assert verify_archive(out).rows == LINES + len(alert_ids)
