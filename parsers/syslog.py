"""Formats behind a syslog prefix: servers that log through syslog (``ErrorLog syslog:``, nginx
``access_log syslog:``) get ``Feb 15 16:23:00 host prog[pid]: `` before each line.

The prefix is matched and dropped (its time has no year or zone; the server's own
time inside the line is used), and the rest is parsed by the wrapped format.
"""

from __future__ import annotations

import dataclasses

from parsers import apache, error_logs, nginx
from parsers.pattern import LinePattern, Skip
from parsers.regex_format import RegexFormat, Variant

PREFIX = r"[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [^ ]+ [^ \[:]+(?:\[[0-9]+\])?: "
_SKIP = Skip(PREFIX, "syslog prefix (Feb 15 16:23:00 host program[pid]: )")


def _prefixed(pattern: LinePattern) -> LinePattern:
    return LinePattern((_SKIP, *pattern.tokens))


def with_syslog_prefix(fmt):
    """The same format with each line behind a syslog prefix, named ``syslog_<name>``."""
    name = f"syslog_{fmt.name}"
    description = f"{fmt.description}, behind a syslog prefix"
    if isinstance(fmt, RegexFormat):
        variants = tuple(Variant(_prefixed(v.pattern), v.flag) for v in fmt.variants)
        return dataclasses.replace(
            fmt, name=name, pattern=_prefixed(fmt.pattern), variants=variants, description=description
        )
    start = "^" + PREFIX + fmt.start.removeprefix("^")
    return dataclasses.replace(fmt, name=name, pattern=_prefixed(fmt.pattern), start=start, description=description)


FORMATS = tuple(
    with_syslog_prefix(f)
    for f in (apache.COMBINED, nginx.NGINX_COMBINED, error_logs.APACHE_ERROR, error_logs.NGINX_ERROR)
)
