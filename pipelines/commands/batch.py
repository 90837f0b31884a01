"""``logwarden batch``: the Beam batch job over log files."""

from __future__ import annotations

import dataclasses
import sys

from alerts.outbox import OutboxError, load_outbox_key
from parsers.registry import FORMATS, UnknownFormatError, get_format
from pipelines.batch import run_batch
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
from pipelines.detect import outbox_key_file
from pipelines.enrich import check_enrich_config
from pipelines.inputs import InputError, list_files
from pipelines.options import pipeline_options
from retention.audit import AuditError
from retention.keyring import Keyring, KeyringError
from schemas.config import ConfigError

EPILOG = """\
examples:
  logwarden batch --input 'logs/access.log*' --output out/
  logwarden batch -c logwarden.yaml --input /var/log/nginx/ --output out/ --format combined
  logwarden batch --input 'gs://bucket/logs/*.gz' --output gs://bucket/out \\
      --runner DataflowRunner --project P --region europe-west1 \\
      --temp_location gs://bucket/tmp --setup_file ./setup.py

Any other --flag is passed to Apache Beam as a pipeline option.  The job ends
with a summary: lines read = parsed + dead-lettered (+ expired: lines of months whose
keys were destroyed, never written), files written, lines/s.
Exit status: 0 on success, 1 if the job failed or an alert could not be delivered to
a sink (it is kept sealed and retried by the next run), 2 on a usage or config error.
"""


def _alert_lines(run) -> list[str]:
    c, d = run.counts, run.delivery
    total = sum(c.alerts_by_rule.values())
    owed = f" ({d.undelivered} not delivered to a sink: kept sealed, retried next run)" if d.undelivered else ""
    lines = [f"  alerts            {total}{owed}"]
    if d.retried:
        lines.append(f"    retried {d.retried} alert(s) earlier runs could not deliver")
    lines += [f"    sink {name} failed: {problem}" for name, problem in sorted(d.errors.items())]
    lines += [f"    {n:6d}  {rule}" for rule, n in sorted(c.alerts_by_rule.items(), key=lambda kv: (-kv[1], kv[0]))]
    return lines


def summary(run) -> str:
    c = run.counts
    balance = "" if c.balanced else "  (MISMATCH: some lines are unaccounted for)"
    return "\n".join(
        [
            f"logwarden batch {run.run_id}: done in {run.seconds:.1f}s",
            f"  files read        {c.files_read}" + (f" ({c.files_truncated} truncated)" if c.files_truncated else ""),
            f"  lines read        {c.lines_read}",
            f"  parsed            {c.lines_parsed}",
            f"  dead-lettered     {c.lines_dead_lettered}{balance}"
            + (f" ({c.lines_truncated} cut at input.max_line_bytes)" if c.lines_truncated else ""),
            *(
                [f"  expired           {c.lines_expired} (months whose keys were destroyed; not written)"]
                if c.lines_expired
                else []
            ),
            f"  files written     {c.files_written} ({c.rows_written} events, {c.dead_letters_written} dead letters;"
            " encrypted)",
            *_alert_lines(run),
            f"  speed             {run.lines_per_second:,.0f} lines/s",
            f"  output            {run.output}",
            *([f"  recovered         {run.recovered.summary()}"] if run.recovered.changed else []),
            *([f"  report            {run.report}"] if run.report else []),
        ]
    )


def run(args) -> int:
    try:
        config = load_or_report(args.config)
        if args.format:
            if args.format != "auto":
                get_format(args.format)
            config = dataclasses.replace(config, input=dataclasses.replace(config.input, format=args.format))
        files = list_files(args.input, args.follow_symlinks)
        options = pipeline_options(args.beam_args, config.runner)
        if config.enrich.enabled:
            check_enrich_config(config.enrich)
        if config.keys.auto_init and not Keyring(config.keys.keyring).exists():
            auto_init(config, args.output, args)
        Keyring(config.keys.keyring).root_public()  # a clear error now rather than in a worker
        if config.alerts.enabled:
            load_outbox_key(outbox_key_file(config))  # created on first use; refused when others can read it
    except (UsageError, UnknownFormatError, InputError, KeyringError, AuditError, OutboxError) as problem:
        return error(str(problem))
    except ConfigError as problem:
        return error(f"bad config: {problem}")
    except (ValueError, SystemExit) as problem:
        return error(f"bad Beam option: {problem}")
    try:
        if args.dead_letter_jsonl:
            print(
                f"logwarden: warning: dead letters also go to {args.dead_letter_jsonl} as PLAINTEXT JSON lines "
                "(raw log lines are personal data; delete them when done)",
                file=sys.stderr,
            )
        result = run_batch(files, args.output, config, options, args.dead_letter_jsonl, args.follow_symlinks)
    except Exception as problem:  # the runner's error, said once, without a traceback wall
        print(f"logwarden: error: the batch job failed: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(summary(result), file=sys.stderr)
    return EXIT_OK if result.counts.balanced and not result.delivery.undelivered else EXIT_FAILURE


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "batch",
        "run the batch pipeline over log files",
        "Parse log files with Apache Beam and archive every event as Parquet; keep dead letters.",
        EPILOG,
    )
    parser.add_argument(
        "--input", "-i", nargs="+", required=True, metavar="GLOB", help="log files, globs or directories"
    )
    parser.add_argument(
        "--output", "-o", required=True, metavar="DIR", help="output directory (local or gs://, s3://…)"
    )
    parser.add_argument(
        "--format",
        "-f",
        help=f"'auto' (default), a LogFormat / log_format line, or one of: {', '.join(sorted(FORMATS))}",
    )
    parser.add_argument(
        "--dead-letter-jsonl",
        metavar="DIR",
        help="also write dead letters as plaintext JSON lines to DIR (they are always in the encrypted archive)",
    )
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read inputs that are symbolic links (by default they are refused: a planted link could name any file)",
    )
    add_config_argument(parser)
    parser.set_defaults(run=run, accepts_beam_args=True)
