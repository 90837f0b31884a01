"""``logwarden keys init|list|rotate|destroy|export-public``: the archive's master keys.

Every command that changes keys or hands them out writes an audit entry to the
trail of ``--archive`` (or ``audit.log``); ``list`` shows public facts only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys

from pipelines.commands import key_roles
from pipelines.commands.audited import audited_action
from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    error,
    load_or_report,
)
from retention import signing
from retention.audit import AuditError, AuditRefusal
from retention.keyring import (
    PURPOSES,
    ROOT_KEY_ENV,
    InitResult,
    Keyring,
    KeyringError,
    check_period,
    default_signing_key_file,
    import_public_keys,
    init_keyring,
    months_from,
    read_root_key,
)
from schemas.config import KeysConfig

EPILOG = f"""\
examples:
  logwarden keys init --archive out/        # keyring and root key in $LOGWARDEN_HOME (~/.local/share/logwarden)
  logwarden keys init --archive out/ --months-ahead 12   # custodian: this month's and the next 11 months' keys
  logwarden keys list
  logwarden keys rotate --archive out/ --period 2026-01    # new versions; files written before keep opening
  logwarden keys destroy --archive out/ --period 2025-01 --yes --reason "retention ended"   # crypto-shred
  logwarden keys export-public --archive out/ /mnt/ingest-keyring   # for the ingest host: writes, never reads
  logwarden keys import --archive out/ /mnt/ingest-keyring  # keys the ingest host had to create, back to readers
{key_roles.EPILOG}
init, rotate, destroy, export-public, import, add-role, grant and revoke are audited:
they write to the audit trail of --archive DIR (or of audit.log when
configured) and refuse to run when it cannot be written.

Master keys are per month of event time: personal-YYYY-MM (personal columns)
and data-YYYY-MM (all other columns and the footer).  Their private halves are
sealed to the root key, which comes from $LOGWARDEN_ROOT_KEY or keys.root_key_file,
and to each role that may read (access.roles), which unlocks with its own key.
"""


def keys_config(args) -> KeysConfig:
    config = load_or_report(args.config).keys
    if args.keyring:
        config = dataclasses.replace(config, keyring=args.keyring)
    if args.root_key_file:
        config = dataclasses.replace(config, root_key_file=args.root_key_file)
    return config


def announce_init(result: InitResult) -> None:
    """Said loudly: a new root key is the one thing whose loss loses the whole archive."""
    say = lambda text: print(f"logwarden: {text}", file=sys.stderr)  # noqa: E731
    say(f"NEW KEYRING created in {result.keyring}")
    if result.root_key_file is None:
        say(f"  its private halves are sealed to the root key in ${ROOT_KEY_ENV}")
    elif result.created_root_key:
        say(f"  NEW ROOT KEY written to {result.root_key_file} (owner-only): without it nobody can read the archive.")
        say("  Back it up now, and keep it off ingest hosts (readers can take it from $" + ROOT_KEY_ENV + ")")
        say("  so that the pipeline which writes the archive cannot read it.")
    else:
        say(f"  its private halves are sealed to the existing root key {result.root_key_file}")


def auto_init(config, archive: str, args) -> None:
    """The first ``batch`` or ``stream`` run creates the keyring: a key operation, audited in ``archive``'s trail."""
    with audited_action(config, archive, "keys init", args, "ops", "automatic: first run without a keyring") as act:
        result = init_keyring(config.keys.keyring, config.keys.root_key_file, exist_ok=True)
        act.detail = f"keyring {result.keyring} (keys.auto_init)"
    announce_init(result)


def _wanted_periods(args) -> list[str]:
    periods = [check_period(p) for p in args.period or ()]
    if args.months_ahead is not None:
        if args.months_ahead < 1:
            raise UsageError("--months-ahead must be 1 or more (this month counts as the first)")
        periods += months_from(dt.datetime.now(dt.timezone.utc).date(), args.months_ahead)
    return sorted(set(periods))


