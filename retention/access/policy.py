"""Who may do what: the configured roles, their actions, and the keys each role unlocks with.

The command line checks a role's actions (``check``) so that a refusal is a
clear message; the keys (``role_keys``) are what actually enforces reading: a
role unlocks only what the keyring sealed to it, whatever the code calling it.
The role that manages keys (action ``keys``, by default ``custodian``)
unlocks with the root key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from retention.keyring import ArchiveKeys, ReaderKeys, reader_keys
from retention.role_keys import role_keys
from schemas.config import ACCESS_ACTIONS, READ_ACTIONS, Config


class AccessDenied(Exception):
    """The role may not take this action, is unknown, or gave no reason."""


@dataclasses.dataclass(frozen=True)
class Authorization:
    role: str
    action: str
    reason: str


def check(config: Config, role: str | None, action: str, reason: str | None) -> Authorization:
    """Raise ``AccessDenied`` unless ``role`` is configured, may take ``action`` and a reason was given."""
    roles = config.access.roles
    if not role:
        raise AccessDenied(f"--role is required for {action} (configured roles: {', '.join(sorted(roles))})")
    if role not in roles:
        raise AccessDenied(f"unknown role {role!r}; configured roles: {', '.join(sorted(roles))}")
    if action not in roles[role]:
        allowed = [r for r, actions in sorted(roles.items()) if action in actions]
        raise AccessDenied(
            f"role {role!r} may not {action} ({ACCESS_ACTIONS[action]}); "
            f"it may: {', '.join(roles[role]) or 'nothing'}. Roles that may: {', '.join(allowed) or 'none'}"
        )
    if not reason or not reason.strip():
        raise AccessDenied(f"--reason is required: say why you {action} (it goes into the audit trail)")
    return Authorization(role, action, reason.strip())


def holds_root_key(config: Config, role: str) -> bool:
    return "keys" in config.access.roles.get(role, ())


def reads_archive(actions: tuple[str, ...]) -> bool:
    """Whether a role with ``actions`` needs the archive's keys sealed to it."""
    return bool(READ_ACTIONS & set(actions))


def role_key_file(config: Config, role: str) -> Path:
    return Path(config.access.role_keys_dir).expanduser() / f"{role}.key"


def role_keys_for(config: Config, role: str, environ: Mapping[str, str] = os.environ) -> ArchiveKeys:
    """The keys ``role`` unlocks: the root key's for the custodian, otherwise only what is sealed to the role."""
    if holds_root_key(config, role):
        keys: ReaderKeys = reader_keys(config.keys.keyring, config.keys.root_key_file, environ)
        return keys
    return role_keys(config.keys.keyring, role, role_key_file(config, role), environ)
