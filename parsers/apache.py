"""Apache httpd's stock access-log formats (common, combined, vhost_combined, ...)."""

from __future__ import annotations

from parsers.pattern import BRACKETED, NON_SPACE, QUOTED, QUOTED_FAST, Capture, LinePattern, Literal, Skip
from parsers.regex_format import Recovery, RegexFormat


def quoted(name: str, what: str) -> tuple:
    return (Literal('"'), Capture(name, QUOTED, what, fast_pattern=QUOTED_FAST), Literal('"'))


CLIENT = Capture("source_address", NON_SPACE, "client address (%h)")
IDENT = Capture("user_identity", NON_SPACE, "identd user (%l)")
USER = Capture("user_name", NON_SPACE, "user name (%u)")
TIME = (Literal("["), Capture("time_clf", BRACKETED, "time in brackets (%t)"), Literal("]"))
REQUEST = quoted("request_line", 'request line in quotes ("%r")')
STATUS = Capture("http_response_status_code", r"[0-9]{3}", "status code (%>s)")
BYTES = Capture("http_response_body_bytes", r"[0-9]+|-", "response size (%b)")
REFERRER = quoted("http_request_referrer", 'referrer in quotes ("%{Referer}i")')
USER_AGENT = quoted("user_agent_original", 'user agent in quotes ("%{User-agent}i")')
VHOST = Capture("url_domain", NON_SPACE, "virtual host (%v)")
PORT = Capture("destination_port", r"[0-9]+", "server port (%p)")

_SP = Literal(" ")
_COMMON = (CLIENT, _SP, IDENT, _SP, USER, _SP, *TIME, _SP, *REQUEST, _SP, STATUS, _SP, BYTES)
_COMBINED = (*_COMMON, _SP, *REFERRER, _SP, *USER_AGENT)

# Some servers append more quoted fields after the user agent (e.g. "%{X-Forwarded-For}i");
# they are matched and kept out of the event rather than failing the line.
_TRAILING = Skip(r'(?: "[^"]*")*', "optional extra quoted fields")


def _truncated_user_agent(prefix: tuple) -> Recovery:
    """A combined line cut off inside its user agent: every field before it is intact."""
    cut = (Literal('"'), Capture("user_agent_original", r'[^"]*', "user agent"))
    return Recovery(LinePattern((*prefix, _SP, *REFERRER, _SP, *cut)), "truncated")


COMMON = RegexFormat(
    name="common",
    kind="access",
    dataset="apache.access",
    pattern=LinePattern(_COMMON),
    description='Apache Common Log Format: %h %l %u %t "%r" %>s %b',
)

COMBINED = RegexFormat(
    name="combined",
    kind="access",
    dataset="apache.access",
    pattern=LinePattern((*_COMBINED, _TRAILING)),
    recoveries=(_truncated_user_agent(_COMMON),),
    description='Apache/nginx combined: %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
)

VHOST_COMBINED = RegexFormat(
    name="vhost_combined",
    kind="access",
    dataset="apache.access",
    pattern=LinePattern((VHOST, Literal(":"), PORT, _SP, *_COMBINED, _TRAILING)),
    recoveries=(_truncated_user_agent((VHOST, Literal(":"), PORT, _SP, *_COMMON)),),
    description='Apache vhost_combined: %v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
)

FORMATS = (COMBINED, COMMON, VHOST_COMBINED)
