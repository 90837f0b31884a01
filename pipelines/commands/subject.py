"""``logwarden subject export|erase|redact``: one person's records, everywhere in the archive, audited by counts."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

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
from pipelines.graph import ingest_signer
from retention.access import subject as requests
from retention.access.output import RecordWriter, union_columns
from retention.audit import AuditError, AuditRefusal
from retention.commit import CommitError
from retention.keyring import KeyringError
from retention.layout import DATASETS

EPILOG = """\
examples:
  logwarden subject export --archive out/ --role privacy --reason DSR-77 \\
      --user carol.d --email carol@example.org --ip 192.0.2.44 --output carol.jsonl
  logwarden subject erase --archive out/ --role privacy --reason DSR-78 --user carol.d --ip 192.0.2.44 --yes
  logwarden subject redact --archive out/ --role privacy --reason DSR-79 --user carol.d \\
      --field user_agent_original --value "(corrected)" --yes

A record is the subject's when a user or address column equals what was given,
or a free-text column (raw dead-letter line, error message, alert evidence)
contains it as a whole token, or a URL or referrer contains the e-mail address.
Events, errors, dead letters and alerts are searched, online and archive tier.
erase and redact rewrite only the files holding such records, each partition in
one atomic commit, and print per file the rows before, matched and after.
The audit trail records the counts and files, never the subject's values.
Exit status: 0 done, 1 on an unreadable archive, 2 on a usage error or a refused role.
"""


def _subject(args) -> requests.Subject:
    try:
        return requests.Subject(tuple(args.user or ()), tuple(args.ip or ()), tuple(args.email or ()))
    except requests.SubjectError as problem:
        raise UsageError(str(problem)) from None


def _summary(searched: dict, matched: dict) -> dict:
    return {
        "searched": searched,
        "matched": matched,
        "tiers": ["online", "archive"],
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def _export(args, config, keys, subject, act) -> int:
    output = Path(args.output)
    if output.exists():
        raise UsageError(f"{output} already exists; refusing to overwrite an export")
    searched: dict = {}
    matched: dict = {}
    tmp = output.with_name(f".{output.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner-only
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        writer = RecordWriter(fh, args.format, union_columns(list(DATASETS.values())), extra=("dataset",))
        for found in requests.find(args.archive, keys, subject, searched):
            writer.write(requests.read_matches(found, keys), dataset=found.file.dataset)
            matched[found.file.dataset] = matched.get(found.file.dataset, 0) + found.matched
            act.touched(found.file.path, found.matched, "read")
        for found in requests.find_alerts(args.archive, subject, searched):
            writer.write_records([a for a, hit in zip(found.alerts, found.mask, strict=True) if hit], dataset="alerts")
            matched["alerts"] = matched.get("alerts", 0) + found.matched
            act.touched(found.path, found.matched, "read")
        writer.close()
    os.replace(tmp, output)
    summary = _summary(searched, matched)
    summary_path = output.with_name(output.name + ".summary.json")
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    act.detail = json.dumps({"matched": matched}, sort_keys=True)
    total = sum(matched.values())
    print(f"exported {total} record(s) to {output} (owner-only; it holds personal data)", file=sys.stderr)
    for dataset, counts in sorted(searched.items()):
        print(
            f"  {dataset:<13} searched {counts['files']} file(s), {counts['rows']} row(s); "
            f"matched {matched.get(dataset, 0)}",
            file=sys.stderr,
        )
    print(f"  summary of what was searched: {summary_path}", file=sys.stderr)
    return EXIT_OK


def _rewrite(args, config, keys, subject, act) -> int:
    redacting = args.subject_action == "redact"
    if redacting:
        try:
            requests.check_redactable(args.field, args.value)
        except requests.SubjectError as problem:
            raise UsageError(str(problem)) from None
    found = list(requests.find(args.archive, keys, subject))
    if redacting:  # only datasets that have the field
        found = [f for f in found if args.field in DATASETS[f.file.dataset].names]
    alerts = list(requests.find_alerts(args.archive, subject))
    rows = sum(f.matched for f in found) + sum(a.matched for a in alerts)
    files = len(found) + len(alerts)
    verb = f"set {args.field} on" if redacting else "erase"
    if not args.yes:
        act.detail = f"not confirmed: would {verb} {rows} record(s) in {files} file(s)"
        raise UsageError(f"this would {verb} {rows} record(s) in {files} file(s); re-run with --yes to do it")
    transform = requests.redact_rows(args.field, args.value) if redacting else requests.erase_rows
    run_id = "subject-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"
    changes = requests.rewrite(keys, found, transform, run_id, config.archive, signer=ingest_signer(config.keys))
    changes += [requests.rewrite_alerts(a, args.field if redacting else None, args.value) for a in alerts]
    print(f"{'dataset':<13} {'day':<10} {'rows before':>11} {'matched':>8} {'after':>7}  file -> new file")
    for change in changes:
        act.touched(change.file, change.rows_before, "rewritten" if change.new_file else "removed")
        print(
            f"{change.dataset:<13} {change.day:<10} {change.rows_before:>11} {change.rows_matched:>8} "
            f"{change.rows_after:>7}  {change.file} -> {change.new_file or '(removed: no rows left)'}"
        )
    act.detail = json.dumps(
        {"files": len(changes), "rows_matched": sum(c.rows_matched for c in changes), "field": args.field}
        if redacting
        else {"files": len(changes), "rows_erased": sum(c.rows_matched for c in changes)},
        sort_keys=True,
    )
    done = "corrected" if redacting else "erased"
    print(f"{done} {sum(c.rows_matched for c in changes)} record(s) in {len(changes)} file(s)", file=sys.stderr)
    return EXIT_OK


def run(args) -> int:
    try:
        config = load_or_report(args.config)
        subject = _subject(args)
        query = {"users": len(subject.users), "ips": len(subject.ips), "emails": len(subject.emails)}
        command = f"subject {args.subject_action}"
        with authorized_action(config, args.archive, command, args, "subject", query) as (grant, act):
            keys = keys_of(config, grant)
            if args.subject_action == "export":
                return _export(args, config, keys, subject, act)
            return _rewrite(args, config, keys, subject, act)
    except AuditRefusal as refusal:
        return error(str(refusal))
    except (UsageError, AuditError, requests.SubjectError) as problem:
        return error(str(problem))
    except (KeyringError, CommitError, OSError) as problem:
        print(f"logwarden: error: {args.subject_action} failed on {args.archive}: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as problem:  # said once, without a traceback wall; the audit trail has the failed entry
        print(f"logwarden: error: {args.subject_action} failed: {type(problem).__name__}: {problem}", file=sys.stderr)
        return EXIT_FAILURE


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "subject",
        "export, correct or erase one person's records (privacy requests)",
        "A person's records across the archive: export them, correct a field, or erase them.",
        EPILOG,
    )
    actions = parser.add_subparsers(dest="subject_action", metavar="ACTION", required=True)

    def action(name: str, help_text: str):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--archive", required=True, metavar="DIR", help="the archive (the --output of batch)")
        add_access_arguments(sub)
        sub.add_argument("--user", action="append", metavar="NAME", help="the subject's user name (repeatable)")
        sub.add_argument("--ip", action="append", metavar="ADDR", help="an address proved theirs (repeatable)")
        sub.add_argument("--email", action="append", metavar="ADDR", help="their e-mail address (repeatable)")
        add_config_argument(sub)
        sub.set_defaults(run=run)
        return sub

    export = action("export", "write every record of the subject to a file (JSON lines or CSV)")
    export.add_argument("--output", required=True, metavar="FILE", help="the export (created owner-only)")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    erase = action("erase", "remove the subject's records by rewriting only the files that hold them")
    erase.add_argument("--yes", action="store_true", help="really erase (it cannot be undone)")
    erase.set_defaults(field=None, value=None)
    redact = action("redact", "correct one field of the subject's records, rewriting only those files")
    redact.add_argument("--field", required=True, help="the field to correct (e.g. user_agent_original)")
    redact.add_argument("--value", help="the corrected value (default: empty)")
    redact.add_argument("--yes", action="store_true", help="really rewrite")
