"""Helpers shared by subcommands: loading the config and reporting usage errors the same way."""

from __future__ import annotations

import argparse
import sys

from schemas.config import Config, ConfigError, load_config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for; reported on one line, exit code 2."""


def error(message: str) -> int:
    print(f"logwarden: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def load_or_report(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as problem:
        raise UsageError(f"bad config: {problem}") from None


def add_config_argument(parser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML config file (defaults work without one)")


def add_command(subparsers, name: str, help_text: str, description: str, epilog: str | None = None):
    """A subcommand whose --help keeps the examples in ``epilog`` laid out as written."""
    return subparsers.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
