"""The ``logwarden`` command: one entry point, one module per subcommand under ``pipelines/commands``."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import logging
import os
import sys
import threading

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


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser: with ``argv``, only the command it names is loaded (all when it names none)."""
    parser = argparse.ArgumentParser(
        prog="logwarden", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for Beam's own)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Imported here so logging is set up before Beam's import-time warnings (apitools, …) fire.
    from pipelines import commands

    for module in commands.load(commands.named_in(argv) if argv is not None else commands.NAMES):
        module.register(subparsers)
    return parser


def _configure_logging(verbosity: int) -> None:
    logging.basicConfig(
        level=logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG,
        format="logwarden: %(levelname)s: %(message)s",
        force=True,  # replace the NullHandler main() installs before Beam is imported
    )
    logging.getLogger("logwarden").setLevel(logging.INFO)
    if verbosity < 2:
        for noisy in ("apache_beam", "root"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)subcommand's own parser, whose flags a mistyped one is compared with."""
    current = parser
    for word in argv:
        subparsers = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if subparsers and word in subparsers[0].choices:
            current = subparsers[0].choices[word]
    return current


def _loaded(argv: list[str]) -> argparse.ArgumentParser:
    """Beam, pyarrow and the command ``argv`` names, imported: the parser of its command line."""
    from pipelines.allocators import hand_back_freed_memory

    hand_back_freed_memory()
    logging.getLogger().addHandler(logging.NullHandler())
    from pipelines.lean_beam import import_beam

    import_beam()  # before any command imports Beam whole
    from pipelines import dofn_specs

    dofn_specs.install()
    return build_parser(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # What is loaded first (Beam, pyarrow, the command) lives until exit, so the cyclic collector has nothing to
    # find in it: off while it loads (~200 collections walking ever more modules, ~0.08 s of CPU; the ~1,000
    # objects it would free are kept), then out of the collector's sight for good, so full collections stop
    # walking it again and again and forked workers share its pages instead of copying them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        parser = _loaded(argv)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    from pipelines.commands.common import run_command, unknown_flags_message

    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    accepts_beam = getattr(args, "accepts_beam_args", False)
    if extra:
        from pipelines.options import beam_flags

        problem = unknown_flags_message(extra, _command_parser(parser, argv), beam_flags() if accepts_beam else None)
        if problem:
            _command_parser(parser, argv).error(problem)
    args.beam_args = extra
    _configure_logging(args.verbose)
    return run_command(args.run, args)


def exit_without_teardown(code: int) -> None:
    """End the process the way the interpreter would, less freeing its objects and modules one by one.

    That teardown cost 0.3-0.45 s of CPU at the end of every batch job (1,000 lines or 1M alike).  What it
    would do that anyone can see is done first: other threads finish (``threading._shutdown``, as the
    interpreter calls it at exit), exit handlers run (logging, temporary files), the standard streams are
    flushed.  Where this Python has no ``threading._shutdown`` (or ``code`` is not a number), the interpreter exits
    the ordinary way.
    """
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None or not isinstance(code, int):
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def entry_point() -> None:
    exit_without_teardown(main())


if __name__ == "__main__":
    entry_point()
