"""``logwarden detect``: replay log files through the detection rules, one JSON alert per line."""

from __future__ import annotations

import collections
import functools
import sys

from alerts.alert import alert_sort_key
from alerts.replay import detect_results
from alerts.rules import RuleError, load_configured_rules
from alerts.sinks import build_sinks, shared_view
from alerts.sinks.delivery import Delivery
from alerts.sinks.files import JsonLinesSink, StdoutSink
from parsers.registry import UnknownFormatError, get_format
from pipelines.commands.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_command,
    add_config_argument,
    check_output_file,
    error,
    load_or_report,
)
from pipelines.core import enricher_for, parse_files
from pipelines.enrich import check_enrich_config
from pipelines.inputs import InputError, list_files
from pipelines.read import open_raw
from schemas.config import ConfigError

EPILOG = """\
examples:
  logwarden detect /var/log/nginx/access.log                 # alerts as JSON lines on stdout
  logwarden detect 'logs/access.log*' --output alerts.jsonl  # .gz/.bz2/.zst too
  logwarden detect access.log --rules my-rules/ --no-default-rules
  logwarden detect error.log --format apache_error -c logwarden.yaml   # also sends to the configured sinks

The same rules and the same event-time logic as 'logwarden batch': replaying
yesterday's logs raises the alerts (same ids, same timestamps) the live stream
raised.  A summary of alerts per rule goes to stderr.  Exit status: 0 when the
files were read (alerts are not an error), 1 if an alert could not be delivered
to a configured sink, 2 on a usage, config or rule error.
"""


def run(args) -> int:
    check_output_file(args.output)
    try:
        config = load_or_report(args.config)
        alerts_config = config.alerts
        if args.rules or args.no_default_rules:
            import dataclasses

            alerts_config = dataclasses.replace(
                alerts_config,
                rules=tuple(alerts_config.rules) + tuple(args.rules or ()),
                default_rules=not args.no_default_rules and alerts_config.default_rules,
            )
        rules = load_configured_rules(alerts_config)
        format_spec = args.format or config.input.format
        if format_spec != "auto":
            get_format(format_spec)
        files = list_files(args.files, args.follow_symlinks)
        if config.enrich.enabled:
            check_enrich_config(config.enrich)
    except (UsageError, UnknownFormatError, InputError) as problem:
        return error(str(problem))
    except ConfigError as problem:
        return error(f"bad config: {problem}")
    except RuleError as problem:
        return error(f"bad rule: {problem}")
    reports = []
    enricher = enricher_for(config.enrich)  # as batch does: behind trusted proxies the client is the source
    opener = functools.partial(open_raw, follow_symlinks=args.follow_symlinks)
    try:
        results = parse_files(files, opener, format_spec, config, enricher, reports)
        alerts = sorted(detect_results(rules, results), key=alert_sort_key)
    finally:
        if enricher is not None:
            enricher.close()
    primary = StdoutSink() if args.output in (None, "-") else JsonLinesSink(args.output)
    if args.output not in (None, "-"):
        open(args.output, "w").close()  # a replay writes the file afresh
    sinks_config = config.alerts.sinks
    delivery = Delivery(
        [primary, *build_sinks(sinks_config)],
        sinks_config.deadline_seconds,
        sinks_config.queue_size,
        view=lambda alert, sink: alert if sink.internal else shared_view(alert, None),
    )
    for alert in alerts:
        delivery.submit(alert)
    report = delivery.finish()
    lines = sum(r.lines_read for r in reports)
    dead = sum(r.dead_lettered for r in reports)
    by_rule = collections.Counter(a["rule_id"] for a in alerts)
    print(f"logwarden: {len(files)} file(s), {lines} lines ({dead} unparsed), {len(alerts)} alert(s)", file=sys.stderr)
    for rule_id, count in sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:6d}  {rule_id}", file=sys.stderr)
    for sink, failed in report.failed.items():
        print(f"logwarden: warning: {failed} alert(s) not delivered to {sink}: {report.errors.get(sink, '')}",
              file=sys.stderr)  # fmt: skip
    return EXIT_FAILURE if report.failed else EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "detect",
        "replay log files through the detection rules",
        "Run the detection rules over log files and print one JSON alert per line.",
        EPILOG,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="log files, globs or directories")
    parser.add_argument("--format", "-f", help="'auto' (default: detect per file) or a format name")
    parser.add_argument("--rules", "-r", action="append", metavar="PATH", help="extra rule file or directory")
    parser.add_argument("--no-default-rules", action="store_true", help="do not load the shipped rule pack")
    parser.add_argument("--output", "-o", metavar="PATH", help="write alerts here instead of stdout")
    parser.add_argument("--follow-symlinks", action="store_true", help="read inputs that are symbolic links")
    add_config_argument(parser)
    parser.set_defaults(run=run)
