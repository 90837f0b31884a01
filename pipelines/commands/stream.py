"""``logwarden stream``: follow live log files until stopped, with the batch job's outputs."""

from __future__ import annotations

import dataclasses
import glob
import os
import sys

from apache_beam.options.pipeline_options import PipelineOptions

from parsers.registry import FORMATS, UnknownFormatError, get_format
from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    error,
    load_or_report,
)
from pipelines.commands.keys import auto_init
from pipelines.enrich import check_enrich_config
from pipelines.inputs import InputError, check_regular_file
from pipelines.options import pipeline_options
from retention.audit import AuditError
from retention.keyring import Keyring, KeyringError
from retention.stream_state import CheckpointError, load_state_key
from schemas.config import ConfigError

EPILOG = """\
examples:
  logwarden stream --input '/var/log/nginx/access.log*' --output /srv/logwarden
  logwarden stream -c logwarden.yaml --input /var/log/apache2/ --output out/

Runs until SIGINT (Ctrl-C) or SIGTERM, then drains: every line read so far is
archived or dead-lettered, every alert delivered, the position in every file
recorded; exit status 0.  After a crash or kill -9 the next start resumes from
the last published cut: no line lost, none archived twice.  A progress line
goes to stderr every stream.progress_seconds.  Only FnApiRunner runs the file
source on one machine (the default); any other --flag goes to Apache Beam.
"""


def run(args) -> int:
    try:
        config = load_or_report(args.config)
        if args.format:
            if args.format != "auto":
                get_format(args.format)
            config = dataclasses.replace(config, input=dataclasses.replace(config.input, format=args.format))
        if config.stream.source == "files" and not args.input:
            raise UsageError("--input is required with the files source (stream.source: files)")
        for path in args.input:  # a named file that is a link, a FIFO or a device: refused now, not ignored
            if not glob.has_magic(path) and os.path.lexists(path) and not os.path.isdir(path):
                check_regular_file(path, args.follow_symlinks)
        if "://" in args.output:
            raise UsageError(f"--output {args.output!r}: the stream job writes a local directory (it fsyncs)")
        options = stream_options(args.beam_args, config)
        if config.enrich.enabled:
            check_enrich_config(config.enrich)
        if config.keys.auto_init and not Keyring(config.keys.keyring).exists():
            auto_init(config, args.output, args)
        Keyring(config.keys.keyring).root_public()
        load_state_key(config.stream.state_key_file)
    except (UsageError, UnknownFormatError, KeyringError, CheckpointError, OSError, AuditError, InputError) as problem:
        return error(str(problem))
    except ConfigError as problem:
        return error(f"bad config: {problem}")
    except (ValueError, SystemExit) as problem:
        return error(f"bad Beam option: {problem}")
    try:
        from pipelines.stream import run_stream  # the Beam graph: imported when a stream starts

        result = run_stream(args.input, args.output, config, options, args.follow_symlinks)
    except Exception as problem:
        from pipelines.stream_sources import SourceError

        if isinstance(problem, SourceError):
            return error(str(problem))  # the runner's error, said once, without a traceback wall
        print(f"logwarden: error: the stream job failed: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"logwarden stream {result.run_id}: stopped after {result.seconds:.1f}s, all read lines published",
        file=sys.stderr,
    )
    return EXIT_OK


def stream_options(beam_args: list[str], config) -> PipelineOptions:
    """Batch options plus ``--streaming``; the config's runner only when it is FnApiRunner or a remote one."""
    options = pipeline_options(beam_args, dataclasses.replace(config.runner, direct_num_workers=1))
    runner = options.get_all_options()["runner"]
    if runner in {"BundleBasedDirectRunner", "DirectRunner", None}:
        raise UsageError(f"--runner {runner}: cannot run an unbounded source offline; use FnApiRunner")
    return options


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "stream",
        "follow live log files and alert as lines arrive",
        "Follow log files like tail -F: archive every line, alert within a second, resume exactly after a crash.",
        EPILOG,
    )
    parser.add_argument(
        "--input", "-i", nargs="+", default=[], metavar="GLOB", help="files, globs or directories to follow"
    )
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="output directory (the batch layout)")
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symbolic links among the inputs (by default a link is not followed, with a warning)",
    )
    parser.add_argument(
        "--format",
        "-f",
        help=f"'auto' (default), a LogFormat / log_format line, or one of: {', '.join(sorted(FORMATS))}",
    )
    add_config_argument(parser)
    parser.set_defaults(run=run, accepts_beam_args=True)
