"""``--role`` and ``--reason`` for the commands that read personal data or change the archive, audited either way.

``authorized_action`` writes the audit trail's ``started`` entry, then checks
the role (``access.policy``): a refusal becomes the ``refused`` end entry and a
one-line error with exit status 2, before any file is opened.  Values that
name a person (``--ip``, ``--user``, ``--email``, a correction's ``--value``)
are recorded as counts only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping

from pipelines.commands.audited import audited_action
from pipelines.commands.common import UsageError, check_archive_dir
from retention.access.policy import AccessDenied, Authorization, check, role_keys_for
from retention.audit import AuditedAction, AuditRefusal
from retention.keyring import ArchiveKeys, KeyringError
from schemas.config import Config

#: Arguments whose values identify a person: the audit trail gets how many were given, not what they were.
PERSONAL_ARGUMENTS = ("ip", "user", "email", "value")


def add_access_arguments(parser) -> None:
    group = parser.add_argument_group("access (recorded in the audit trail)")
    group.add_argument("--role", metavar="ROLE", help="the role you act as (config access.roles)")
    group.add_argument("--reason", metavar="TEXT", help="why: a ticket, a request id, an incident")


def scrubbed(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with personal values replaced by their count, for the audit trail."""
    safe = argparse.Namespace(**vars(args))
    for name in PERSONAL_ARGUMENTS:
        value = getattr(safe, name, None)
        if value is not None:
            count = len(value) if isinstance(value, (list, tuple)) else 1
            setattr(safe, name, f"<{count} value(s), not recorded>")
    return safe


@contextlib.contextmanager
def authorized_action(
    config: Config, archive: str | None, command: str, args, action: str, query: dict | None = None
) -> Iterator[tuple[Authorization, AuditedAction]]:
    """Audit ``command`` and refuse it unless ``args.role`` may take ``action`` and gave ``args.reason``."""
    if archive is not None:
        check_archive_dir(archive)
    with audited_action(config, archive, command, scrubbed(args), args.role, args.reason, query) as act:
        try:
            grant = check(config, args.role, action, args.reason)
        except AccessDenied as refusal:
            raise AuditRefusal(f"access refused: {refusal}") from None
        yield grant, act


def keys_of(config: Config, grant: Authorization, environ: Mapping[str, str] = os.environ) -> ArchiveKeys:
    try:
        return role_keys_for(config, grant.role, environ)
    except KeyringError as problem:
        raise UsageError(f"role {grant.role!r} cannot unlock its keys: {problem}") from None
