"""``logwarden retention apply``: online 90 days, archived a year, then gone everywhere; holds respected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys

from pipelines.commands.audited import command_log
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
from retention import commit, layout
from retention.apply import RetentionBusy, RetentionError, RetentionRun, plan_for
from retention.audit import AuditError, AuditRefusal
from retention.compaction import CompactionSettings
from retention.holds import HoldError, HoldStore, missing_from
from retention.keyring import Keyring, KeyringError
from retention.policy import Policy

EPILOG = """\
examples:
  logwarden retention apply --archive out/ --dry-run      # print the plan, change nothing
  logwarden retention apply --archive out/ --role ops --reason "daily retention"   # carry it out
  logwarden retention apply --archive out/ --now 2026-06-30 --dry-run   # what would happen on that day

Days older than retention.online_days move (whole ISO-week segments, cut at
month ends) into the archive tier <archive>/archive/: re-compressed, sorted
by client address, encrypted with the same month keys.  A month whose last
day is older than retention.archive_days is deleted from both tiers and its
keys destroyed, so every copy (backups included) is unreadable.  Held days
(logwarden hold) are never moved, deleted or shredded.  Compaction decrypts
and re-encrypts, so a real run needs a role allowed to take "retention"
(ops by default) and that role's keys (its secret in access.role_keys_dir
or $LOGWARDEN_ROLE_KEY_OPS).  A run killed at any point is finished by the
next one.  Real runs are audited; --dry-run only reads manifests, needs no
role and changes nothing.
"""


def _now(text: str | None) -> dt.date:
    today = dt.datetime.now(dt.timezone.utc).date()
    if text is None:
        return today
    try:
        now = dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad --now {text!r}: expected YYYY-MM-DD") from None
    if now > today:
        raise UsageError(f"--now {now} is later than today ({today}): that would expire data before its time")
    return now


def _apply(args) -> int:
    try:
        config = load_or_report(args.config)
        if args.keyring:
            config = dataclasses.replace(config, keys=dataclasses.replace(config.keys, keyring=args.keyring))
        now = _now(args.now)
        policy = Policy(config.retention.online_days, config.retention.archive_days)
        keyring_dir = config.keys.keyring
        if not any(commit.dataset_exists(args.archive, d) for d in layout.DATASETS):
            raise UsageError(f"{args.archive} is not an archive (none of {', '.join(layout.DATASETS)} is there)")
        header = (
            f"retention {'plan' if args.dry_run else 'run'} for {args.archive} at {now} "
            f"(online {policy.online_days} days, archive {policy.archive_days} days)"
        )
        if args.dry_run:
            plan = plan_for(args.archive, Keyring(keyring_dir), now, policy)
            print(header + ":")
            for line in plan.describe() or ["nothing to do"]:
                print(f"  {line}")
            leftovers = [
                commit.recover(args.archive, dry_run=True),
                commit.recover(layout.archive_tier_root(args.archive), dry_run=True),
            ]
            for left in leftovers:
                if left.changed:
                    print(f"  first tidy what killed runs left: {left.summary()}")
            return EXIT_OK
        trail = command_log(config, args.archive)
        vanished = missing_from(HoldStore(args.archive), trail.entries())
        if vanished:
            raise UsageError(
                f"hold(s) {', '.join(vanished)} are in the audit trail but their files are gone from "
                f"{HoldStore(args.archive).directory}: restore them (or release them) before retention may delete"
            )
        settings = CompactionSettings(
            compression_level=config.retention.archive_zstd_level,
            row_group_rows=config.archive.row_group_rows,
            max_file_rows=config.archive.max_file_rows,
        )
        query = {"now": str(now), "online_days": policy.online_days, "archive_days": policy.archive_days}
        with authorized_action(config, args.archive, "retention apply", args, "retention", query) as (grant, act):
            keys = keys_of(config, grant)  # compaction decrypts and re-encrypts: the role's own keys
            report = RetentionRun(args.archive, keys, policy, now, settings).run()
            for item in report.touched:
                act.touched(item["path"], item["rows"], item["change"])
            act.detail = report.summary() + (f"; shredded {', '.join(report.shredded)}" if report.shredded else "")
    except (UsageError, KeyringError, AuditError, AuditRefusal, HoldError) as problem:
        return error(str(problem))
    except RetentionBusy as problem:
        return error(str(problem))
    except (RetentionError, commit.CommitError) as problem:
        print(f"logwarden: error: retention stopped: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(header + ":")
    for line in report.recovered:
        print(f"  tidied what killed runs left: {line}")
    for line in report.done or ["nothing to do"]:
        print(f"  {line}")
    print(report.summary())
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "retention",
        "move, delete and crypto-shred archive data as the retention policy says",
        "Apply the retention policy (retention.online_days, retention.archive_days) to an archive.",
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    apply = actions.add_parser("apply", help="compact, delete and shred what the policy says (or --dry-run)")
    apply.add_argument("--archive", metavar="DIR", required=True, help="the archive (the --output of batch)")
    apply.add_argument("--now", metavar="YYYY-MM-DD", help="the day to apply the policy as of (default: today, UTC)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    apply.add_argument("--keyring", metavar="DIR", help="keyring directory (default: keys.keyring)")
    add_access_arguments(apply)  # a real run needs a role that may take "retention" (default: ops) and a reason
    add_config_argument(apply)
    apply.set_defaults(run=_apply)
