"""Subcommands of ``logwarden``; each module has ``register(subparsers)`` and sets ``run``."""

from pipelines.commands import (
    alerts,
    archive,
    audit,
    batch,
    config,
    detect,
    hold,
    keys,
    parse,
    report,
    retention,
    rules,
    search,
    stream,
    subject,
    version,
)

COMMANDS = [
    version,
    config,
    parse,
    batch,
    stream,
    detect,
    rules,
    keys,
    archive,
    audit,
    hold,
    retention,
    report,
    search,
    subject,
    alerts,
]
