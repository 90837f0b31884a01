"""The capacity report as one self-contained HTML page: data, uPlot and the page script inline, nothing fetched.

The page is rendered by its own script from the embedded JSON, so switching
host redraws cards, charts, heatmap and tables without a server.  uPlot (MIT,
vendored from npm under ``vendor/``) draws the time charts: hover values, drag
to zoom, double-click to reset, ticks in UTC with the year wherever it changes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jinja2

from pipelines.reports.build import ALL, NO_GEOIP, Report
from pipelines.reports.health import value_text

HERE = Path(__file__).parent
TEMPLATE = HERE / "report.html.j2"
VENDOR = HERE / "vendor"

#: Breakdown tables in page order: (dimension, title).
TABLES = [
    ("browser", "Browsers (major version)"),
    ("os", "Operating systems (major version)"),
    ("device", "Devices"),
    ("crawler", "Crawlers and tools"),
    ("country", "Countries"),
    ("status", "Status codes"),
    ("path", "Top paths"),
    ("missing_path", "Missing pages (404)"),
    ("referrer", "Referrer hosts"),
]
_SERIES_FIELDS = [
    "requests",
    "bytes",
    "distinct_visitors_estimate",
    "peak_requests_per_second",
    "p95_requests_per_second",
    "peak_bytes_per_second",
    "p95_bytes_per_second",
    "response_ms_p50",
    "response_ms_p95",
    "response_ms_p99",
]


def _epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


def _episode(e: dict) -> dict:
    """One service-health episode as the page shows it: times in epoch seconds, values as ops read them."""
    return {
        "host": e["host_label"],
        "rule": e["rule_id"],
        "title": e["rule_title"],
        "category": e["category"],
        "severity": e["severity"],
        "path": e["path_prefix"],
        "start": _epoch(e["started"]),
        "until": _epoch(e["shown_until"]),
        "fired": _epoch(e["fired_at"]) if e["fired_at"] else None,
        "resolved": _epoch(e["resolved_at"]) if e["resolved_at"] else None,
        "value": value_text(e["measure"], e["field"], e["value"]),
        "baseline": value_text(e["measure"], e["field"], e["baseline"]) if e["baseline"] is not None else "",
        "threshold": e["threshold"] or "",
    }


def page_data(report: Report) -> dict:
    """Everything the page script draws, as plain JSON-able data."""
    hosts = {}
    for host in [ALL, *report.hosts]:
        series = report.series.get(host, [])
        hosts[host] = {
            "t": [_epoch(row["bucket_start"]) for row in series],
            **{name: [row[name] for row in series] for name in _SERIES_FIELDS},
            "totals": report.totals.get(host),
            "breakdowns": report.breakdowns.get(host, {}),
            "heatmap": report.heatmap.get(host) if report.heatmap else None,
        }
    return {
        "period": [_epoch(report.period_start), _epoch(report.period_end)],
        "bucket": report.bucket,
        "bucketSeconds": {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}[report.bucket],
        "minVisitors": report.min_visitors,
        "hostNames": report.hosts,
        "hosts": hosts,
        "tables": TABLES,
        "geoip": report.geoip_configured,
        "noGeoip": NO_GEOIP,
        "responseTimes": report.has_response_times,
        "episodes": [_episode(e) for e in report.episodes],
    }


def _script_json(data: dict) -> str:
    """JSON safe inside a <script> element (no ``</script>`` or ``<!--`` can close it early)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c").replace("&", "\\u0026")


def render_report(report: Report, title: str = "logwarden capacity report") -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        title=title,
        period=f"{report.period_start:%Y-%m-%d %H:%M} to {report.period_end:%Y-%m-%d %H:%M} UTC",
        bucket=report.bucket,
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        min_visitors=report.min_visitors,
        runs=report.runs,
        superseded=report.superseded,
        partly_superseded=report.partly_superseded,
        unfinished=report.unfinished,
        unledgered=report.unledgered,
        data=jinja2.utils.markupsafe.Markup(_script_json(page_data(report))),
        uplot_js=jinja2.utils.markupsafe.Markup((VENDOR / "uPlot.iife.min.js").read_text(encoding="utf-8")),
        uplot_css=jinja2.utils.markupsafe.Markup((VENDOR / "uPlot.min.css").read_text(encoding="utf-8")),
    )
