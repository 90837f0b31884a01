"""``logwarden archive verify [--deep]``: is the archive whole, encrypted and readable with our keys?"""

from __future__ import annotations

import dataclasses

from pipelines.commands.authorize import add_access_arguments, authorized_action, keys_of
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
from retention.audit import AuditError, AuditRefusal
from retention.keyring import Keyring, KeyringError
from retention.verify import INFO, verify_tiers

EPILOG = """\
examples:
  logwarden archive verify out/              # manifests, checksums, encrypted footers, key ids (no key needed)
  logwarden archive verify out/ --deep --role ops --reason weekly-check   # also decrypt every file
      (audited; with the keys sealed to the role, see 'logwarden keys add-role')
  logwarden archive verify out/ --deep --role custodian --reason restore-test \
      --keyring /srv/keyring --root-key-file /secure/root.key               # the custodian, with the root key
  logwarden archive verify out/ --repair     # first remove what killed runs left (files no manifest lists)

Exit status: 0 when everything checks out, 1 when something is damaged,
missing or unreadable, 2 on a usage error.  Crypto-shredded months are listed,
not counted as damage; files no manifest lists are never read and only warned about.
"""


def _verify(args) -> int:
    check_archive_dir(args.archive, flag="")
    try:
        full_config = load_or_report(args.config)
        config = full_config.keys
        keyring_dir = args.keyring or config.keyring
        keyring = Keyring(keyring_dir)
        if args.deep:  # decrypts every row, personal columns included: an audited read, by a role's own keys
            keys = dataclasses.replace(
                config, keyring=keyring_dir, root_key_file=args.root_key_file or config.root_key_file
            )
            full_config = dataclasses.replace(full_config, keys=keys)
            with authorized_action(full_config, args.archive, "archive verify", args, "verify") as (grant, act):
                reader = keys_of(full_config, grant)
                report = verify_tiers(args.archive, keyring, reader, repair=args.repair)
                act.rows = report.rows
                act.detail = f"{report.decrypted_files} files decrypted, {len(report.errors)} problem(s)"
        else:
            report = verify_tiers(args.archive, keyring if keyring.exists() else None, None, repair=args.repair)
    except (UsageError, KeyringError, AuditError) as problem:
        return error(str(problem))
    except AuditRefusal as refusal:
        return error(str(refusal))
    if report.repaired is not None:
        print(f"{args.archive}: repaired: {report.repaired.summary()}")
    for finding in report.findings:
        if finding.level != INFO or args.verbose_findings:
            print(finding)
    print(
        f"{args.archive}: {report.partitions} partitions, {report.files} files, {report.rows} rows"
        + (f", {report.decrypted_files} files decrypted" if args.deep else "")
        + (f", {report.shredded_partitions} partitions crypto-shredded" if report.shredded_partitions else "")
        + (f": {len(report.errors)} problem(s)" if report.errors else ": ok")
    )
    return EXIT_OK if report.ok else EXIT_FAILURE


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "archive",
        "check the encrypted archive",
        "Check the encrypted Parquet archive against its manifests and keys.",
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="check manifests, checksums and (--deep) decryptability")
    verify.add_argument("archive", metavar="DIR", help="the archive (the --output of logwarden batch)")
    verify.add_argument("--deep", action="store_true", help="decrypt every file with --role's keys (action verify)")
    verify.add_argument(
        "--repair", action="store_true", help="remove files of killed runs first (those no manifest lists)"
    )
    verify.add_argument("--keyring", metavar="DIR", help="keyring directory (default: keys.keyring)")
    verify.add_argument(
        "--root-key-file",
        metavar="FILE",
        help="root key, for a role that holds it (default: $LOGWARDEN_ROOT_KEY, keys.root_key_file)",
    )
    add_access_arguments(verify)
    verify.add_argument("--show-shredded", dest="verbose_findings", action="store_true", help="list shredded months")
    add_config_argument(verify)
    verify.set_defaults(run=_verify)
