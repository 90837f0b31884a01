"""Subcommands of ``logwarden``; each module has ``register(subparsers)`` and sets ``run``.

Each command is the module of its own name.  The command line names one, so only that one is imported
(a batch job does not pay for importing search, audit or DuckDB); help and unknown words load them all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Commands in the order ``logwarden --help`` lists them.
NAMES = (
    "version",
    "config",
    "parse",
    "batch",
    "stream",
    "detect",
    "rules",
    "keys",
    "archive",
    "audit",
    "hold",
    "retention",
    "report",
    "search",
    "subject",
    "alerts",
)


def load(names=NAMES) -> list[ModuleType]:
    return [importlib.import_module(f"pipelines.commands.{name}") for name in names]


def named_in(argv: list[str]) -> list[str]:
    """The command ``argv`` runs, alone (its first word that is not a flag), or every command when there is none."""
    words = [word for word in argv if not word.startswith("-")]
    return [words[0]] if words and words[0] in NAMES else list(NAMES)
