"""How a subcommand writes its audit entries: the deployment's trail, an entry before and one after the action.

Every command that reads personal data or changes the archive, its keys or its
holds wraps its work in ``audited_action``: the ``started`` entry is written
first, so when the trail cannot be written the command stops before touching
anything (``AuditError``, reported like a usage error, exit 2).
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.commands.common import UsageError
from retention.audit import AuditedAction, AuditError, AuditLog, cli_arguments, open_log
from schemas.config import Config


def command_log(config: Config, archive: str | os.PathLike | None) -> AuditLog:
    """The audit trail for a command working on ``archive`` (``audit.log`` if configured)."""
    try:
        return open_log(archive, config.audit.log or None, config.audit.key_file)
    except AuditError as problem:
        raise UsageError(f"cannot write the audit trail: {problem}") from None


def audited_action(
    config: Config,
    archive: str | os.PathLike | None,
    command: str,
    args: Any,
    role: str | None,
    reason: str | None,
    query: dict | None = None,
) -> AuditedAction:
    """``with audited_action(...) as act:`` around a command's work; ``args`` is its argparse namespace."""
    log = command_log(config, archive)
    return log.action(command, role, reason, cli_arguments(args), query)