def _init(args) -> int:
    """A new keyring; on an existing one, the months asked for (so ingest hosts find their keys made)."""
    config = keys_config(args)
    periods = _wanted_periods(args)
    keyring = Keyring(config.keyring)
    if keyring.exists():
        if not periods:
            raise UsageError(
                f"a keyring already exists in {keyring.directory}; add months with --months-ahead N or --period YYYY-MM"
            )
    else:
        announce_init(
            init_keyring(config.keyring, config.root_key_file, signing_key_file=config.signing_key_file or None)
        )
    made = []
    for period in periods:
        before = {r.key_id for r in keyring.records()}
        new = [r.key_id for r in keyring.ensure_period(period) if r.key_id not in before]
        made += new
        print(f"{period}: " + (f"created {', '.join(new)}" if new else "keys already present"))
    if periods:
        print(
            f"copy {keyring.directory}/keys/ to the ingest hosts' keyrings "
            "(or re-export with 'logwarden keys export-public --archive DIR TARGET')"
        )
    args.audit_action.detail = f"keyring {keyring.directory}; created {', '.join(made) or '-'}"
    return EXIT_OK


def _import(args) -> int:
    """Ingest-minted keys into the custodian's keyring, so the readers can open what the ingest host wrote."""
    keyring = Keyring(keys_config(args).keyring)
    result = import_public_keys(keyring, args.source)
    for key_id in result.imported:
        print(f"imported {key_id}")
    print(
        f"{len(result.imported)} key version(s) imported, {len(result.already_present)} already present"
        + (f", {len(result.conflicts)} in conflict" if result.conflicts else "")
    )
    for key_id in result.conflicts:
        print(
            f"logwarden: error: {key_id} exists in both keyrings as different keys (or its month was destroyed here); "
            f"files the ingest host wrote under it open only with its own keyring's copy",
            file=sys.stderr,
        )
    args.audit_action.detail = f"imported from {args.source}: {', '.join(result.imported) or '-'}"
    return EXIT_FAILURE if result.conflicts else EXIT_OK


def _list(args) -> int:
    keyring = Keyring(keys_config(args).keyring)
    records = keyring.records()
    current = {}
    for record in records:
        current[(record.purpose, record.period)] = record.version
    print(f"{'key id':<24} {'created':<21} {'state':<8} private half")
    for record in records:
        state = "current" if current[(record.purpose, record.period)] == record.version else "older"
        private = "sealed to root" if record.sealed_private_key else "absent (writer keyring)"
        print(f"{record.key_id:<24} {record.created:<21} {state:<8} {private}")
    for period, tombstone in keyring.destroyed().items():
        print(f"{'*-' + period:<24} {tombstone['destroyed']:<21} {'DESTROYED':<8} crypto-shredded")
    if not records and not keyring.destroyed():
        print("(no keys yet: logwarden batch creates each month's keys when it first writes that month)")
    return EXIT_OK


def _rotate(args) -> int:
    keyring = Keyring(keys_config(args).keyring)
    destroyed = keyring.destroyed()
    periods = args.period or sorted({r.period for r in keyring.records()} - set(destroyed))
    if not periods:
        raise UsageError("no keys to rotate yet; name a month with --period YYYY-MM")
    purposes = [args.purpose] if args.purpose else list(PURPOSES)
    added = []
    for period in periods:
        for purpose in purposes:
            record = keyring.add_version(purpose, check_period(period))
            added.append(record.key_id)
            print(f"{record.key_id}: new current version (older versions still open older files)")
    args.audit_action.detail = f"new versions: {', '.join(added)}"
    return EXIT_OK


def _destroy(args) -> int:
    keyring = Keyring(keys_config(args).keyring)
    period = check_period(args.period)
    victims = [r.key_id for r in keyring.records() if r.period == period]
    keyring.check_destroyable(period)  # a month with no keys: refused, saying why
    if not args.yes:
        listed = ", ".join(victims)
        raise UsageError(
            f"destroying the keys of {period} makes every copy of its data unreadable, forever: {listed}. "
            "Re-run with --yes to do it."
        )
    destroyed = keyring.destroy_period(period)
    args.audit_action.detail = f"destroyed {period}: {', '.join(destroyed) or '-'}"
    print(f"destroyed {len(destroyed)} key version(s) of {period}: {', '.join(destroyed)}")
    print(f"every copy of the {period} archive (backups included) is now unreadable")
    return EXIT_OK


def _export_public(args) -> int:
    keyring = Keyring(keys_config(args).keyring)
    count = keyring.export_public(args.target)
    args.audit_action.detail = f"{count} public key versions to {args.target}"
    print(f"wrote a writer-only keyring ({count} public key versions, no private halves) to {args.target}")
    return EXIT_OK


