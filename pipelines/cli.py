"""The ``logwarden`` command: one entry point, one module per subcommand under ``pipelines/commands``."""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

DESCRIPTION = """\
logwarden keeps web access and error logs the way a privacy policy promises:
security alerts on the way in, capacity reports without personal data, and an
archive of every event as Parquet.

examples:
  logwarden batch --input '/var/log/apache2/access.log*' --output out/
  logwarden parse access.log --format combined --output - | head
  logwarden config check logwarden.yaml

Run 'logwarden COMMAND --help' for each command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logwarden", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for Beam's own)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Imported here so logging is set up before Beam's import-time warnings (apitools, …) fire.
    from pipelines.commands import COMMANDS

    for module in COMMANDS:
        module.register(subparsers)
    return parser


def _configure_logging(verbosity: int) -> None:
    logging.basicConfig(
        level=logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG,
        format="logwarden: %(levelname)s: %(message)s",
    )
    logging.getLogger("logwarden").setLevel(logging.INFO)
    if verbosity < 2:
        for noisy in ("apache_beam", "root"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    logging.getLogger().addHandler(logging.NullHandler())
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if extra and not getattr(args, "accepts_beam_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra
    _configure_logging(args.verbose)
    return args.run(args)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
