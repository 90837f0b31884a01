"""The streaming graph on FnApiRunner: live files in, the batch job's archive and alerts out."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
from apache_beam.options.pipeline_options import PipelineOptions

from alerts.outbox import alert_to_json
from pipelines.batch import run_batch
from pipelines.reports.publish import publish_period
from pipelines.stream import STOP, run_stream
from retention.alert_store import read_alerts
from retention.archive_reader import open_archive
from schemas.config import AlertSinksConfig, StreamConfig

EXAMPLE_LOG = Path(__file__).resolve().parents[2] / "examples" / "logs" / "access.log"


def stream_config(config, tmp_path: Path, **stream):
    sinks = AlertSinksConfig(jsonl=str(tmp_path / "sink.jsonl"))
    return dataclasses.replace(
        config,
        alerts=dataclasses.replace(config.alerts, sinks=sinks),
        stream=StreamConfig(state_key_file=str(tmp_path / "state.key"), progress_seconds=60, **stream),
    )


def sink_lines(tmp_path: Path) -> list[dict]:
    path = tmp_path / "sink.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_until(patterns, output, config, done, timeout=90.0, while_running=None):
    """Run the stream in this thread (it owns the signal handlers) until ``done()`` holds, then stop it."""

    def watch():
        if while_running:
            while_running()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            time.sleep(0.1)
        STOP.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run_stream(patterns, str(output), config, PipelineOptions(["--runner=FnApiRunner"]))
    watcher.join()


def whole_lines(path: Path) -> list[bytes]:
    return [line + b"\n" for line in path.read_bytes().split(b"\n")[:-1]]


def archived_lines(output: Path, reader) -> list[tuple[str, int]]:
    table = open_archive(output, reader, "events").to_table(columns=["log_file_path", "log_offset"])
    return sorted(zip(table["log_file_path"].to_pylist(), table["log_offset"].to_pylist(), strict=True))


def test_stream_raises_the_same_alerts_as_a_batch_replay_and_archives_every_line_once(tmp_path, archive_config, reader):
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "access.log"
    shutil.copyfile(EXAMPLE_LOG, live)
    batch_out = tmp_path / "batch"
    run_batch([str(live)], str(batch_out), archive_config, PipelineOptions(["--runner=FnApiRunner"]))
    # A batch run keeps its alerts only in the encrypted alerts dataset (issue 18); as JSON they read like the stream's.
    batch_alerts = [json.loads(alert_to_json(a)) for a in read_alerts(batch_out, reader)]
    assert batch_alerts, "the example log holds attacks"

    config = stream_config(archive_config, tmp_path)
    out = tmp_path / "stream"
    run_until([str(logs / "access.log*")], out, config, lambda: len(sink_lines(tmp_path)) >= len(batch_alerts))

    def key(a):
        return (a["alert_id"], a["rule_id"], a["first_seen"], a["last_seen"], a["count"], a["source_ip"])

    streamed = sink_lines(tmp_path)
    assert sorted(map(key, streamed)) == sorted(map(key, batch_alerts))
    # At rest the stream's alerts are the encrypted alerts dataset too, never a plaintext file.
    assert not list((out / "alerts").glob("*.jsonl"))
    archived_alerts = [json.loads(alert_to_json(a)) for a in read_alerts(out, reader)]
    assert sorted(map(key, archived_alerts)) == sorted(map(key, batch_alerts))
    lines = live.read_bytes().count(b"\n")
    assert archived_lines(out, reader) == archived_lines(batch_out, reader)
    assert len(archived_lines(out, reader)) == lines
    assert list((out / "reports" / "aggregates").glob("traffic-*.parquet")), "report windows are written at the drain"
    streamed_report = publish_period(str(out), str(tmp_path / "report"), "stream").report
    assert streamed_report.totals[""]["requests"] == sum(1 for _ in archived_lines(out, reader))


def test_restart_resumes_after_the_last_line_and_lines_appended_meanwhile_arrive_once(tmp_path, archive_config, reader):
    live = tmp_path / "access.log"
    text = whole_lines(EXAMPLE_LOG)
    live.write_bytes(b"".join(text[:100]))
    config = stream_config(archive_config, tmp_path, cut_seconds=1.0)
    out = tmp_path / "out"

    def archived_count():
        try:
            return len(archived_lines(out, reader))
        except Exception:
            return 0

    run_until([str(live)], out, config, lambda: archived_count() >= 100)
    with open(live, "ab") as fh:
        fh.write(b"".join(text[100:150]))
    rotated = tmp_path / "access.log.1"
    live.rename(rotated)
    live.write_bytes(b"".join(text[150:]))
    run_until([str(tmp_path / "access.log*")], out, config, lambda: archived_count() >= len(text))
    rows = archived_lines(out, reader)
    assert len(rows) == len(text)
    table = open_archive(out, reader, "events").to_table(columns=["log_offset", "timestamp", "url_original"])
    assert len(set(zip(*(table[c].to_pylist() for c in table.column_names), strict=True))) == len(text)
    by_file = {}
    for path, _ in rows:
        by_file[Path(path).name] = by_file.get(Path(path).name, 0) + 1
    assert by_file == {"access.log": 100 + (len(text) - 150), "access.log.1": 50} or by_file == {
        "access.log.1": 150,
        "access.log": len(text) - 150,
    }


def test_partial_last_line_becomes_a_truncated_dead_letter_after_the_idle_time(tmp_path, archive_config, reader):
    live = tmp_path / "access.log"
    text = whole_lines(EXAMPLE_LOG)
    live.write_bytes(b"".join(text[:5]) + text[5][:30])
    config = stream_config(archive_config, tmp_path, partial_line_seconds=0.5, cut_seconds=0.5)
    out = tmp_path / "out"
    # Until the flushed line is published (start-up alone can take seconds on a busy machine), then a little more.
    published = []
    run_until([str(live)], out, config, lambda: published.append(bool(list(out.glob("dead_letters/dt=*/_manifest-*"))))
              or sum(published) > 10, timeout=60)  # fmt: skip
    dead = open_archive(out, reader, "dead_letters").to_table()
    assert dead.num_rows == 1
    assert pc.starts_with(dead["reason"], "truncated").to_pylist() == [True]
    assert len(archived_lines(out, reader)) == 5
