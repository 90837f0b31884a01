"""One well-formed line per log format, with its fields marked so a test can put anything into each.

``{}`` marks a field in the template: the property tests fill each one in turn with
hostile text while the others keep their sample value (the first string of each field).
"""

from __future__ import annotations

import re

CLF_TIME = "[01/Nov/2026:10:00:00 +0000]"
_REQ = '"{GET} {/a?q=1} HTTP/1.1"'
_COMBINED = "{198.51.100.1} - {alice} " + CLF_TIME + " " + _REQ + ' 200 {12} "{http://r.example/}" "{ua/1.0}"'
_COMMON = "{198.51.100.1} - {alice} " + CLF_TIME + " " + _REQ + " 200 {12}"

#: Format name (or spec) -> template with ``{value}`` fields.
TEMPLATES: dict[str, str] = {
    "combined": _COMBINED,
    "common": _COMMON,
    "vhost_combined": "{www.example.com}:80 " + _COMBINED,
    "combinedio": _COMBINED + " 100 200",
    "debian_combined": _COMBINED,
    "debian_common": _COMMON,
    "vhost_common": "{www.example.com} " + _COMMON,
    "traefik_clf": _COMBINED + ' 1 "{router@docker}" "{http://10.0.0.2:80}" 3ms',
    "nginx_combined": _COMBINED,
    "nginx_main": _COMBINED + ' "{-}"',
    "apache_error": "[Sun Nov 01 10:00:00.123456 2026] [core:error] [pid 1:tid 2] "
    "[client {198.51.100.1}:5] {AH00126: bad}",
    "nginx_error": "2026/11/01 10:00:00 [error] 1#1: *3 {open() failed}, client: {198.51.100.1}, server: {a}, "
    'request: "{GET} {/x} HTTP/1.1", host: "{a.example}"',
    "json_lines": '{"time":"2026-11-01T10:00:00Z","remote_addr":"{198.51.100.1}","request":"{GET} {/a} HTTP/1.1",'
    '"status":200,"http_user_agent":"{ua}","extra":"{x}"}',
    "ssl_request": CLF_TIME + " {198.51.100.1} TLSv1.2 {ECDHE-RSA-AES128-GCM-SHA256} " + _REQ + " {12}",
    "syslog_combined": "Nov  1 10:00:00 {web1} nginx[12]: " + _COMBINED,
    "aws_alb": "http 2026-11-01T10:00:00.000000Z app/lb/50dc {198.51.100.1}:2817 10.0.0.1:80 0.000 0.001 0.000 "
    '200 200 34 366 "{GET} {http://www.example.com:80/a?q=1} HTTP/1.1" "{curl/7.46.0}" - - '
    'arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/t/73 "Root=1-5" "{www.example.com}" "-" 0 '
    '2026-11-01T10:00:00.000000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-"',
    "iis": "2026-11-01 10:00:00 10.0.0.1 {GET} {/a} {q=1} 443 {alice} {198.51.100.1} {Mozilla/5.0+(X)} {-} 200 0 0 15",
    "w3c:date time c-ip cs-method cs-uri-stem cs-uri-query sc-status cs(User-Agent)": (
        "2026-11-01 10:00:00 {198.51.100.1} {GET} {/a} {q=1} 200 {ua}"
    ),
}

_FIELD = re.compile(r"\{([^{}]*)\}")


def fields(template: str) -> list[str]:
    return _FIELD.findall(template)


def render(template: str, index: int | None = None, value: str = "") -> str:
    """The template with its sample values, field ``index`` replaced by ``value``."""
    counter = iter(range(10_000))

    def fill(match: re.Match) -> str:
        return value if next(counter) == index else match.group(1)

    return _FIELD.sub(fill, template)
