"""Subcommands of ``logwarden``; each module has ``register(subparsers)`` and sets ``run``."""

from pipelines.commands import batch, config, parse, version

COMMANDS = [version, config, parse, batch]
