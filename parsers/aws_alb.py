"""AWS load balancer access logs, as documented by AWS (fields in file order): Application
Load Balancer (``aws_alb``), Classic Load Balancer with HTTP(S) and TCP/SSL listeners
(``aws_elb``) and Network Load Balancer TLS listeners (``aws_nlb``).

Each format is fixed, so it is written here as a sequence of fields and compiled
like a server's format string; fields AWS appended in later years (and any it
appends next) are accepted after the known ones and kept out of the event.  All
three start differently (ALB a request type, NLB ``tls 2.0``, classic ELB the
time), so auto-detection tells them apart.
"""

from __future__ import annotations

from parsers.format_strings import NUMBER_OR_DASH, STATUS, Field, build_pattern
from parsers.pattern import LinePattern, Skip
from parsers.regex_format import RegexFormat


def _label(key: str, what: str, body: str | None = None) -> Field:
    return Field("", what, key, body)


_SIGNED_DECIMAL = r"-?[0-9]+(?:\.[0-9]+)?"
_TIME = Field("time_iso8601", "time (ISO 8601)", "time", r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ \"]+", fills=("timestamp",))
_CLIENT = Field("address_port", "client:port", "client", fills=("source_address", "source_ip", "source_port"))


def _http_fields(upstream: str, upstream_status: str, upstream_status_body: str, request: str) -> list:
    """The run of fields ALB and classic ELB share, from the processing times to the SSL protocol; they name the
    server behind the balancer differently (``target`` / ``backend``)."""
    return [
        _label("request_processing_time", "request processing time", _SIGNED_DECIMAL),
        " ",
        _label(f"{upstream}_processing_time", f"{upstream} processing time", _SIGNED_DECIMAL),
        " ",
        _label("response_processing_time", "response processing time", _SIGNED_DECIMAL),
        " ",
        Field("http_response_status_code", "ELB status code", "elb_status_code", STATUS + "|-"),
        " ",
        _label(f"{upstream}_status_code", upstream_status, upstream_status_body),
        " ",
        Field("http_request_bytes", "received bytes", "received_bytes", NUMBER_OR_DASH),
        " ",
        Field("http_response_bytes", "sent bytes", "sent_bytes", NUMBER_OR_DASH),
        ' "',
        Field("request_line", request, "request"),
        '" "',
        Field("user_agent_original", "user agent in quotes", "user_agent"),
        '" ',
        Field("tls_cipher", "SSL cipher", "ssl_cipher"),
        " ",
        Field("tls_protocol", "SSL protocol", "ssl_protocol", fills=("tls_version",)),
    ]


ALB_PARTS = [
    _label("type", "request type (http, https, h2, grpcs, ws, wss)", r"[a-z0-9]+"),
    " ",
    _TIME,
    " ",
    _label("elb", "load balancer id"),
    " ",
    _CLIENT,
    " ",
    _label("target", "target:port"),
    " ",
    *_http_fields("target", "target status code", STATUS + "|-", "request in quotes"),
    " ",
    _label("target_group_arn", "target group ARN"),
    ' "',
    _label("trace_id", "trace id in quotes"),
    '" "',
    Field("url_domain", "domain name in quotes", "domain_name"),
    '" "',
    _label("chosen_cert_arn", "chosen certificate ARN in quotes"),
    '"',
]
_MORE = Skip(r"(?: .*)?", "fields AWS added after chosen_cert_arn")

ALB = RegexFormat(
    name="aws_alb",
    kind="access",
    dataset="aws.elb",
    pattern=LinePattern((*build_pattern(ALB_PARTS).tokens, _MORE)),
    description="AWS Application Load Balancer access log",
)

#: Classic Load Balancer: an HTTP(S) listener logs the request; a TCP/SSL one logs ``"- - - "`` and ``-`` statuses.
ELB_PARTS = [
    _TIME,
    " ",
    _label("elb", "load balancer name"),
    " ",
    _CLIENT,
    " ",
    _label("backend", "backend:port (- when none answered)"),
    " ",
    *_http_fields(
        "backend",
        "backend status code (0 when none answered)",
        r"[0-9]{1,3}|-",
        "request in quotes (- - - on a TCP listener)",
    ),
]

ELB = RegexFormat(
    name="aws_elb",
    kind="access",
    dataset="aws.elb",
    pattern=LinePattern((*build_pattern(ELB_PARTS).tokens, Skip(r"(?: .*)?", "fields AWS may add"))),
    description="AWS Classic Load Balancer access log (HTTP, HTTPS, TCP and SSL listeners)",
)

#: Network Load Balancer (TLS listeners only write access logs), log version 2.0.
NLB_PARTS = [
    _label("type", "listener type (tls)", r"tls"),
    " ",
    _label("version", "log version", r"[0-9]+\.[0-9]+"),
    " ",
    _TIME,
    " ",
    _label("elb", "load balancer id"),
    " ",
    _label("listener", "listener id"),
    " ",
    _CLIENT,
    " ",
    _label("destination", "destination:port"),
    " ",
    _label("connection_time", "connection time (ms)", NUMBER_OR_DASH),
    " ",
    _label("tls_handshake_time", "TLS handshake time (ms)", NUMBER_OR_DASH),
    " ",
    Field("http_request_bytes", "received bytes", "received_bytes", NUMBER_OR_DASH),
    " ",
    Field("http_response_bytes", "sent bytes", "sent_bytes", NUMBER_OR_DASH),
    " ",
    _label("incoming_tls_alert", "incoming TLS alert"),
    " ",
    _label("chosen_cert_arn", "chosen certificate ARN"),
    " ",
    _label("chosen_cert_serial", "chosen certificate serial"),
    " ",
    Field("tls_cipher", "TLS cipher", "tls_cipher"),
    " ",
    _label("tls_protocol_version", "TLS protocol version (tlsv12)"),
    " ",
    _label("tls_named_group", "TLS named group"),
    " ",
    Field("url_domain", "domain name (SNI)", "domain_name", r"[^ ]+"),
]

NLB = RegexFormat(
    name="aws_nlb",
    kind="access",
    dataset="aws.nlb",
    pattern=LinePattern((*build_pattern(NLB_PARTS).tokens, Skip(r"(?: .*)?", "ALPN and later fields"))),
    description="AWS Network Load Balancer access log (TLS listeners)",
)

FORMATS = (ALB, ELB, NLB)
