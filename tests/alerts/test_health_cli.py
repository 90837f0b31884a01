"""Service-health alerts end to end, as ops meet them: ``logwarden detect``, ``batch`` and ``stream`` on real files.

The generated three-host logs (``tests.alerts.health_logs``) hold a 502 wave, a latency step, a
silent host and an upstream-error burst: each raises exactly one alert with its window, value and
baseline, and one "resolved" record.  The same logs without the incidents raise nothing at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.reports.publish import publish_period
from pipelines.stream import STOP, run_stream
from schemas.config import AlertSinksConfig, InputConfig, StreamConfig
from tests.alerts.health_logs import LOG_FORMAT, write_logs
from tests.operator.helpers import logwarden, write_config

#: (rule, host, status, first seen, window end, value, baseline) of every alert the outage log raises.
EXPECTED_ACCESS = [
    ("health-5xx-surge", "shop.example", "firing", "2026-11-01T01:30:00Z", "2026-11-01T01:31:00Z", 0.2, None),
    ("health-5xx-surge", "shop.example", "resolved", "2026-11-01T01:30:00Z", "2026-11-01T01:50:00Z", 0.0, None),
    ("health-host-silent", "blog.example", "firing", "2026-11-01T01:40:00Z", "2026-11-01T01:50:00Z", 0.0, 200.0),
    ("health-host-silent", "blog.example", "resolved", "2026-11-01T01:40:00Z", "2026-11-01T02:06:00Z", 200.0, 200.0),
    ("health-latency-regression", "api.example", "firing", "2026-11-01T02:20:00Z", "2026-11-01T02:21:00Z",
     245331, 76905),  # p95 in microseconds: 245 ms against the trailing hour's 77 ms
    ("health-latency-regression", "api.example", "resolved", "2026-11-01T02:20:00Z", "2026-11-01T02:50:00Z",
     75382, 76905),
]  # fmt: skip
EXPECTED_ERROR = [
    ("health-upstream-errors", "shop.example", "firing", "2026-11-01T02:00:00Z", "2026-11-01T02:01:00Z", 11.0, None),
    ("health-upstream-errors", "shop.example", "resolved", "2026-11-01T02:00:00Z", "2026-11-01T02:14:00Z", 0.0, None),
]  # fmt: skip


def iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def facts(alerts: list[dict]) -> list[tuple]:
    """What ops read from an alert, values rounded to the unit (a p95 in microseconds)."""
    rows = []
    for a in alerts:
        h = a["health"]
        value = round(h["value"], 3) if h["value"] < 10 else round(h["value"])
        baseline = h.get("baseline")
        baseline = None if baseline is None else round(baseline, 3) if baseline < 10 else round(baseline)
        rows.append((a["rule_id"], a["group_key"], h["status"], a["first_seen"], h["window_end"], value, baseline))
    return sorted(rows, key=lambda r: (r[0], r[3], r[4]))


def detect(*args) -> list[dict]:
    done = logwarden("detect", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_detect_raises_each_outage_once_with_window_value_and_baseline_then_resolves_it(tmp_path):
    access, error = write_logs(tmp_path / "outage", incidents=True)
    alerts = detect(str(access), "--format", LOG_FORMAT)
    assert facts(alerts) == sorted(EXPECTED_ACCESS, key=lambda r: (r[0], r[3], r[4]))
    for a in alerts:
        assert a["category"] in ("availability", "performance")
        assert a["health"]["threshold"] and a["health"]["window_start"] < a["health"]["window_end"]
    wave = next(a for a in alerts if a["rule_id"] == "health-5xx-surge" and a["health"]["status"] == "firing")
    assert wave["count"] == 20 and wave["health"]["events"] == 100  # 20 of the host's 100 requests in 5 minutes
    assert [e["line"].split('"')[2].split()[0] for e in wave["evidence"]] == ["502"] * 5
    assert facts(detect(str(error))) == EXPECTED_ERROR  # the error log's format is detected


def test_the_same_logs_without_incidents_raise_nothing(tmp_path):
    access, error = write_logs(tmp_path / "healthy", incidents=False)
    assert detect(str(access), "--format", LOG_FORMAT) == []
    assert detect(str(error)) == []


def test_batch_raises_the_alerts_detect_raises(tmp_path):
    access, _ = write_logs(tmp_path / "outage", incidents=True)
    sink = tmp_path / "alerts.jsonl"
    config = write_config(tmp_path, f"alerts:\n  sinks:\n    jsonl: {sink}\n")
    done = logwarden("batch", "--input", access, "--output", tmp_path / "out", "--format", LOG_FORMAT, "-c", config)
    assert done.returncode == 0, done.stderr
    batch_alerts = [json.loads(line) for line in sink.read_text().splitlines()]
    replayed = detect(str(access), "--format", LOG_FORMAT)
    assert sorted((a["alert_id"], json.dumps(a["health"])) for a in batch_alerts) == sorted(
        (a["alert_id"], json.dumps(a["health"])) for a in replayed
    )


def test_the_stream_raises_the_same_health_alerts_as_a_replay(tmp_path, archive_config):
    access, _ = write_logs(tmp_path / "logs", incidents=True)
    sink = tmp_path / "sink.jsonl"
    config = dataclasses.replace(
        archive_config,
        input=InputConfig(format=LOG_FORMAT),
        alerts=dataclasses.replace(archive_config.alerts, sinks=AlertSinksConfig(jsonl=str(sink))),
        stream=StreamConfig(state_key_file=str(tmp_path / "state.key"), progress_seconds=60),
    )

    def stop_when_all_arrived():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if sink.exists() and len(sink.read_text().splitlines()) >= len(EXPECTED_ACCESS):
                break
            time.sleep(0.2)
        STOP.set()

    watcher = threading.Thread(target=stop_when_all_arrived, daemon=True)
    watcher.start()
    run_stream([str(access)], str(tmp_path / "out"), config, PipelineOptions(["--runner=FnApiRunner"]))
    watcher.join()
    streamed = [json.loads(line) for line in sink.read_text().splitlines()]
    assert facts(streamed) == sorted(EXPECTED_ACCESS, key=lambda r: (r[0], r[3], r[4]))
    # The stream's cuts stored the episodes for the capacity report as a batch run does: one per outage, resolved.
    report = publish_period(str(tmp_path / "out"), str(tmp_path / "planner"), "stream").report
    episodes = [(e["rule_id"], e["host_label"], e["started"], e["resolved_at"]) for e in report.episodes]
    resolved = [r for r in EXPECTED_ACCESS if r[2] == "resolved"]
    assert sorted(episodes) == sorted(
        (rule, host, iso(first), iso(end)) for rule, host, _, first, end, _, _ in resolved
    )
