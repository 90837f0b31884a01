"""Everything in a config that could fail later, checked before any work starts.

``schemas.config`` checks each value on its own (types, ranges, time zones,
URLs); this module checks what needs the rest of logwarden: that the log format
compiles, the runner exists, the rule files load, cool-downs and ``disable``
name real rules, GeoIP databases are of the right kind.  All problems are
raised together as one ``ConfigErrors``, each naming its key and the fix.
"""

from __future__ import annotations

import difflib
import os

from apache_beam.options.pipeline_options import StandardOptions

from alerts.rules import RuleError, load_configured_rules
from parsers.enrich.geoip import check_databases
from parsers.registry import UnknownFormatError, get_format
from schemas.config import Config, ConfigError, ConfigErrors, load_config


def runner_problem(name: str) -> str | None:
    """None when Beam can create the runner ``name`` (a known short name or a dotted class path)."""
    if "." in name:
        return None
    lower = name.lower()
    known = {path.rsplit(".", 1)[-1].lower(): path.rsplit(".", 1)[-1] for path in StandardOptions.ALL_KNOWN_RUNNERS}
    if lower in known or lower + "runner" in known:
        return None
    close = difflib.get_close_matches(name, list(known.values()), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown Beam runner {name!r}; {hint}use one of {', '.join(sorted(known.values()))} "
        "or the dotted path of a PipelineRunner class"
    )


def _rule_problems(config: Config) -> list[ConfigError]:
    try:
        load_configured_rules(config.alerts)
    except RuleError as problems:
        found = []
        for error in problems.errors:
            if error.key and error.key.startswith("alerts."):
                found.append(ConfigError(error.key, error.problem))
            else:
                found.append(ConfigError("alerts.rules", str(error)))
        return found
    return []


def config_problems(config: Config) -> list[ConfigError]:
    """Every problem of a parsed config that only shows once the job runs (empty when none)."""
    problems: list[ConfigError] = []
    if config.input.format != "auto":
        try:
            get_format(config.input.format)
        except UnknownFormatError as error:
            problems.append(ConfigError("input.format", str(error)))
    runner = runner_problem(config.runner.name)
    if runner:
        problems.append(ConfigError("runner.name", runner))
    if config.enrich.enabled:
        for index, problem in check_databases(config.enrich.geoip_databases):
            problems.append(ConfigError(f"enrich.geoip_databases[{index}]", problem))
    if config.alerts.enabled:
        problems += _rule_problems(config)
        jsonl = config.alerts.sinks.jsonl
        if jsonl and "://" not in jsonl:
            folder = os.path.dirname(os.path.abspath(jsonl))
            if not os.path.isdir(folder):
                problems.append(
                    ConfigError("alerts.sinks.jsonl", f"the folder {folder} does not exist; create it or pick another")
                )
            elif os.path.isdir(jsonl):
                problems.append(ConfigError("alerts.sinks.jsonl", f"{jsonl} is a directory; name a file in it"))
    return problems


def load_checked_config(path: str | None) -> Config:
    """The config file (or the defaults) with everything that could fail later checked; ``ConfigErrors`` if not."""
    return load_config(path, config_problems)


def check_config(config: Config, source: str | None = None) -> Config:
    """``config`` (changed by command-line flags) when nothing in it can fail later; else ``ConfigErrors``."""
    problems = config_problems(config)
    if problems:
        raise ConfigErrors(problems, source)
    return config
