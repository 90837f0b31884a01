"""``logwarden hold add|list|release``: legal holds that stop retention from moving, deleting or shredding days."""

from __future__ import annotations

from pipelines.commands.authorize import authorized_action
from pipelines.commands.common import (
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    check_archive_dir,
    error,
    load_or_report,
)
from retention.audit import AuditError, AuditRefusal, os_user
from retention.holds import HoldError, HoldStore, parse_day

EPILOG = """\
examples:
  logwarden hold add --archive out/ --from 2026-03-01 --to 2026-03-31 --role ops --reason "case 2026-114"
  logwarden hold list --archive out/
  logwarden hold release H1 --archive out/ --role ops --reason "case 2026-114 closed"

Held days stay where they are (online or archived) and are never deleted; a
month with a held day keeps its keys.  Adding and releasing are audited.
"""


def _who() -> str:
    return os_user()[0]


def _add(args) -> int:
    config = load_or_report(args.config)
    first, last = parse_day(args.first_day, "--from"), parse_day(args.last_day, "--to")
    with authorized_action(config, args.archive, "hold add", args, "retention") as (_grant, act):
        hold = HoldStore(args.archive).add(first, last, args.reason, _who())
        act.query = {"hold_id": hold.hold_id, "from": str(first), "to": str(last)}
        act.detail = hold.describe()
    print(f"placed hold {hold.describe()}")
    return EXIT_OK


def _list(args) -> int:
    check_archive_dir(args.archive)
    holds = HoldStore(args.archive).holds()
    shown = [h for h in holds if h.active or args.all]
    for hold in shown:
        print(f"{hold.describe()}  (by {hold.created_by} {hold.created})")
    if not shown:
        print("(no active holds)" if holds else "(no holds)")
    return EXIT_OK


def _release(args) -> int:
    config = load_or_report(args.config)
    store = HoldStore(args.archive)
    store.get(args.hold_id)  # a clear error for an unknown id, before the trail records an attempt
    with authorized_action(config, args.archive, "hold release", args, "retention") as (_grant, act):
        act.query = {"hold_id": args.hold_id}
        hold = store.release(args.hold_id, args.reason, _who())
        act.detail = hold.describe()
    print(f"released hold {hold.describe()}")
    return EXIT_OK


def _guarded(action):
    def run(args) -> int:
        try:
            return action(args)
        except (UsageError, HoldError, AuditError, AuditRefusal) as problem:
            return error(str(problem))

    return run


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "hold",
        "place, list or release legal holds on archived days",
        "Legal holds: days that retention must keep, wherever they are, until released.",
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, run):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--archive", metavar="DIR", required=True, help="the archive (the --output of batch)")
        add_config_argument(sub)
        sub.set_defaults(run=_guarded(run))
        return sub

    add = action("add", "hold every day from --from to --to (inclusive)", _add)
    add.add_argument("--from", dest="first_day", required=True, metavar="YYYY-MM-DD", help="first held day")
    add.add_argument("--to", dest="last_day", required=True, metavar="YYYY-MM-DD", help="last held day")
    add.add_argument("--reason", required=True, metavar="TEXT", help="why (case, request), for the audit trail")
    add.add_argument("--role", metavar="ROLE", help="the role you act as: one that may take 'retention' (ops)")
    listing = action("list", "list active holds (--all: released ones too)", _list)
    listing.add_argument("--all", action="store_true", help="also released holds")
    release = action("release", "release a hold: its days follow the retention policy again", _release)
    release.add_argument("hold_id", metavar="ID", help="the hold, e.g. H1")
    release.add_argument("--reason", required=True, metavar="TEXT", help="why, for the audit trail")
    release.add_argument("--role", metavar="ROLE", help="the role you act as: one that may take 'retention' (ops)")
