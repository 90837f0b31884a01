"""``logwarden config check|show``: validate a config file before a job depends on it."""

from __future__ import annotations

import yaml

from pipelines.commands.common import EXIT_OK, UsageError, add_command, error, load_or_report
from schemas.config import config_to_dict


def _check(args) -> int:
    try:
        load_or_report(args.file)
    except UsageError as problem:
        return error(str(problem))
    print(f"{args.file}: ok")
    return EXIT_OK


def _show(args) -> int:
    try:
        config = load_or_report(args.file)
    except UsageError as problem:
        return error(str(problem))
    print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "config",
        "check or show a config file",
        "Validate a YAML config file, or print the effective config with every default filled in.",
        "examples:\n  logwarden config check examples/logwarden.yaml\n  logwarden config show  # the defaults",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate FILE; exit 2 naming the bad key")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(run=_check)
    show = actions.add_parser("show", help="print the effective config (defaults when FILE is omitted)")
    show.add_argument("file", metavar="FILE", nargs="?")
    show.set_defaults(run=_show)
