"""``logwarden report``: a capacity report for any period and host, merged from every run's aggregates.

Needs no archive key: it reads only the aggregate store, which holds no personal data.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import webbrowser

from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    error,
    load_or_report,
)
from pipelines.reports.build import BUCKET_SECONDS, ReportError, ReportOptions
from pipelines.reports.publish import publish_period
from pipelines.reports.store import StoreError, stored_hosts

EPILOG = """\
examples:
  logwarden report --archive out/ --from 2026-11-01 --to 2026-11-30 --output reports/november
  logwarden report --archive out/ --from 2026-11-23 --to 2026-11-29 --bucket day --host www.example.com \\
      --output reports/week48 --open

--from and --to are UTC dates (--to inclusive: the whole day) or times such as
2026-11-01T06:00 (--to exclusive).  Without them the report covers everything
stored.  Every completed run's aggregates for the period are merged, each line
once: the ingest ledger says which run archived which lines, and a line read
again (--reprocess, or a stream and a batch over one file) counts in the latest
reading only.  Runs killed before they completed count nothing.  The page shades
the windows in which service-health alerts fired.  The report is
traffic-<name>.parquet|csv, breakdown-<name>.parquet|csv, health-<name>.parquet|csv
(the service-health episodes) and report-<name>.html in --output.
Exit status: 0 on success, 1 if nothing could be written, 2 on a usage error.
"""


def parse_when(text: str, end: bool = False) -> dt.datetime:
    """``2026-11-01`` (a whole day; as an end, the day included) or an ISO time, in UTC."""
    try:
        if len(text) == 10:
            day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
            return day + dt.timedelta(days=1) if end else day
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date like 2026-11-01 or a time like 2026-11-01T06:00") from None
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)


def _name(start: dt.datetime | None, end: dt.datetime | None, host: str | None) -> str:
    def part(when):
        return when.strftime("%Y%m%dT%H%M") if when else "all"

    safe_host = "".join(c if c.isalnum() or c in ".-" else "_" for c in host) if host else None
    return "_".join(filter(None, [part(start), part(end), safe_host]))


def _open(page: str) -> None:
    print(f"report page: {os.path.abspath(page) if '://' not in page else page}")
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"):
        webbrowser.open("file://" + os.path.abspath(page))


def run(args) -> int:
    try:
        config = load_or_report(args.config).reports
        start = parse_when(args.from_) if args.from_ else None
        end = parse_when(args.to, end=True) if args.to else None
        if start and end and end <= start:
            raise UsageError("--to must be after --from")
        options = ReportOptions(bucket=args.bucket or config.bucket, min_visitors=config.min_visitors)
        published = publish_period(
            args.archive, args.output, _name(start, end, args.host), start, end, args.host, options
        )
    except (UsageError, ReportError, StoreError) as problem:
        return error(str(problem))
    except OSError as problem:
        print(f"logwarden: error: cannot write the report: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    report = published.report
    totals = report.totals.get("", {}) or {}
    print(
        f"logwarden report: {report.period_start:%Y-%m-%d %H:%M} to {report.period_end:%Y-%m-%d %H:%M} UTC per "
        f"{report.bucket}, {report.runs} run(s), {totals.get('requests', 0):,} requests, "
        f"{len(report.hosts)} host(s), {len(report.episodes)} service-health episode(s)",
        file=sys.stderr,
    )
    if args.host and not report.totals:
        hosts = stored_hosts(args.archive, start, end)
        print(
            f"logwarden: warning: no traffic of host {args.host!r} in this period; hosts with traffic: "
            + (", ".join(hosts) if hosts else "none"),
            file=sys.stderr,
        )
    if report.unfinished:
        print(f"  {report.unfinished} unfinished run(s) (killed, or still running) not counted", file=sys.stderr)
    if report.unledgered:
        print(
            f"logwarden: warning: {report.unledgered} bucket(s) hold lines the ingest ledger gives to no run "
            "(stored before runs were ledgered?) and are left out",
            file=sys.stderr,
        )
    if report.partly_superseded:
        print(
            f"logwarden: warning: {report.partly_superseded} bucket(s) were read again only in part by a later run "
            "and are left out; figures may be low",
            file=sys.stderr,
        )
    for path in published.files:
        print(f"  {path}", file=sys.stderr)
    if args.open:
        _open(published.page)
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "report",
        "capacity report for a period, merged from every run",
        "Merge the stored traffic aggregates of every run for a period into Parquet, CSV and an HTML page.",
        EPILOG,
    )
    parser.add_argument("--archive", "-a", required=True, metavar="DIR", help="output directory of the batch runs")
    parser.add_argument("--from", dest="from_", metavar="DATE", help="first day (UTC), e.g. 2026-11-01")
    parser.add_argument("--to", metavar="DATE", help="last day (UTC, included), e.g. 2026-11-30")
    parser.add_argument("--bucket", choices=sorted(BUCKET_SECONDS, key=BUCKET_SECONDS.get), help="time bucket")
    parser.add_argument("--host", metavar="HOST", help="only this virtual host")
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="directory for the report files")
    parser.add_argument(
        "--open", action="store_true", help="print the page's path (and open it where there is a display)"
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)
