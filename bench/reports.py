"""Report building from the aggregate store: ``python -m bench reports [--days 30] [--hosts 3] [--per-hour 600]``.

Generates an aggregate store the way batch runs leave it (one run per day, hourly
aggregates per host and source, every breakdown with its visitor sketches) from
generated events with realistic spreads of paths, agents, referrers and
countries, and two service-health episodes a day (a 5xx surge and a latency regression, fired and
resolved), each run with its ingest-ledger record, then times ``publish_period``
(read the store and the ledger, decide ownership, merge, write Parquet, CSV and
the HTML page) for the whole span, per hour and per day.
Peak memory is the process's maximum resident set.  Numbers from a shared machine
vary; the bench prints, it never asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from alerts.rules import RuleSet, load_rules
from pipelines.reports.build import ReportOptions
from pipelines.reports.health import write_run_health
from pipelines.reports.publish import publish_period
from pipelines.reports.store import write_run_aggregates
from pipelines.reports.traffic import TrafficPartial, partials_from_batch
from retention import commit
from retention.layout import aggregates_dir
from schemas import ACCESS_EVENT

DAY = 86400
START = 1_790_812_800  # 2026-10-01 00:00 UTC
BROWSERS = [("Chrome", "120.0"), ("Chrome", "119.0"), ("Firefox", "121.0"), ("Safari", "17.1"), ("Edge", "120.0")]
BOTS = [("Googlebot", "2.1"), ("bingbot", "2.0"), ("curl", "8.4"), ("python-requests", "2.31")]


def day_batch(day: int, hosts: int, per_hour: int, rng: np.random.Generator) -> pa.RecordBatch:
    rows = per_hour * 24 * hosts
    # Diurnal shape: busier in the afternoon; Zipf-like popularity for paths, referrers and visitors.
    hour = rng.choice(24, rows, p=(weights := 1 + np.sin((np.arange(24) - 8) / 24 * 2 * np.pi)) / weights.sum())
    second = START + day * DAY + hour * 3600 + rng.integers(0, 3600, rows)
    visitor = rng.zipf(1.3, rows) % 20_000
    is_bot = rng.random(rows) < 0.15
    agent = [
        BOTS[i % len(BOTS)] if bot else BROWSERS[i % len(BROWSERS)]
        for i, bot in zip(rng.integers(0, 99, rows).tolist(), is_bot.tolist())
    ]
    return pa.RecordBatch.from_pydict(
        {
            "timestamp": pa.array(second * 1_000_000).cast(ACCESS_EVENT.field("timestamp").type),
            "source_ip": pa.array([f"10.{v >> 8 & 255}.{v & 255}.{day % 200}" for v in visitor.tolist()]),
            "url_domain": pa.array([f"site{h}.example.com" for h in rng.integers(0, hosts, rows).tolist()]),
            "url_path": pa.array([f"/section{p % 40}/page-{p}" for p in (rng.zipf(1.2, rows) % 3000).tolist()]),
            "http_response_status_code": pa.array(rng.choice([200, 200, 200, 304, 404, 500], rows), pa.int16()),
            "http_response_body_bytes": pa.array(rng.integers(200, 200_000, rows)),
            "event_duration_us": pa.array(rng.lognormal(10, 1, rows).astype("int64")),
            "http_request_referrer": pa.array(
                [f"https://ref{r}.example.org/x" for r in (rng.zipf(1.5, rows) % 400).tolist()]
            ),
            "user_agent_name": pa.array([a[0] for a in agent]),
            "user_agent_version": pa.array([a[1] for a in agent]),
            "user_agent_os_name": pa.array(rng.choice(["Windows", "Mac OS X", "Android", "iOS", "Linux"], rows)),
            "user_agent_os_version": pa.array(rng.choice(["10", "14", "17", "6"], rows)),
            "user_agent_device_type": pa.array(
                np.where(is_bot, "bot", rng.choice(["desktop", "mobile", "tablet"], rows))
            ),
            "user_agent_is_bot": pa.array(is_bot),
            "source_geo_country_iso_code": pa.array([f"C{c % 60}" for c in rng.zipf(1.4, rows).tolist()]),
            "log_file_path": pa.array([f"/logs/access-{day}.log"] * rows),
            "log_offset": pa.array(np.arange(rows) * 230),
        }
    )


def day_episodes(day: int) -> list[dict]:
    """A 5xx surge on the first host at 14:00 and a latency regression on the last at 20:00, each resolved."""

    def record(rule_id, host, status, begin, end, measure, value, baseline):
        return {
            "rule_id": rule_id, "url_domain": host, "group_key": host, "first_seen": begin,
            "health": {"status": status, "measure": measure, "window_start": end - dt.timedelta(minutes=5),
                       "window_end": end, "value": value, "baseline": baseline, "threshold": "bench", "events": 100},
        }  # fmt: skip

    midnight = dt.datetime.fromtimestamp(START + day * DAY, dt.timezone.utc)
    surge, slow = midnight + dt.timedelta(hours=14), midnight + dt.timedelta(hours=20)
    minutes = dt.timedelta(minutes=1)
    return [
        record("health-5xx-surge", "site0.example.com", "firing", surge, surge + minutes, "ratio", 0.3, None),
        record("health-5xx-surge", "site0.example.com", "resolved", surge, surge + 25 * minutes, "ratio", 0.0, None),
        record("health-latency-regression", "site2.example.com", "firing", slow, slow + minutes, "p95", 3e5, 8e4),
        record(
            "health-latency-regression", "site2.example.com", "resolved", slow, slow + 40 * minutes, "p95", 8e4, 8e4
        ),
    ]


def generate_store(output: str, days: int, hosts: int, per_hour: int) -> int:
    rng = np.random.default_rng(15)
    health_rules = RuleSet(tuple(r for r in load_rules().rules if r.is_health))
    events = 0
    for day in range(days):
        batch = day_batch(day, hosts, per_hour, rng)
        events += batch.num_rows
        merged: dict = defaultdict(TrafficPartial)
        ledger_key = f"{day:032x}-4096"  # the day's log as the ingest ledger names it
        sources = {f"/logs/access-{day}.log": ledger_key}
        for start in range(0, batch.num_rows, 20_000):
            for key, partial in partials_from_batch(batch.slice(start, 20_000), "hour", sources):
                merged[key].merge(partial)
        run_id = f"2026{day:04d}T000000Z-bench"
        write_run_aggregates(list(merged.items()), output, run_id, "hour", True)
        write_run_health(output, run_id, day_episodes(day), health_rules)
        # The run's ledger record, as a batch run completes it: what the report's ownership rule reads.
        commit.begin_transaction(output, run_id, {"kind": "batch"})
        inputs = [{"key": ledger_key, "head_bytes": 4096, "path": path, "start": 0, "end": batch.num_rows * 230,
                   "lines": batch.num_rows} for path in sources]  # fmt: skip
        commit.complete_transaction(output, run_id, {"kind": "batch", "inputs": inputs, "alert_ids": []})
        commit.clear_staging(output, run_id)
    return events


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--per-hour", type=int, default=600, help="requests per hour and host")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        started = time.monotonic()
        events = generate_store(root, args.days, args.hosts, args.per_hour)
        generated = time.monotonic() - started
        store_bytes = sum(p.stat().st_size for p in Path(aggregates_dir(root)).iterdir())
        print(
            f"store: {args.days} days x {args.hosts} hosts, {events:,} events, {store_bytes / 2**20:.1f} MiB "
            f"({args.days} runs), generated in {generated:.0f} s"
        )
        print()
        print("| report over the store | bucket | median s | min s | max s | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for bucket in ("hour", "day"):
            times = []
            for i in range(args.repeat):
                started = time.monotonic()
                publish_period(root, f"{root}/out", f"{bucket}{i}", options=ReportOptions(bucket=bucket))
                times.append(time.monotonic() - started)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"| {args.days} days, {args.hosts} hosts | {bucket} | {statistics.median(times):.2f} | "
                f"{min(times):.2f} | {max(times):.2f} | {peak:.0f} |"
            )
    return 0
