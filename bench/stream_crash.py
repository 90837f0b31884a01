"""Crash test of ``logwarden stream``: kill -9 at random moments while a writer appends and rotates.

At the end the archive must hold every written line exactly once (by the line's
sequence number) and the JSON-lines sink every attack's alert once.  The test
suite runs a short form; ``python -m bench stream-crash --kills 10`` a longer one.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.live_writer import ATTACK_RULE, LiveWriter
from pipelines.local_workers import die_with_parent

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class CrashResult:
    kills: int
    #: Event manifests published before each kill (growing: every run archived something before dying).
    cuts_before_kill: list[int]
    lines_written: int
    rotations: dict[str, int]
    archived_rows: int
    lines_missing: int
    lines_duplicated: int
    attacks: int
    attack_alerts_missing: int
    alerts_delivered_twice: int
    final_exit_code: int | None

    @property
    def exact(self) -> bool:
        return not (self.lines_missing or self.lines_duplicated or self.attack_alerts_missing)


def _config(work: Path, cut_seconds: float) -> Path:
    path = work / "stream.yaml"
    path.write_text(
        f"keys: {{keyring: {work / 'keys' / 'keyring'}, root_key_file: {work / 'keys' / 'root.key'}}}\n"
        f"stream: {{state_key_file: {work / 'keys' / 'state.key'}, cut_seconds: {cut_seconds}, "
        "progress_seconds: 30, rotate_grace_seconds: 1}\n"
        f"alerts: {{sinks: {{jsonl: {work / 'sink.jsonl'}}}}}\n"
        "reports: {enabled: false}\n"
    )
    return path


def _start(work: Path, config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "stream", "-i", f"{log}*", "-o", str(work / "out"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stream.err", "ab"),
        start_new_session=True,
        env=env,
        preexec_fn=die_with_parent,  # a harness killed mid-test leaves no stream job running for ever
    )


def archived_sequence_numbers(work: Path) -> collections.Counter:
    from retention.archive_reader import open_archive
    from retention.keyring import reader_keys

    keys = reader_keys(work / "keys" / "keyring", work / "keys" / "root.key", environ={})
    out = work / "out"
    if not (out / "events").exists():
        return collections.Counter()
    table = open_archive(out, keys, "events").to_table(columns=["http_response_body_bytes"])
    return collections.Counter(table["http_response_body_bytes"].to_pylist())


def run_crash_test(
    work: Path, kills: int = 3, rate: int = 1000, rotate_every: float = 2.5, seed: int = 1, cut_seconds: float = 1.0
) -> CrashResult:
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    log = work / "access.log"
    config = _config(work, cut_seconds)
    writer = LiveWriter(log, rate, attack_every=0.7, rotate_every=rotate_every, seed=seed)
    writer.start()
    checkpoint = work / "out" / "_state" / "stream" / "checkpoint"
    cuts_before_kill = []
    for _ in range(kills):
        job = _start(work, config, log)
        # Kill only once this run has published a cut of its own (start-up takes seconds on a busy machine),
        # then anywhere within the next cut interval: inside a poll, a parse, a file write or a commit.
        seen = checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0) == seen:
            time.sleep(0.05)
        cuts_before_kill.append(len(list((work / "out").glob("events/dt=*/_manifest-*.json"))))
        time.sleep(rng.uniform(0.0, 1.5 * cut_seconds))
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    writer.stop()
    job = _start(work, config, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if len(archived_sequence_numbers(work)) >= writer.written.lines:
            break
    time.sleep(1.5)  # the last alerts' cut
    job.send_signal(signal.SIGTERM)
    try:
        code = job.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        code = None
    found = archived_sequence_numbers(work)
    sink = work / "sink.jsonl"
    alerts = [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []
    attack_ids = collections.Counter(a["alert_id"] for a in alerts if a["rule_id"] == ATTACK_RULE)
    alerted = {a["source_ip"] for a in alerts if a["rule_id"] == ATTACK_RULE}
    every = collections.Counter(a["alert_id"] for a in alerts)
    return CrashResult(
        kills=kills,
        cuts_before_kill=cuts_before_kill,
        lines_written=writer.written.lines,
        rotations=dict(writer.written.rotations),
        archived_rows=sum(found.values()),
        lines_missing=sum(1 for n in range(writer.written.lines) if n not in found),
        lines_duplicated=sum(c - 1 for c in found.values() if c > 1),
        attacks=len(writer.written.attacks),
        attack_alerts_missing=len(set(writer.written.attacks) - alerted),
        alerts_delivered_twice=sum(c - 1 for c in every.values() if c > 1) + 0 * len(attack_ids),
        final_exit_code=code,
    )


def main(argv: list[str]) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench stream-crash")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="logwarden-crash-"))
    result = run_crash_test(work, kills=args.kills, rate=args.rate)
    print(json.dumps(dataclasses.asdict(result), indent=2))
    return 0 if result.exact and result.final_exit_code == 0 else 1
