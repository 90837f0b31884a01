"""Subcommands of ``logwarden``; each module has ``register(subparsers)`` and sets ``run``."""

from pipelines.commands import alerts, archive, audit, batch, config, detect, keys, parse, rules, version

COMMANDS = [version, config, parse, batch, detect, rules, keys, archive, audit, alerts]
