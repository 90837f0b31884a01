"""``logwarden config check|show``: validate a config file before a job depends on it."""

from __future__ import annotations

import yaml

from pipelines.commands.common import EXIT_OK, UsageError, add_command, error, load_or_report
from schemas.config import config_to_dict


def _file(args) -> str | None:
    """FILE, or ``-c FILE`` as every other command takes it (both given: they must agree)."""
    if args.file and args.config and args.file != args.config:
        raise UsageError(f"two config files given ({args.file} and -c {args.config}); give one")
    return args.file or args.config


def _check(args) -> int:
    try:
        path = _file(args)
        if path is None:
            raise UsageError("config check needs a FILE (or -c FILE)")
        load_or_report(path)
    except UsageError as problem:
        return error(str(problem))
    print(f"{path}: ok")
    return EXIT_OK


def _show(args) -> int:
    try:
        config = load_or_report(_file(args))
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
    show = actions.add_parser("show", help="print the effective config (defaults when FILE is omitted)")
    for action, run in ((check, _check), (show, _show)):
        action.add_argument("file", metavar="FILE", nargs="?")
        action.add_argument("-c", "--config", metavar="FILE", help="the same FILE, spelled as other commands take it")
        action.set_defaults(run=run)
