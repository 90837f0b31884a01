"""``logwarden rules list|check``: see the rules that would run, and validate rule files."""

from __future__ import annotations

import sys

from alerts.rules import DEFAULT_RULES_DIR, Bucket, RuleError, load_configured_rules, load_rules
from pipelines.commands.common import EXIT_OK, UsageError, add_command, add_config_argument, error, load_or_report

EPILOG = """\
examples:
  logwarden rules list                       # the shipped pack (plus rules from the config)
  logwarden rules list -c logwarden.yaml
  logwarden rules check my-rules.yaml        # every mistake at once, naming file, rule and key,
                                             # and ids that clash with the shipped pack
The rule language: docs/rules.md (reference) and docs/rules-tutorial.md.

Exit status: 0 when the rules are valid, 2 when a rule or the config is wrong.
"""


def _threshold(rule) -> str:
    if rule.is_health:
        spec = rule.health
        return f"{spec.measure} every {spec.every:g}s over {spec.window:g}s"
    if rule.is_signature:
        return "first match"
    t = rule.threshold
    what = f"distinct {rule.distinct}" if rule.distinct else "events"
    if isinstance(t, Bucket):
        return f"> {t.capacity} {what}, leak 1/{t.leak:g}s"
    return f">= {t.count} {what} in {t.period:g}s"


def _check(args) -> int:
    """Every mistake in the files at once, and ids that clash with the shipped pack (which loads beside them)."""
    with_shipped = not args.no_default_rules
    rules = load_rules(args.paths, default_rules=with_shipped)
    mine = [r for r in rules.rules if not r.source.startswith(str(DEFAULT_RULES_DIR))] if args.paths else rules.rules
    clash = " and no id clashes with the shipped pack" if args.paths and with_shipped else ""
    print(f"logwarden: {len(mine)} rule(s) valid{clash}", file=sys.stderr)
    return EXIT_OK


def run(args) -> int:
    try:
        if args.action == "check":
            return _check(args)
        config = load_or_report(args.config)
        rules = load_configured_rules(config.alerts)
    except UsageError as problem:
        return error(str(problem))
    except RuleError as problem:
        return error(f"bad rule: {problem}")
    print(f"{'id':26} {'kind':9} {'severity':8} {'technique':10} {'groupby':22} {'threshold':34} cooldown  title")
    for r in rules.rules:
        print(
            f"{r.id:26} {r.kind:9} {r.severity:8} {r.technique:10} {'+'.join(r.groupby):22} "
            f"{_threshold(r):34} {r.cooldown / 60:6.0f}m  {r.title}"
        )
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "rules",
        "list or validate detection rules",
        "List the detection rules that would run, or check rule files for mistakes.",
        EPILOG,
    )
    parser.add_argument("action", choices=["list", "check"])
    parser.add_argument("paths", nargs="*", metavar="PATH", help="rule files or directories (check)")
    parser.add_argument(
        "--no-default-rules", action="store_true", help="check without the shipped pack (no id-clash check)"
    )
    add_config_argument(parser)
    parser.set_defaults(run=run)
