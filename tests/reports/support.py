"""A small log whose report figures are worked out by hand, and helpers that store runs without Beam.

``store_run`` leaves what a batch run over whole files leaves for reports: the aggregates, and the
ingest-ledger record of its transaction (unless ``complete=False``: a run killed before its commit point).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from parsers.enrich import Enricher, enrich_batch
from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from pipelines.reports.store import write_run_aggregates
from pipelines.reports.traffic import TrafficPartial, partials_from_batch
from retention import commit
from retention.ledger import Ledger
from schemas.config import EnrichConfig

LOG_FORMAT = '%v %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def line(host, ip, when, path, status, size, agent, duration_us, referrer="-", user="-") -> str:
    return (
        f'{host} {ip} - {user} [02/Nov/2026:{when} +0000] "GET {path} HTTP/1.1" {status} {size} '
        f'"{referrer}" "{agent}" {duration_us}'
    )


def small_log() -> list[str]:
    """Monday 2 November 2026, two virtual hosts; the figures the tests expect are derived in comments.

    www.example.com: 12 visitors each load a profile page (10:00:00, all in one second: peak 12 req/s,
    12,000 B/s) and then a missing page (10:07:00-10:07:11, 404); Googlebot fetches robots.txt at 11:30.
    -> 25 requests, 12,100 bytes, 13 visitors, 13 2xx + 12 4xx.
    api.example.com: 10 visitors with curl, 3 requests each, 11:00:00-11:00:29, 2,000 bytes each.
    -> 30 requests, 60,000 bytes, 10 visitors, peak 1 req/s.
    All hosts: 55 requests, 72,100 bytes (70.4 KiB), 23 visitors.  5-minute samples 10:00-12:00 (24):
    requests/s 0.04 (10:00), 0.04 (10:05), 0.1 (11:00), 1/300 (11:30), 20 zeros -> p95 (23rd smallest) 0.04;
    bytes/s 40, 0, 200, 1/3 -> p95 40 B/s.
    """
    lines = []
    for i in range(1, 13):
        lines.append(
            line(
                "www.example.com",
                f"198.51.100.{i}",
                "10:00:00",
                "/users/john.smith/profile?token=s3cr3t",
                200,
                1000,
                CHROME,
                2000,
                "https://www.google.com/search?q=john+smith",
                user="alice",
            )
        )
    for i in range(1, 13):
        lines.append(
            line("www.example.com", f"198.51.100.{i}", f"10:07:{i - 1:02d}", "/missing/page", 404, 0, CHROME, 1000)
        )
    lines.append(line("www.example.com", "66.249.66.1", "11:30:00", "/robots.txt", 200, 100, GOOGLEBOT, 1000))
    for i in range(10):
        for j in range(3):
            lines.append(
                line(
                    "api.example.com",
                    f"203.0.113.{i + 1}",
                    f"11:00:{i * 3 + j:02d}",
                    "/v1/items",
                    200,
                    2000,
                    "curl/8.4.0",
                    10000,
                )
            )
    return sorted(lines, key=lambda text: text.split("[", 1)[1][:20])


def events(path: str, text: str, log_format: str = LOG_FORMAT) -> pa.RecordBatch:
    parsed = parse_chunk(LineChunk(path, 0, 1, text.encode(), log_format))
    return enrich_batch(parsed.events, Enricher.from_config(EnrichConfig(geoip_databases=())))


def store_run(
    output: Path,
    run_id: str,
    files: dict[Path, str],
    grain: str = "hour",
    log_format: str = LOG_FORMAT,
    complete: bool = True,
):
    """What one batch run reading ``files`` (written to disk first) whole stores, without Beam."""
    merged: dict = defaultdict(TrafficPartial)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    ledger = Ledger.load(str(output))
    identities = {p: ledger.identify(str(p), functools.partial(open, mode="rb"))[0] for p in files}
    sources = {str(p): identity.key for p, identity in identities.items()}
    for path, text in files.items():
        for key, partial in partials_from_batch(events(str(path), text, log_format), grain, sources):
            merged[key].merge(partial)
    written = write_run_aggregates(list(merged.items()), str(output), run_id, grain, geoip_configured=False)
    commit.begin_transaction(str(output), run_id, {"kind": "batch"})
    if complete:
        inputs = [
            {"key": i.key, "head_bytes": i.head_bytes, "path": str(p), "start": 0, "end": len(files[p].encode()),
             "lines": files[p].count("\n")}
            for p, i in identities.items()
        ]  # fmt: skip
        commit.complete_transaction(str(output), run_id, {"kind": "batch", "inputs": inputs, "alert_ids": []})
        commit.clear_staging(str(output), run_id)
    return written
