"""``logwarden batch``: the Beam batch job over log files."""

from __future__ import annotations

import dataclasses
import sys

from alerts.outbox import OutboxError, load_outbox_key
from parsers.registry import FORMATS, get_format
from pipelines.batch import run_batch
from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    check_output_dir,
    load_or_report,
    nothing_parsed_hint,
)
from pipelines.commands.keys import auto_init
from pipelines.detect import outbox_key_file
from pipelines.inputs import list_files
from pipelines.options import pipeline_options
from pipelines.validate import runner_problem
from retention.keyring import Keyring

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
A rerun over input an earlier run archived reads only what is new (the ingest
ledger recognises a file by its first bytes, renamed or compressed too) and
says so per file; --reprocess reads everything again.
Exit status: 0 when every line read was processed and every alert delivered;
1 if the job failed, lost lines, could not deliver an alert (it is kept sealed and
retried by the next run), or parsed nothing (the message names formats that fit);
2 on a usage or config error.
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
            *[
                f"  {outcome.message()}"
                for outcome in run.inputs
                if outcome.plan.earlier_runs or outcome.plan.skip_reason
            ],
        ]
    )


def _runner_flag(beam_args: list[str]) -> str | None:
    for index, arg in enumerate(beam_args):
        if arg.startswith("--runner="):
            return arg.split("=", 1)[1]
        if arg == "--runner" and index + 1 < len(beam_args):
            return beam_args[index + 1]
    return None


def _prepare(args):
    """Everything that can be wrong with the request, found before the job starts."""
    config = load_or_report(args.config)
    if args.format:
        if args.format != "auto":
            get_format(args.format)
        config = dataclasses.replace(config, input=dataclasses.replace(config.input, format=args.format))
    runner = _runner_flag(args.beam_args)
    if runner and runner_problem(runner):
        raise UsageError(f"--runner: {runner_problem(runner)}")
    check_output_dir(args.output)
    if args.dead_letter_jsonl:
        check_output_dir(args.dead_letter_jsonl, "--dead-letter-jsonl")
    files = list_files(args.input, args.follow_symlinks)
    try:
        options = pipeline_options(args.beam_args, config.runner)
    except (ValueError, SystemExit) as problem:
        raise UsageError(f"bad Beam option: {problem}") from None
    if config.keys.auto_init and not Keyring(config.keys.keyring).exists():
        auto_init(config, args.output, args)
    Keyring(config.keys.keyring).root_public()  # a clear error now rather than in a worker
    if config.alerts.enabled:
        try:
            load_outbox_key(outbox_key_file(config))  # created on first use; refused when others can read it
        except OutboxError as problem:
            raise UsageError(str(problem)) from None
    return config, files, options


def outcome(counts, format_spec: str, files: list[str]) -> tuple[int, list[str]]:
    """The exit code a finished run earns, and the warnings that explain a 1."""
    problems = []
    if not counts.balanced:
        problems.append("some lines are unaccounted for (lines read != parsed + dead-lettered + expired)")
    if counts.alerts_undelivered:
        problems.append(f"{counts.alerts_undelivered} alert(s) could not be delivered to a configured sink")
    if counts.lines_read and not counts.lines_parsed:
        problems.append(nothing_parsed_hint(format_spec, files))
    return (EXIT_FAILURE if problems else EXIT_OK), problems


def run(args) -> int:
    config, files, options = _prepare(args)
    if args.dead_letter_jsonl:
        print(
            f"logwarden: warning: dead letters also go to {args.dead_letter_jsonl} as PLAINTEXT JSON lines "
            "(raw log lines are personal data; delete them when done)",
            file=sys.stderr,
        )
    try:
        result = run_batch(
            files, args.output, config, options, args.dead_letter_jsonl, args.follow_symlinks, args.reprocess
        )
    except Exception as problem:  # the runner's error, said once, without a traceback wall
        print(f"logwarden: error: the batch job failed: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(summary(result), file=sys.stderr)
    code, problems = outcome(result.counts, config.input.format, files)
    for problem in problems:
        print(f"logwarden: warning: {problem}", file=sys.stderr)
    return code


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
        "--reprocess",
        action="store_true",
        help="read every input whole again, even what earlier runs archived (adds it to the archive a second time)",
    )
    parser.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read inputs that are symbolic links (by default they are refused: a planted link could name any file)",
    )
    add_config_argument(parser)
    parser.set_defaults(run=run, accepts_beam_args=True)
