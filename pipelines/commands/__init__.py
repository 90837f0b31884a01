"""Subcommands of ``logwarden``; each module has ``register(subparsers)`` and sets ``run``."""

from pipelines.commands import archive, audit, batch, config, detect, keys, parse, rules, stream, version

COMMANDS = [version, config, parse, batch, stream, detect, rules, keys, archive, audit]
