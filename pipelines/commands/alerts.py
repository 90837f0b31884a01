"""``logwarden alerts list|show``: the security team reads alerts from the encrypted archive.

Alerts quote what clients sent, so they are kept encrypted only; reading them
takes the reader role's keys and is recorded in the audit trail like any read
of personal data.
"""

from __future__ import annotations

import json

from pipelines.commands.audited import audited_action
from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    check_archive_dir,
    error,
    load_or_report,
)
from retention.alert_store import read_alerts
from retention.archive_reader import ArchiveReadError
from retention.audit import AuditError
from retention.keyring import KeyringError, reader_keys
from schemas.json_rows import row_to_json_dict

EPILOG = """\
examples:
  logwarden alerts list out/                       # every alert, oldest first
  logwarden alerts list out/ --rule http-sqli --since 2026-11-01
  logwarden alerts show out/ 3f2a9c...              # one alert with its evidence lines, as JSON

Needs the reader role (the keyring plus the root key); each read is audited.
Alerts of crypto-shredded months are gone with them.  Exit status: 0 ok,
1 when the alert is not there, 2 on a usage error.
"""


def _who(alert: dict) -> str:
    return alert.get("source_ip") or alert.get("user_name") or alert.get("group_key") or "-"


def _run(args) -> int:
    try:
        config = load_or_report(args.config)
        check_archive_dir(args.archive, flag="")
        reader = reader_keys(config.keys.keyring, config.keys.root_key_file)
        with audited_action(config, args.archive, f"alerts {args.action}", args, args.role, args.reason) as act:
            alerts = read_alerts(args.archive, reader, getattr(args, "alert_id", None))
            if args.action == "list":
                alerts = [
                    a
                    for a in alerts
                    if (not args.rule or a["rule_id"] == args.rule)
                    and (not args.since or a["last_seen"].strftime("%Y-%m-%d") >= args.since)
                ]
            act.rows = len(alerts)
    except (UsageError, KeyringError, AuditError, ArchiveReadError) as problem:
        return error(str(problem))
    if args.action == "show":
        if not alerts:
            print(f"logwarden: no alert {args.alert_id} in {args.archive}")
            return EXIT_FAILURE
        print(json.dumps(row_to_json_dict(alerts[0]), ensure_ascii=False, indent=2))
        return EXIT_OK
    for a in alerts:
        first = a["first_seen"].strftime("%Y-%m-%d %H:%M:%S")
        print(f"{first}  {a['severity'] or '-':8}  {a['rule_id']:28}  {_who(a):39}  {a['count']:6d}  {a['alert_id']}")
    print(f"{len(alerts)} alert(s)")
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "alerts",
        "read alerts from the encrypted archive",
        "List and show the alerts batch runs raised, decrypted with the reader role's keys.",
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per alert: time, severity, rule, key, count, id")
    listing.add_argument("archive", metavar="DIR", help="the archive (the --output of logwarden batch)")
    listing.add_argument("--rule", help="only alerts of this rule id")
    listing.add_argument("--since", metavar="YYYY-MM-DD", help="only alerts seen on or after this day")
    show = actions.add_parser("show", help="one alert in full, evidence lines included, as JSON")
    show.add_argument("archive", metavar="DIR", help="the archive (the --output of logwarden batch)")
    show.add_argument("alert_id", metavar="ID", help="the alert id (from 'alerts list' or a sink's message)")
    for sub in (listing, show):
        sub.add_argument("--role", default="security", help="role acting, for the audit trail (security)")
        sub.add_argument("--reason", metavar="TEXT", help="why, for the audit trail")
        add_config_argument(sub)
    parser.set_defaults(run=_run)