def _trust(args) -> int:
    """Register a writer's signing key as trusted: its manifests are then read (needs the root key)."""
    config = keys_config(args)
    keyring = Keyring(config.keyring)
    if args.public_key:
        public = signing.decode_public(args.public_key)
    else:
        path = args.signing_key_file or config.signing_key_file or default_signing_key_file(config.keyring)
        public = signing.read_signer(path).public_key
    signer = keyring.trust_signer(public, args.name, read_root_key(config.root_key_file))
    args.audit_action.detail = f"trusted signer {signer} ({args.name})"
    print(f"trusted {signer} ({args.name}): manifests it signs are now read")
    return EXIT_OK


def _signer(args) -> int:
    """Make (or show) this host's signing key and print its public half for the custodian."""
    config = keys_config(args)
    path = args.signing_key_file or config.signing_key_file or default_signing_key_file(config.keyring)
    signer, made = signing.load_or_create_signer(path)
    print(f"{'new ' if made else ''}signing key {path}: {signer.id}")
    print(f"custodian: logwarden keys trust --public-key={signing.encode_public(signer.public_key)} --name NAME")
    return EXIT_OK


def _guarded(action):
    def run(args) -> int:
        try:
            return action(args)
        except (UsageError, KeyringError, AuditError, AuditRefusal, signing.SigningError, ValueError) as problem:
            return error(str(problem))

    return run


def _audited(command: str, action):
    """Run ``action`` inside an audit entry pair on the trail of ``--archive`` (or ``audit.log``)."""

    def run(args) -> int:
        config = load_or_report(args.config)
        with audited_action(config, args.archive, command, args, args.role, args.reason) as act:
            args.audit_action = act
            status = action(args)
            if status != EXIT_OK:
                act.detail = f"exit status {status}"
            return status

    return run


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "keys",
        "create, list, rotate, destroy or export the archive's encryption keys",
        "Manage the keyring that encrypts the Parquet archive (per-month master keys).",
        EPILOG,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, run, audited: bool = True):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        add_config_argument(sub)
        sub.add_argument("--keyring", metavar="DIR", help="keyring directory (default: keys.keyring)")
        sub.add_argument("--root-key-file", metavar="FILE", help="root key file (default: keys.root_key_file)")
        if audited:
            sub.add_argument("--archive", metavar="DIR", help="the archive whose audit trail records this")
            sub.add_argument("--role", default="custodian", help="role acting, for the audit trail (custodian)")
            sub.add_argument("--reason", metavar="TEXT", help="why, for the audit trail")
            run = _audited(f"keys {name}", run)
        sub.set_defaults(run=_guarded(run))
        return sub

    init = action("init", "create a keyring and, unless $LOGWARDEN_ROOT_KEY is set, a root key file", _init)
    init.add_argument("--period", nargs="+", metavar="YYYY-MM", help="also create the keys of these months")
    init.add_argument(
        "--months-ahead", type=int, metavar="N", help="create the keys of this month and the next N-1 (custodian)"
    )
    imported = action("import", "copy keys an ingest host created into this keyring (readers can then open)", _import)
    imported.add_argument("source", metavar="DIR", help="the ingest host's keyring (e.g. copied back from it)")
    action("list", "list key versions and destroyed months", _list, audited=False)
    rotate = action("rotate", "add a new version of master keys (all live months unless --period)", _rotate)
    rotate.add_argument("--period", nargs="+", metavar="YYYY-MM", help="months to rotate")
    rotate.add_argument("--purpose", choices=PURPOSES, help="rotate only this purpose")
    destroy = action("destroy", "crypto-shred one month: delete every version of its keys", _destroy)
    destroy.add_argument("--period", required=True, metavar="YYYY-MM", help="the month to destroy")
    destroy.add_argument("--yes", action="store_true", help="really destroy (it cannot be undone)")
    export = action("export-public", "write a copy of the keyring without private halves (for writers)", _export_public)
    export.add_argument("target", metavar="DIR", help="new directory for the writer-only keyring")
    trust = action(
        "trust", "trust a writer's signing key: readers then read what it signs (needs the root key)", _trust
    )
    trust.add_argument("--public-key", metavar="KEY", help="the writer's public key (as 'keys signer' prints it)")
    trust.add_argument("--signing-key-file", metavar="FILE", help="or the writer's key file on this host")
    trust.add_argument("--name", default="ingest", help="a name for the writer, for people")
    signer = action("signer", "make or show this host's signing key and print its public half", _signer, audited=False)
    signer.add_argument("--signing-key-file", metavar="FILE", help="key file (default: keys.signing_key_file)")
    key_roles.register(action)
