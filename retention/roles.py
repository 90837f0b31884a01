"""Roles enforced by keys: each reading role has its own key pair, and each month's private halves are sealed to it.

Layout inside the keyring directory (all safe to copy: nothing opens without a role's secret)::

    roles/security.json                      the role's public key, and whether months are sealed to it
    grants/security/personal-2026-01@v1.json that key version's private half sealed to the role

A role that reads the archive (``reads: true``) gets every month's private halves,
both purposes: pyarrow cannot read any column of a row group when one column key
is refused, so a ``data``-only grant would open nothing but footers.  A role that
must not see personal data (the planner) therefore holds no archive key at all and
reads only the reports, which contain no personal data.

Writers seal each new month's private half to every reading role as they create
it (``seal_to_readers``), from public keys only, so roles keep up without the
custodian.  ``grant`` seals the existing months (it needs the root key, which the
custodian holds); ``revoke`` deletes a role's seals and stops future ones.  A role
that already copied its keys keeps what it copied: rotate after a revoke so new
data is written under keys it never held.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from retention import sealing, storage
from retention.layout import base_name
from retention.secret_files import create_secret_file

ROLE_KEY_ENV_PREFIX = "LOGWARDEN_ROLE_KEY_"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_CONTEXT = "logwarden role seals "


class RoleError(Exception):
    """A role is unknown, not granted, or its secret is missing or wrong."""


def check_role_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RoleError(f"bad role name {name!r}: use lower-case letters, digits, '-' or '_' (e.g. security)")
    return name


def role_key_env(role: str) -> str:
    """``security`` -> ``LOGWARDEN_ROLE_KEY_SECURITY``: where a role's secret may come from instead of a file."""
    return ROLE_KEY_ENV_PREFIX + check_role_name(role).upper().replace("-", "_")


@dataclasses.dataclass(frozen=True)
class RoleRecord:
    role: str
    public_key: bytes
    reads: bool
    created: str

    def to_json(self) -> dict:
        return {
            "role": self.role,
            "public_key": sealing.encode_key(self.public_key),
            "reads": self.reads,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, doc: Mapping) -> RoleRecord:
        return cls(doc["role"], sealing.decode_key(doc["public_key"]), bool(doc["reads"]), doc.get("created", ""))


