"""Helpers shared by subcommands: loading the config, and reporting every failure the same way.

Exit codes are the README's promise to scripts: ``0`` everything read was
processed (and every alert delivered), ``1`` the job ran but something was
lost, undelivered or not parsed at all, ``2`` a usage or config error.
``run_command`` turns every exception a user can cause (a bad path, a closed
pipe, Ctrl-C) into one line on stderr and the right code: never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import logging
import os
import sys
import traceback

from schemas.config import Config, ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
#: What a shell reports for a process ended by SIGPIPE (128 + 13), as ``head`` closing a pipe does.
EXIT_BROKEN_PIPE = 128 + 13
EXIT_INTERRUPTED = 128 + 2


class UsageError(Exception):
    """A problem with what the user asked for; reported on one line, exit code 2."""


def error(message: str) -> int:
    print(f"logwarden: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def load_or_report(path: str | None) -> Config:
    """The config file, with everything that could fail later in the job checked now (all problems at once)."""
    from pipelines.validate import load_checked_config

    try:
        return load_checked_config(path)
    except ConfigError as problem:
        raise UsageError(f"bad config: {problem}") from None


def recheck(config: Config, source: str | None) -> Config:
    """``config`` after command-line flags changed it, checked again the same way."""
    from pipelines.validate import check_config

    try:
        return check_config(config, source)
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


# --- flags ---------------------------------------------------------------------------------------------------------


def _flags_of(parser: argparse.ArgumentParser) -> list[str]:
    return [flag for flag in parser._option_string_actions if flag.startswith("--")]


def unknown_flags_message(extra: list[str], parser: argparse.ArgumentParser, beam_flags: list[str]) -> str | None:
    """None when every extra argument is one of Beam's options; else a message naming each unknown one."""
    from pipelines.options import unknown_beam_args

    unknown = unknown_beam_args(extra) if beam_flags is not None else extra
    if not unknown:
        return None
    known = _flags_of(parser) + list(beam_flags or ())
    flags = [arg for arg in unknown if arg.startswith("-")]
    parts = []
    for arg in flags or unknown:
        flag = arg.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75) if flag.startswith("-") else []
        parts.append(f"{arg} (did you mean {close[0]}?)" if close else arg)
    passed = " (only Apache Beam's own pipeline options are passed through)" if beam_flags is not None else ""
    return f"unrecognized arguments: {', '.join(parts)}{passed}"


# --- running a command ------------------------------------------------------------------------------------------


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _os_error_text(problem: OSError) -> str:
    reason = problem.strerror or str(problem)
    if problem.errno == errno.ENOENT and problem.filename:
        folder = os.path.dirname(os.path.abspath(str(problem.filename)))
        if not os.path.isdir(folder):
            reason = f"the folder {folder} does not exist"
    where = f"{problem.filename}: " if problem.filename else ""
    return f"{where}{reason}"


def run_command(run, args) -> int:
    """``run(args)`` with every failure a user can cause reported in one line and mapped to an exit code."""
    from alerts.rules import RuleError
    from parsers.registry import UnknownFormatError
    from pipelines.inputs import InputError
    from retention.audit import AuditError, AuditRefusal
    from retention.keyring import KeyringError

    try:
        return run(args)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("logwarden: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, UnknownFormatError, InputError, KeyringError, AuditError, AuditRefusal) as problem:
        return error(str(problem))
    except ConfigError as problem:
        return error(f"bad config: {problem}")
    except RuleError as problem:
        return error(f"bad rule: {problem}")
    except OSError as problem:
        return error(_os_error_text(problem))
    except Exception as problem:  # a bug: still one line, the traceback only when asked for
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        print(
            f"logwarden: error: unexpected {type(problem).__name__}: {problem} (run with -vv for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


# --- paths and outcomes ------------------------------------------------------------------------------------------


def check_output_dir(path: str, flag: str = "--output") -> None:
    """A local output directory must be a directory (or creatable as one); remote URLs are left to Beam."""
    if "://" in path:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a file; name a directory (it is created if missing)")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {path}: {parent} is a file, so the directory cannot be created")
    if not os.access(parent if not os.path.exists(path) else path, os.W_OK):
        raise UsageError(f"{flag} {path}: permission denied")


def check_archive_dir(path: str, flag: str = "--archive") -> None:
    """An archive a command reads, audits or protects must exist already: a mistyped path would otherwise be
    created (an audit trail, a hold nobody's data is under) and read as an empty archive, exit 0."""
    if "://" in path:
        return
    if not os.path.isdir(path):
        what = "is a file" if os.path.exists(path) else "does not exist"
        named = f"{flag} {path}" if flag else path
        raise UsageError(f"{named} {what}; name the archive directory (the --output of logwarden batch)")


def check_output_file(path: str | None, flag: str = "--output") -> None:
    """A local output file must not be a directory and its folder must exist ('-' is stdout)."""
    if path in (None, "-") or "://" in path:
        return
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a directory; name a file (or '-' for standard output)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {path}: permission denied")


def formats_that_fit(files: list[str], limit: int = 3) -> list[str]:
    """Named formats that parse at least half of the first lines of the first files (best first)."""
    from parsers.reader import head_lines
    from parsers.registry import detect_format
    from pipelines.read import open_raw

    best: dict[str, float] = {}
    for path in files[:limit]:
        try:
            with open_raw(path) as raw:
                lines = head_lines(raw, path)
        except OSError:
            continue
        for name, score in detect_format(lines).scores.items():
            best[name] = max(best.get(name, 0.0), score)
    return [name for name, score in sorted(best.items(), key=lambda kv: -kv[1]) if score >= 0.5]


def nothing_parsed_hint(format_spec: str, files: list[str]) -> str:
    """Why every line was dead-lettered, and what to try instead."""
    fits = [name for name in formats_that_fit(files) if name != format_spec]
    asked = f"--format {format_spec}" if format_spec != "auto" else "format auto-detection"
    if fits:
        return f"nothing was parsed with {asked}; these formats fit the files' first lines: {', '.join(fits)}"
    return (
        f"nothing was parsed with {asked}, and no known format fits the files' first lines; "
        "give your server's LogFormat / log_format line with --format"
    )
