"""``logwarden search``: events of a date range by IP, user, path, status or alert, read with one role's keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys

from pipelines.commands.authorize import add_access_arguments, authorized_action, keys_of
from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    error,
    load_or_report,
)
from retention.access.alert_records import rule_windows
from retention.access.output import FORMATS, RecordWriter
from retention.access.search import EventQuery, SearchError, SearchStats, build_indexes, search_events
from retention.archive_reader import ArchiveReadError
from retention.audit import AuditError, AuditRefusal
from retention.keyring import KeyringError
from schemas import ACCESS_EVENT

EPILOG = """\
examples:
  logwarden search --archive out/ --role security --reason INC-1234 --from 2026-01-01 --to 2026-01-31 \\
      --ip 203.0.113.7
  logwarden search --archive out/ --role security --reason INC-1234 --from 2026-01-05 \\
      --ip 198.51.100.0/24 --status 401,403 --format jsonl
  logwarden search --archive out/ --role security --reason "alert review" --from 2026-01-05 --to 2026-01-06 \\
      --rule http-sqli --format csv > sqli-events.csv
  logwarden search --archive out/ --role security --reason "nightly index" --build-index

Days are partition days (UTC, inclusive).  An IP or user lookup reads only the
row groups the encrypted blind index points at; files without an index are
scanned and indexed on the way.  Rows stream to standard output, oldest first;
--limit stops as soon as enough were found.  The summary (files, row groups,
rows) goes to standard error and into the audit trail; the values searched
for do not.  Exit status: 0 (also with no match), 1 on an unreadable archive,
2 on a usage error or a refused role.
"""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad date {text!r}: expected YYYY-MM-DD") from None


def _statuses(texts: list[str]) -> tuple[int, ...]:
    codes: list[int] = []
    for text in texts:
        for part in text.split(","):
            part = part.strip().lower()
            if len(part) == 3 and part.endswith("xx") and part[0].isdigit():
                codes += range(int(part[0]) * 100, int(part[0]) * 100 + 100)
            elif part.isdigit() and 100 <= int(part) <= 599:
                codes.append(int(part))
            else:
                raise UsageError(f"bad --status {part!r}: expected codes like 404, 401,403 or a class like 5xx")
    return tuple(codes)


def _query(args, keys) -> EventQuery:
    if args.from_date is None:
        raise UsageError("--from DATE is required (and --to DATE, default today): a search names its days")
    start = _date(args.from_date)
    end = _date(args.to_date) if args.to_date else dt.datetime.now(dt.timezone.utc).date()
    query = EventQuery(
        start,
        end,
        ips=tuple(args.ip or ()),
        users=tuple(args.user or ()),
        path_prefix=args.path_prefix,
        statuses=_statuses(args.status or []),
    )
    if args.rule:
        query = dataclasses.replace(
            query, windows=rule_windows(args.archive, args.rule, start, end, keys), from_rule=True
        )
    return query


def _shape(args) -> dict:
    """What was searched, for the audit trail: which fields and how many values, never the values themselves."""
    return {
        "from": args.from_date,
        "to": args.to_date,
        "tier": args.tier,
        "ip": len(args.ip or ()),
        "user": len(args.user or ()),
        "path_prefix": args.path_prefix is not None,
        "status": args.status,
        "rule": args.rule,
        "limit": args.limit,
    }


def _search(args, config, keys, act) -> SearchStats:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be >= 1")
    query = _query(args, keys)
    stats = SearchStats()
    writer = RecordWriter(sys.stdout, args.format, ACCESS_EVENT.names)
    try:
        for rows in search_events(
            args.archive, keys, query, tier=args.tier, limit=args.limit, build_indexes=args.build_indexes, stats=stats
        ):
            writer.write(rows)
        writer.close()
    except BrokenPipeError:  # `| head` closed the pipe: a normal way to stop early
        stats.stopped_early = True
    finally:
        for path, rows in stats.returned.items():
            act.touched(path, rows, "read")
        act.detail = json.dumps(stats.counts(), sort_keys=True)
    return stats


def run(args) -> int:
    try:
        config = load_or_report(args.config)
        command = "search index" if args.build_index else "search"
        with authorized_action(config, args.archive, command, args, "search", _shape(args)) as (grant, act):
            keys = keys_of(config, grant)
            if args.build_index:
                built, kept = build_indexes(args.archive, keys, args.tier)
                act.detail = f"{built} file(s) indexed, {kept} already indexed"
                print(f"indexed {built} file(s); {kept} already had a valid index", file=sys.stderr)
                return EXIT_OK
            stats = _search(args, config, keys, act)
    except AuditRefusal as refusal:
        return error(str(refusal))
    except (UsageError, SearchError, AuditError) as problem:
        return error(str(problem))
    except (KeyringError, ArchiveReadError, OSError) as problem:
        print(f"logwarden: error: cannot search {args.archive}: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as problem:  # said once, without a traceback wall; the audit trail has the failed entry
        print(f"logwarden: error: search failed: {type(problem).__name__}: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"logwarden search: {stats.rows} event(s) from {stats.files} file(s) in {stats.partitions} partition(s); "
        f"{stats.row_groups_decrypted} of {stats.row_groups} row groups decrypted whole"
        + (f", {stats.indexes_built} file(s) newly indexed" if stats.indexes_built else "")
        + (" (stopped at --limit)" if stats.stopped_early else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "search",
        "search archived events by time, IP, user, path, status or alert",
        "Search the encrypted archive's events; needs a role that may search, and a reason.",
        EPILOG,
    )
    parser.add_argument("--archive", required=True, metavar="DIR", help="the archive (the --output of batch)")
    add_access_arguments(parser)
    parser.add_argument("--from", dest="from_date", metavar="DATE", help="first day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="to_date", metavar="DATE", help="last day, inclusive (default: today)")
    parser.add_argument("--ip", action="append", metavar="ADDR|CIDR", help="client address or network (repeatable)")
    parser.add_argument("--user", action="append", metavar="NAME", help="user name (repeatable)")
    parser.add_argument("--path-prefix", metavar="P", help="URL path starting with P")
    parser.add_argument("--status", action="append", metavar="CODES", help="status codes: 404, 401,403 or 5xx")
    parser.add_argument("--rule", metavar="RULE_ID", help="the events behind this rule's alerts")
    parser.add_argument("--tier", choices=("online", "all"), default="online", help="all: the archive tier too")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--limit", type=int, metavar="N", help="stop after N events")
    parser.add_argument("--no-index-update", dest="build_indexes", action="store_false", help="never write indexes")
    parser.add_argument("--build-index", action="store_true", help="index every unindexed file, then exit")
    add_config_argument(parser)
    parser.set_defaults(run=run)
