"""``logwarden keys add-role|grant|revoke|roles``: the roles' own keys, managed by the custodian (the root key)."""

from __future__ import annotations

import dataclasses
import sys

from pipelines.commands.authorize import keys_of
from pipelines.commands.common import EXIT_OK, UsageError, load_or_report
from retention.access.policy import AccessDenied, check, holds_root_key, reads_archive, role_key_file
from retention.audit import AuditRefusal
from retention.keyring import Keyring
from retention.role_keys import add_role, grant, revoke
from retention.roles import RoleError, RoleRegistry, check_role_name, role_key_env
from retention.sealing import encode_key

EPILOG = """\
  logwarden keys add-role --all --archive out/ --reason setup    # a key for every configured role
  logwarden keys grant security --archive out/ --reason SEC-12   # seal every month to it (root key)
  logwarden keys revoke security --archive out/ --reason SEC-13  # then: logwarden keys rotate
"""


def _custodian(args):
    config = load_or_report(args.config)
    if args.keyring:
        config = dataclasses.replace(config, keys=dataclasses.replace(config.keys, keyring=args.keyring))
    if args.root_key_file:
        config = dataclasses.replace(config, keys=dataclasses.replace(config.keys, root_key_file=args.root_key_file))
    try:
        return config, check(config, args.role, "keys", args.reason)
    except AccessDenied as refusal:
        raise AuditRefusal(f"access refused: {refusal}") from None


def _name(text: str) -> str:
    try:
        return check_role_name(text)
    except RoleError as problem:
        raise UsageError(str(problem)) from None


def _say(text: str) -> None:
    print(f"logwarden: {text}", file=sys.stderr)


def _add_role(args) -> int:
    config, who = _custodian(args)
    names = sorted(config.access.roles) if args.all else [_name(args.name)] if args.name else []
    if not names:
        raise UsageError("name a role, or --all for every role in the config")
    registry = RoleRegistry(config.keys.keyring)
    existing = {record.role for record in registry.roles()}
    custodian = None
    done = []
    for name in names:
        if holds_root_key(config, name):
            _say(f"{name}: unlocks with the root key (it manages keys); no role key needed")
            continue
        if name in existing:
            if args.all:
                continue
            raise UsageError(f"role {name!r} already has a key; revoke and re-grant, or pick another name")
        if name not in config.access.roles:
            _say(f"warning: {name} is not in the config's access.roles; it can take no action until it is")
        key_file = None if args.print_secret else (args.key_file or role_key_file(config, name))
        new = add_role(config.keys.keyring, name, key_file)
        where = f"written to {new.key_file} (owner-only)" if new.key_file else f"set ${role_key_env(name)} to it"
        if new.key_file is None:
            print(f"{role_key_env(name)}={encode_key(new.secret)}")
        _say(f"{name}: new role key, {where}; give it to that role's holders only")
        sealed = 0
        if reads_archive(config.access.roles.get(name, ())):
            custodian = custodian or keys_of(config, who)
            sealed = len(grant(custodian, name))
            _say(f"{name}: granted: {sealed} key version(s) sealed to it, and every future month")
        else:
            _say(f"{name}: reads no archive data, so it holds no archive key")
        done.append(f"{name}: {sealed} key version(s) sealed")
    args.audit_action.detail = "; ".join(done) or "no new role"
    return EXIT_OK


def _grant(args) -> int:
    config, who = _custodian(args)
    sealed = grant(keys_of(config, who), _name(args.name))
    args.audit_action.detail = f"{args.name}: {len(sealed)} key version(s) sealed"
    print(f"{args.name}: {len(sealed)} key version(s) sealed to it; future months will be too")
    return EXIT_OK


def _revoke(args) -> int:
    config, _who = _custodian(args)
    deleted = revoke(config.keys.keyring, _name(args.name))
    args.audit_action.detail = f"{args.name}: {deleted} sealed key version(s) deleted"
    print(f"{args.name}: {deleted} sealed key version(s) deleted; no future month will be sealed to it")
    print(
        "keys it already copied stay known to it: run 'logwarden keys rotate --archive DIR' "
        "so new data uses keys it never had",
        file=sys.stderr,
    )
    return EXIT_OK


def _roles(args) -> int:
    config = load_or_report(args.config)
    keyring_dir = args.keyring or config.keys.keyring
    Keyring(keyring_dir).root_public()
    registry = RoleRegistry(keyring_dir)
    records = {record.role: record for record in registry.roles()}
    print(f"{'role':<12} {'actions':<34} {'key':<12} archive keys")
    for name in sorted(set(config.access.roles) | set(records)):
        actions = ",".join(config.access.roles.get(name, ())) or "(not in config)"
        if holds_root_key(config, name):
            key, sealed = "root key", "all (root)"
        elif name in records:
            key = "registered"
            count = len(registry.granted_ids(name))
            sealed = f"{count} version(s)" + ("" if records[name].reads else ", not granted")
        else:
            key, sealed = "none", "-"
        print(f"{name:<12} {actions:<34} {key:<12} {sealed}")
    return EXIT_OK


def register(action) -> None:
    """Add the role actions to ``logwarden keys`` (``action`` makes a sub-parser with the keyring options)."""
    add = action("add-role", "make a role's key pair; grant it the archive keys if its actions read", _add_role)
    add.add_argument("name", nargs="?", metavar="ROLE", help="the role (see access.roles)")
    add.add_argument("--all", action="store_true", help="every configured role that has no key yet")
    add.add_argument("--key-file", metavar="FILE", help="where to write its secret (default: access.role_keys_dir)")
    add.add_argument("--print-secret", action="store_true", help="print the secret (for a secret store) instead")
    grant_ = action("grant", "seal every month's private halves to a role (needs the root key)", _grant)
    grant_.add_argument("name", metavar="ROLE")
    revoke_ = action("revoke", "delete a role's sealed keys and stop sealing new months to it", _revoke)
    revoke_.add_argument("name", metavar="ROLE")
    action("roles", "list roles, their actions and the archive keys sealed to them", _roles, audited=False)