def _replace_json(path: str, doc: dict) -> None:
    """Write ``path`` whole or not at all."""
    storage.replace(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _read_json(path: str) -> dict:
    return json.loads(storage.read_text(path))


class RoleRegistry:
    """The roles of one keyring directory and the private halves sealed to them."""

    def __init__(self, keyring_directory: str | os.PathLike):
        self.directory = storage.normalise(keyring_directory)

    def _role_file(self, role: str) -> str:
        return storage.join(self.directory, "roles", f"{check_role_name(role)}.json")

    def _grant_file(self, role: str, key_id: str) -> str:
        return storage.join(self.directory, "grants", check_role_name(role), f"{key_id}.json")

    def _grants(self, role: str) -> list[str]:
        return storage.list_paths(storage.join(self.directory, "grants", check_role_name(role), "*.json"))

    def roles(self) -> list[RoleRecord]:
        found = []
        for path in storage.list_paths(storage.join(self.directory, "roles", "*.json")):
            try:
                found.append(RoleRecord.from_json(_read_json(path)))
            except (ValueError, KeyError) as error:
                raise RoleError(f"{path}: damaged role record ({error})") from None
        return found

    def get(self, role: str) -> RoleRecord:
        try:
            return RoleRecord.from_json(_read_json(self._role_file(role)))
        except FileNotFoundError:
            raise RoleError(
                f"role {role!r} has no key in the keyring {self.directory}: "
                f"the custodian adds it with 'logwarden keys add-role {role} --archive DIR'"
            ) from None

    def add(self, role: str, public_key: bytes, created: str) -> RoleRecord:
        path = self._role_file(role)
        if storage.exists(path):
            raise RoleError(f"role {role!r} already has a key in {self.directory}")
        record = RoleRecord(role, public_key, False, created)
        _replace_json(path, record.to_json())
        return record

    def set_reads(self, role: str, reads: bool) -> RoleRecord:
        record = dataclasses.replace(self.get(role), reads=reads)
        _replace_json(self._role_file(role), record.to_json())
        return record

    def readers(self) -> list[RoleRecord]:
        return [record for record in self.roles() if record.reads]

    def seal(self, role: RoleRecord, key_id: str, private_key: bytes) -> None:
        sealed = sealing.seal(role.public_key, private_key, _CONTEXT + f"{role.role} {key_id}")
        _replace_json(self._grant_file(role.role, key_id), {"key_id": key_id, "role": role.role, "sealed": sealed})

    def sealed(self, role: str, key_id: str) -> str | None:
        try:
            return _read_json(self._grant_file(role, key_id))["sealed"]
        except FileNotFoundError:
            return None

    def granted_ids(self, role: str) -> list[str]:
        return sorted(base_name(path).removesuffix(".json") for path in self._grants(role))

    def unseal(self, role: str, key_id: str, secret: bytes) -> bytes:
        sealed = self.sealed(role, key_id)
        if sealed is None:
            raise RoleError(
                f"role {role!r} holds no key for {key_id}: it was never granted or was revoked "
                f"(the custodian grants with 'logwarden keys grant {role} --archive DIR')"
            )
        try:
            return sealing.unseal(secret, sealed, _CONTEXT + f"{role} {key_id}")
        except sealing.SealError as error:
            raise RoleError(f"the secret given for role {role!r} does not open {key_id} ({error})") from None

    def forget(self, key_ids: list[str]) -> None:
        """Delete every role's seal of these key versions (the month is being destroyed)."""
        for key_id in key_ids:
            for path in storage.list_paths(storage.join(self.directory, "grants", "*", f"{key_id}.json")):
                storage.wipe(path)

    def revoke(self, role: str) -> int:
        """Stop sealing to ``role`` and delete its seals; returns how many were deleted."""
        self.set_reads(role, False)
        deleted = 0
        for path in self._grants(role):
            storage.wipe(path)
            deleted += 1
        return deleted


def seal_to_readers(keyring_directory: str | os.PathLike, key_id: str, private_key: bytes) -> None:
    """Called by the keyring when it creates a key version: every reading role gets its private half."""
    registry = RoleRegistry(keyring_directory)
    for role in registry.readers():
        registry.seal(role, key_id, private_key)


# --- a role's secret ---------------------------------------------------------------------------------------------


def read_role_secret(role: str, key_file: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> bytes:
    """A role's private key from ``$LOGWARDEN_ROLE_KEY_<ROLE>`` if set, else from its owner-only key file."""
    variable = role_key_env(role)
    text, where = environ.get(variable), f"${variable}"
    if not text:
        if key_file is None:
            raise RoleError(f"no secret for role {role!r}: set ${variable} or give its key file")
        path = Path(key_file).expanduser()
        where = str(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise RoleError(f"no secret for role {role!r}: {path} does not exist and ${variable} is not set") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise RoleError(f"role key file {path} is accessible by other users; run: chmod 600 {path}")
        text = path.read_text(encoding="utf-8")
    try:
        return sealing.decode_key(text)
    except ValueError as error:
        raise RoleError(f"the secret of role {role!r} in {where} is not valid ({error})") from None


def write_role_secret(path: str | os.PathLike, secret: bytes) -> Path:
    """A new owner-only key file for a role; never overwrites one."""
    try:
        return create_secret_file(path, (sealing.encode_key(secret) + "\n").encode())
    except FileExistsError:
        raise RoleError(f"{Path(path).expanduser()} already exists; refusing to overwrite a role key") from None


def copy_public(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the role records (public keys only, no seals) into another keyring directory."""
    for record in RoleRegistry(source).roles():
        _replace_json(RoleRegistry(target)._role_file(record.role), record.to_json())
