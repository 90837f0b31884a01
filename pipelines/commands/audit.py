"""``logwarden audit verify|show``: is the audit trail intact, and who did what to the archive?"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    error,
    load_or_report,
)
from retention.audit import FIELDS, RESULTS, AuditError, AuditLog, EntryFilter, default_log_path, read_audit_key, select
from retention.audit import verify_log as verify_trail

EPILOG = """\
examples:
  logwarden audit verify --archive out/
  logwarden audit verify --archive out/ --expect-head 812:4be1…   # the head recorded elsewhere last time
  logwarden audit show --archive out/ --since 2026-11-01 --role security
  logwarden audit show --archive out/ --command "retention apply" --format jsonl

'audit verify' checks every entry's hash and HMAC (with the audit key from
$LOGWARDEN_AUDIT_KEY or audit.key_file; without it, hashes and links only),
the sequence and the chain, and prints the head: record it somewhere else (a
ticket, another host) and pass it back with --expect-head to detect a
truncated or rewritten trail.  Exit status: 0 intact, 1 tampered, 2 usage.
"""


def _log_path(args, config):
    if config.audit.log:
        return config.audit.log
    if not args.archive:
        raise UsageError("name the archive whose audit trail to read (--archive DIR) or set audit.log")
    return str(default_log_path(args.archive))


def _verify(args) -> int:
    try:
        config = load_or_report(args.config)
        path = _log_path(args, config)
        if not args.expect_head and not os.path.exists(path):  # "0 entries: ok" would pass a deleted trail
            raise UsageError(
                f"no audit trail at {path}: nothing to verify (a mistyped --archive, or a deleted trail: "
                "--expect-head SEQ:HASH with a head recorded earlier tells them apart)"
            )
        key = read_audit_key(config.audit.key_file)
        report = verify_trail(path, key, args.expect_head)
    except (UsageError, AuditError) as problem:
        return error(str(problem))
    for finding in report.findings:
        print(finding)
    if report.unfinished:
        listed = ", ".join(str(seq) for seq in report.unfinished[:10])
        print(f"note: {len(report.unfinished)} action(s) started and never ended (killed?): entries {listed}")
    checked = "hashes, HMACs and chain" if report.macs_checked else "hashes and chain (no audit key: HMACs NOT checked)"
    verdict = f"{len(report.errors)} problem(s)" if report.errors else "ok"
    print(f"{path}: {report.entries} entries, {checked}: {verdict}")
    if report.head:
        print(f"head: {report.head}")
    return EXIT_OK if report.ok else EXIT_FAILURE


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad date {text!r}: expected YYYY-MM-DD") from None


def _summary(entry) -> str:
    text = {name: "-" if entry.get(name) in (None, "") else str(entry.get(name)) for name in FIELDS}
    files = entry.get("files") or []
    touched = f"{len(files)} files/{entry.get('rows') or 0} rows" if files or entry.get("rows") else "-"
    detail = f"  [{entry['detail']}]" if entry.get("detail") else ""
    return (
        f"{text['seq']:>6} {text['time'][:19]:<19} {text['user']:<12} {text['role']:<10} {text['command']:<18} "
        f"{text['result']:<8} {touched:<18} {text['reason']}{detail}"
    )


def _show(args) -> int:
    try:
        config = load_or_report(args.config)
        path = _log_path(args, config)
        where = EntryFilter(
            since=_date(args.since) if args.since else None,
            until=_date(args.until) if args.until else None,
            role=args.role,
            command=args.command_name,
            user=args.user,
            result=args.result,
        )
        log = AuditLog(path, None)
        if not log.path.exists():
            raise UsageError(f"no audit trail at {path}")
        entries = list(log.entries())
        if not args.all:  # a finished action's end entry says all its start entry did; keep unfinished starts
            ended = {e.get("begin") for e in entries if e.get("result") != "started"}
            entries = [e for e in entries if e.get("result") != "started" or e["seq"] not in ended]
        chosen = select(entries, where)
        if args.format == "table":
            print(f"{'seq':>6} {'time (UTC)':<19} {'user':<12} {'role':<10} {'command':<18} {'result':<8} "
                  f"{'touched':<18} reason")  # fmt: skip
        shown = 0
        for entry in chosen:
            if args.limit and shown >= args.limit:
                break
            if args.format == "jsonl":
                doc = {name: entry.get(name) for name in FIELDS} | {"hash": entry.get("hash")}
                sys.stdout.write(json.dumps(doc, sort_keys=False) + "\n")
            else:
                print(_summary(entry))
            shown += 1
    except (UsageError, AuditError) as problem:
        return error(str(problem))
    if args.format == "table":
        print(f"({shown} entries; 'audit verify' tells whether they are genuine)", file=sys.stderr)
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "audit",
        "verify or list the tamper-evident audit trail",
        "The audit trail: every retention run, hold change, key operation and read of personal data.",
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    verify = actions.add_parser("verify", help="check the trail's hashes, HMACs and chain; print its head")
    verify.add_argument("--archive", metavar="DIR", help="the archive whose trail to check (default trail location)")
    verify.add_argument("--expect-head", metavar="SEQ:HASH", help="a head printed by an earlier verify")
    add_config_argument(verify)
    verify.set_defaults(run=_verify)

    show = actions.add_parser("show", help="list entries, filtered by date, role, command, user or result")
    show.add_argument("--archive", metavar="DIR", help="the archive whose trail to list")
    show.add_argument("--since", metavar="YYYY-MM-DD", help="entries on or after this day (UTC)")
    show.add_argument("--until", metavar="YYYY-MM-DD", help="entries on or before this day (UTC)")
    show.add_argument("--role", help="entries of this role only")
    show.add_argument("--command", dest="command_name", metavar="COMMAND", help="commands starting with this")
    show.add_argument("--user", help="OS users containing this")
    show.add_argument("--result", choices=RESULTS, help="entries with this result only")
    show.add_argument("--all", action="store_true", help="also the 'started' entry of every finished action")
    show.add_argument("--format", choices=("table", "jsonl"), default="table")
    show.add_argument("--limit", type=int, default=0, metavar="N", help="at most N entries")
    add_config_argument(show)
    show.set_defaults(run=_show)
