"""Subcommands of ``logwarden``; each module has ``register(subparsers)`` and sets ``run``."""

from pipelines.commands import archive, batch, config, keys, parse, version

COMMANDS = [version, config, parse, batch, keys, archive]
