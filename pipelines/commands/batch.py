"""``logwarden batch``: the Beam batch job over log files."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import sys

from alerts.outbox import OutboxError, load_outbox_key
from parsers.enrich import user_agent
from parsers.registry import FORMATS, get_format
from pipelines import progress
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
from pipelines.detect import outbox_key_file
from pipelines.inputs import list_files
from pipelines.local_workers import forked_workers
from pipelines.options import default_local_workers, local_worker_processes, pipeline_options, quiet_local_workers
from pipelines.stage_memory import free_finished_stages
from pipelines.validate import runner_problem
from retention import signing
from retention.keyring import Keyring, default_signing_key_file

EPILOG = """\
examples:
  logwarden batch --input 'logs/access.log*' --output out/
  logwarden batch -c logwarden.yaml --input /var/log/nginx/ --output out/ --format combined
  logwarden batch --input 'gs://bucket/logs/*.gz' --output gs://bucket/out \\
      --runner DataflowRunner --project P --region europe-west1 \\
      --temp_location gs://bucket/tmp --setup_file ./setup.py

Any other --flag is passed to Apache Beam as a pipeline option.  The job ends
with a summary: lines read = parsed + dead-lettered + skipped (blank lines, W3C
directives) + expired (lines of months whose keys were destroyed, never written),
the events' time range, each file's format and counts, the top dead-letter reasons,
files written, alerts and where they went, lines/s.
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


def _detail_lines(run, totals, sinks) -> list[str]:
    """What the workers told the side channel: time range, each file's format and counts, why lines failed."""
    lines = []
    if totals is not None:
        span = progress.time_range(totals)
        if span:
            lines.append(f"  events from       {span}")
        for path, one in sorted(totals.files.items())[:20]:
            parts = [(one.dead, "dead-lettered"), (one.skipped, "skipped"), (one.expired, "expired")]
            rest = "".join(f", {n} {what}" for n, what in parts if n)
            lines.append(f"    {one.lines:9d} lines  {one.format or '?':16} {path}{rest}")
        if len(totals.files) > 20:
            lines.append(f"    ... and {len(totals.files) - 20} more files")
        for reason, count in totals.reasons.most_common(3):
            lines.append(f"  dead letters      {count:9d} x {reason}")
    out = run.output.rstrip("/")
    lines.append(f"  alerts kept in    {out}/alerts/ (encrypted; read them with: logwarden alerts list {out})")
    if sinks:
        lines.append(f"  alert sinks       {', '.join(sinks)}")
    lines.append(f"  reports           {run.output.rstrip('/')}/reports/ (this run: *-{run.run_id}.*)")
    return lines


def _sink_names(config) -> list[str]:
    sinks = config.alerts.sinks
    names = [f"file {sinks.jsonl} (plaintext)"] if sinks.jsonl else []
    names += ["stdout"] if sinks.stdout else []
    names += [f"webhook {sinks.webhook.url}"] if sinks.webhook.url else []
    names += [f"syslog {sinks.syslog.host}:{sinks.syslog.port}/{sinks.syslog.protocol}"] if sinks.syslog.host else []
    return names


def _balance_line(c) -> str:
    """The accounting identity with this run's numbers, so a reader can check it at a glance."""
    sign = "=" if c.balanced else "!="
    return (
        f"read {c.lines_read} {sign} parsed {c.lines_parsed} + dead-lettered {c.lines_dead_lettered}"
        f" + skipped {c.lines_skipped} + expired {c.lines_expired}"
    )


def summary(run, totals=None, sinks: list[str] = ()) -> str:
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
            f"  skipped           {c.lines_skipped} (blank lines, W3C directives)",
            f"  expired           {c.lines_expired} (months whose keys were destroyed; not written)",
            f"  {_balance_line(c)}",
            f"  files written     {c.files_written} ({c.rows_written} events, {c.dead_letters_written} dead letters;"
            " encrypted)",
            *_alert_lines(run),
            f"  speed             {run.lines_per_second:,.0f} lines/s",
            f"  output            {run.output}",
            *_detail_lines(run, totals, sinks),
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
        options = pipeline_options(args.beam_args, config.runner, default_local_workers())
    except (ValueError, SystemExit) as problem:
        raise UsageError(f"bad Beam option: {problem}") from None
    if config.keys.auto_init and not Keyring(config.keys.keyring).exists():
        from pipelines.commands.keys import auto_init  # first run only: key commands are not every run's to import

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
        problems.append(f"some lines are unaccounted for ({_balance_line(counts)})")
    if counts.alerts_undelivered:
        problems.append(f"{counts.alerts_undelivered} alert(s) could not be delivered to a configured sink")
    if counts.lines_read and not counts.lines_parsed:
        problems.append(nothing_parsed_hint(format_spec, files))
    return (EXIT_FAILURE if problems else EXIT_OK), problems


def untrusted_writer_hint(keys, archive: str) -> str | None:
    """Why readers will not see this run's files: this host's signing key is not (yet) trusted by the custodian.

    Said on every run, not only when the key is made: an ingest host set up from an exported keyring
    otherwise archives, night after night, what nobody can read.
    """
    keyring = Keyring(keys.keyring)
    custodian = keyring.custodian_public()
    path = keys.signing_key_file or default_signing_key_file(keys.keyring)
    try:
        signer = signing.read_signer(path)
    except signing.SigningError:
        return None
    if custodian is None or signer.id in keyring.trusted_signers(custodian):
        return None
    return (
        f"this host's signing key {signer.id} ({path}) is not trusted by the keyring's custodian, so readers ignore "
        f"the files this run archived until the custodian runs: logwarden keys trust --archive {archive} "
        f"--public-key={signing.encode_public(signer.public_key)} --name {socket.gethostname()}"
    )


def run(args) -> int:
    config, files, options = _prepare(args)
    if args.dead_letter_jsonl:
        print(
            f"logwarden: warning: dead letters also go to {args.dead_letter_jsonl} as PLAINTEXT JSON lines "
            "(raw log lines are personal data; delete them when done)",
            file=sys.stderr,
        )
    collectors: list[progress.Collector] = []

    @contextlib.contextmanager
    def while_the_job_runs():
        """Forked workers (they prepare while the job is built) and the progress display: only for a job."""
        with (
            forked_workers(local_worker_processes(options), user_agent.prepare if config.enrich.enabled else None),
            progress.watch(files) as collector,
            quiet_local_workers(options, args.verbose),
        ):
            collectors.append(collector)
            yield

    try:
        with free_finished_stages():  # before forking: the workers inherit it
            result = run_batch(
                files,
                args.output,
                config,
                options,
                args.dead_letter_jsonl,
                args.follow_symlinks,
                args.reprocess,
                while_the_job_runs,
            )
    except Exception as problem:  # the runner's error, said once, without a traceback wall
        print(f"logwarden: error: the batch job failed: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    totals = collectors[0].totals if collectors and collectors[0].totals.files else None
    print(summary(result, totals, _sink_names(config)), file=sys.stderr)
    code, problems = outcome(result.counts, config.input.format, files)
    for problem in [*problems, untrusted_writer_hint(config.keys, args.output)]:
        if problem:
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
