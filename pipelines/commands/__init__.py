"""Subcommands of ``logwarden``; each module has ``register(subparsers)`` and sets ``run``."""

from pipelines.commands import batch, config, detect, parse, rules, version

COMMANDS = [version, config, parse, batch, detect, rules]
