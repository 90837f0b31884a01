"""Apache httpd's stock access-log formats, defined by the LogFormat lines that ship with it.

Upstream ``httpd.conf`` defines common, combined and combinedio; Debian's
``apache2.conf`` redefines common and combined with ``%O`` (bytes sent,
headers included) and adds vhost_combined.  The parsers are compiled from
those very lines, so they agree with what the servers write.
"""

from __future__ import annotations

from parsers.apache_logformat import compile_logformat, format_string_of, parts_of
from parsers.format_strings import build_pattern
from parsers.pattern import Capture, LinePattern, Literal
from parsers.regex_format import EXTRA_FIELDS, Variant

COMMON_LOGFORMAT = r'LogFormat "%h %l %u %t \"%r\" %>s %b" common'
COMBINED_LOGFORMAT = r'LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\"" combined'
COMBINEDIO_LOGFORMAT = r'LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\" %I %O" combinedio'
DEBIAN_COMMON_LOGFORMAT = r'LogFormat "%h %l %u %t \"%r\" %>s %O" common'
DEBIAN_COMBINED_LOGFORMAT = r'LogFormat "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" combined'
VHOST_COMBINED_LOGFORMAT = (
    r'LogFormat "%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" vhost_combined'
)
#: The Apache manual's virtual-host variant of common (and Filebeat's vhost test log).
VHOST_COMMON_LOGFORMAT = r'LogFormat "%v %h %l %u %t \"%r\" %>s %b" vhost_common'
SSL_REQUEST_LOGFORMAT = r'CustomLog logs/ssl_request_log "%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x \"%r\" %b"'
#: Traefik's "common" access log: combined plus request count, router, service URL and duration.
TRAEFIK_CLF_LOGFORMAT = (
    r'"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %{request_count}n '
    r'\"%{router}n\" \"%{service_url}n\" %{ms}Tms"'
)

# Some servers append more fields after the user agent (e.g. "%{X-Forwarded-For}i", %D); such lines
# still parse, their extra fields kept in labels["extra_fields"] and the event flagged extra_fields.
TRAILING = (EXTRA_FIELDS,)


def pattern_of(logformat: str, trailing: tuple = ()) -> LinePattern:
    return LinePattern(build_pattern(parts_of(format_string_of(logformat)[0])).tokens + trailing)


def truncated_user_agent(logformat: str) -> Variant:
    """A combined line cut off inside its user agent: every field before it is intact."""
    tokens = pattern_of(logformat).tokens
    assert isinstance(tokens[-1], Literal) and tokens[-1].text == '"', "the format must end in a quoted field"
    cut = Capture("user_agent_original", r'[^"]*', "user agent")
    return Variant(LinePattern((*tokens[:-2], cut)), "truncated")


def _combined_family(logformat: str, common: str, name: str, description: str, dataset: str = "apache.access"):
    """A combined-style format that also takes common-style lines and lines cut inside the user agent."""
    return compile_logformat(
        logformat,
        name=name,
        dataset=dataset,
        description=description,
        trailing=TRAILING,
        variants=(Variant(pattern_of(common)), truncated_user_agent(logformat)),
    )


COMMON = compile_logformat(COMMON_LOGFORMAT, description='Apache Common Log Format: %h %l %u %t "%r" %>s %b')
COMBINED = _combined_family(
    COMBINED_LOGFORMAT,
    COMMON_LOGFORMAT,
    "combined",
    'Apache combined: %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"',
)
COMBINEDIO = compile_logformat(COMBINEDIO_LOGFORMAT, description="Apache combined plus %I %O (mod_logio)")
DEBIAN_COMMON = compile_logformat(DEBIAN_COMMON_LOGFORMAT, name="debian_common", description="Debian common (%O)")
DEBIAN_COMBINED = _combined_family(
    DEBIAN_COMBINED_LOGFORMAT, DEBIAN_COMMON_LOGFORMAT, "debian_combined", "Debian/Ubuntu combined (%O)"
)
VHOST_COMBINED = compile_logformat(
    VHOST_COMBINED_LOGFORMAT,
    description='Debian vhost_combined: %v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    trailing=TRAILING,
    variants=(
        Variant(pattern_of(r'"%v %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\""')),
        Variant(pattern_of(VHOST_COMMON_LOGFORMAT)),
        truncated_user_agent(VHOST_COMBINED_LOGFORMAT),
    ),
)
VHOST_COMMON = compile_logformat(VHOST_COMMON_LOGFORMAT, description='vhost common: %v %h %l %u %t "%r" %>s %b')
SSL_REQUEST = compile_logformat(
    SSL_REQUEST_LOGFORMAT, name="ssl_request", description="mod_ssl's ssl_request_log (httpd-ssl.conf)"
)

TRAEFIK_CLF = compile_logformat(
    TRAEFIK_CLF_LOGFORMAT, name="traefik_clf", dataset="traefik.access", description="Traefik CLF access log"
)

FORMATS = (
    COMBINED,
    COMMON,
    VHOST_COMBINED,
    COMBINEDIO,
    DEBIAN_COMBINED,
    DEBIAN_COMMON,
    VHOST_COMMON,
    SSL_REQUEST,
    TRAEFIK_CLF,
)
