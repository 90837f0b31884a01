"""Building and writing a report for a period: store rows in, Parquet, CSV and the HTML page out (all 0640)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import pyarrow as pa
import pyarrow.csv as pacsv
from apache_beam.io.filesystems import FileSystems

from pipelines.reports.build import ALL, Report, ReportOptions, build_report
from pipelines.reports.health import episodes_table, read_health
from pipelines.reports.html import render_report
from pipelines.reports.privacy import escape_csv_strings
from pipelines.reports.store import make_dirs, parquet_bytes, read_store, run_span, write_file
from retention import commit
from retention.layout import reports_dir
from schemas import TRAFFIC_AGGREGATE, TRAFFIC_BREAKDOWN
from schemas.config import ReportsConfig


@dataclasses.dataclass
class PublishedReport:
    report: Report
    page: str
    files: list[str]


def report_tables(report: Report) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Traffic: one row per bucket and shown host (plus all-hosts rows, host null, when there are several);
    breakdown: per host, dimension and value; health: one row per service-health episode."""
    names = [*report.hosts, *([ALL] if len(report.hosts) > 1 else [])]
    traffic = [
        {**row, "bucket": report.bucket, "url_domain": host or None}
        for host in names
        for row in report.series.get(host, [])
    ]
    breakdown = [
        {
            "period_start": report.period_start,
            "period_end": report.period_end,
            "url_domain": host or None,
            "dimension": dimension,
            "value": row["value"],
            "requests": row["requests"],
            "bytes": row["bytes"],
            "distinct_visitors_estimate": row["visitors"],
            "share": row["share"],
        }
        for host in names
        for dimension, rows in sorted(report.breakdowns.get(host, {}).items())
        for row in rows
    ]
    return (
        pa.Table.from_pylist(traffic, schema=TRAFFIC_AGGREGATE),
        pa.Table.from_pylist(breakdown, schema=TRAFFIC_BREAKDOWN),
        episodes_table(report.episodes),
    )


def _csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(escape_csv_strings(table), sink)
    return sink.getvalue()


def write_report(report: Report, directory: str, name: str) -> PublishedReport:
    """``traffic-<name>.parquet|csv``, ``breakdown-<name>.parquet|csv``, ``health-<name>.parquet|csv`` and
    ``report-<name>.html`` in ``directory``."""
    make_dirs(directory)
    traffic, breakdown, health = report_tables(report)
    files = []
    for kind, table in (("traffic", traffic), ("breakdown", breakdown), ("health", health)):
        for suffix, data in (("parquet", parquet_bytes(table)), ("csv", _csv_bytes(table))):
            path = FileSystems.join(directory, f"{kind}-{name}.{suffix}")
            write_file(path, data)
            files.append(path)
    page = FileSystems.join(directory, f"report-{name}.html")
    write_file(page, render_report(report).encode("utf-8"))
    files.append(page)
    return PublishedReport(report, page, files)


def publish_period(
    archive: str,
    directory: str,
    name: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    host: str | None = None,
    options: ReportOptions | None = None,
) -> PublishedReport:
    """Merge every run's stored aggregates for ``[start, end)`` (one host if given) and write the report."""
    options = options or ReportOptions()
    traffic, breakdown, ownership = read_store(archive, start, end, host)
    health = read_health(archive, commit.completed_transactions(archive), host)
    report = build_report(
        traffic,
        breakdown,
        start,
        end,
        options,
        runs=len(ownership.owners),
        superseded=ownership.superseded,
        partly_superseded=ownership.partial,
        unfinished=len(ownership.unfinished),
        unledgered=ownership.unledgered,
        health=health,
    )
    return write_report(report, directory, name)


def publish_run(output: str, run_id: str, config: ReportsConfig) -> str | None:
    """The report of the period one batch run covered (every run over it merged); its page, or None without traffic."""
    span = run_span(output, run_id)
    if span is None:
        return None
    options = ReportOptions(bucket=config.bucket, min_visitors=config.min_visitors)
    return publish_period(output, reports_dir(output), run_id, span[0], span[1], options=options).page
