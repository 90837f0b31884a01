"""A role's keys as pyarrow's KMS client sees them, and the custodian's operations on roles.

``RoleKeys`` is the key source of every reading role except the custodian: it
opens only what was sealed to that role (``retention.roles``), so a role that
was never granted holds nothing that decrypts the archive, whatever command or
library call it goes through.  The custodian holds the root key
(``retention.keyring.ReaderKeys``) and is the one who grants.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from retention import sealing
from retention.keyring import ArchiveKeys, KeyAccessError, Keyring, KeyringError, ReaderKeys
from retention.roles import RoleError, RoleRecord, RoleRegistry, read_role_secret, write_role_secret
from retention.stamps import utc_stamp


class RoleKeys(ArchiveKeys):
    """One role's view of the keyring: public halves, plus the private halves sealed to this role."""

    def __init__(self, directory: str | os.PathLike, role: str, secret: bytes):
        super().__init__(directory)
        self.role = role
        self._secret = secret
        self._private: dict[str, bytes] = {}
        try:
            record = RoleRegistry(self.directory).get(role)
        except RoleError as error:
            raise KeyAccessError(str(error)) from None
        if sealing.public_key_of(secret) != record.public_key:
            raise KeyAccessError(f"this secret does not belong to role {role!r} of the keyring in {directory}")

    def __getstate__(self):
        return {"directory": self.directory, "role": self.role, "secret": self._secret}

    def __setstate__(self, state):
        self.__init__(state["directory"], state["role"], state["secret"])

    def private_key(self, key_id: str) -> bytes:
        private = self._private.get(key_id)
        if private is None:
            record = self.keyring.record(key_id)  # a destroyed month says so here
            try:
                private = RoleRegistry(self.directory).unseal(self.role, key_id, self._secret)
            except RoleError as error:
                raise KeyAccessError(str(error)) from None
            if sealing.public_key_of(private) != record.public_key:
                raise KeyAccessError(f"the key sealed to role {self.role!r} for {key_id} does not match the keyring")
            self._private[key_id] = private
        return private


def role_keys(
    directory: str | os.PathLike, role: str, key_file: str | os.PathLike | None, environ: Mapping[str, str] = os.environ
) -> RoleKeys:
    """The keys of ``role`` with its secret from ``$LOGWARDEN_ROLE_KEY_<ROLE>`` or ``key_file``."""
    try:
        secret = read_role_secret(role, key_file, environ)
    except RoleError as error:
        raise KeyAccessError(str(error)) from None
    return RoleKeys(directory, role, secret)


@dataclasses.dataclass(frozen=True)
class NewRole:
    record: RoleRecord
    key_file: Path | None  # None when the secret was handed back to be stored elsewhere
    secret: bytes


def add_role(directory: str | os.PathLike, role: str, key_file: str | os.PathLike | None) -> NewRole:
    """Make a key pair for ``role`` and register its public half; the secret goes to ``key_file`` (owner-only)."""
    Keyring(directory).root_public()  # a clear error when there is no keyring
    registry = RoleRegistry(directory)
    try:
        registry.get(role)
    except RoleError:
        pass
    else:
        raise KeyringError(f"role {role!r} already has a key in {directory}")
    secret = sealing.new_private_key()
    path = None
    if key_file is not None:
        try:
            path = write_role_secret(key_file, secret)
        except RoleError as error:
            raise KeyringError(str(error)) from None
    record = registry.add(role, sealing.public_key_of(secret), utc_stamp())
    return NewRole(record, path, secret)


def grant(custodian: ReaderKeys, role: str) -> list[str]:
    """Seal every live key version to ``role`` and seal future months to it; returns the key ids sealed."""
    registry = RoleRegistry(custodian.directory)
    try:
        record = registry.set_reads(role, True)
    except RoleError as error:
        raise KeyringError(str(error)) from None
    sealed = []
    for key in Keyring(custodian.directory).records():
        if key.sealed_private_key:
            registry.seal(record, key.key_id, custodian.private_key(key.key_id))
            sealed.append(key.key_id)
    return sealed


def revoke(directory: str | os.PathLike, role: str) -> int:
    """Delete the role's seals and seal no future month to it; returns how many seals were deleted."""
    try:
        return RoleRegistry(directory).revoke(role)
    except RoleError as error:
        raise KeyringError(str(error)) from None
