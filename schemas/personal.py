"""Which columns hold personal data: defined once, used by the archive's column keys and by reports.

A column named here is personal in every schema that has it.  The encrypted
archive puts these columns under the ``personal`` master key of their period
and every other column under the ``data`` key; nothing else decides it.
The rule: a column is personal when its value is, or can quote, what a client
sent or who the client is.  Query strings, full URLs, request lines and
referrers carry e-mail addresses, tokens or names; a path can too
(``/users/john.smith``); the host, method and request id are whatever the
client wrote; labels keep fields no column fits, as logged; error messages
embed client addresses; a dead letter's reason quotes the bytes it could not
read; user-agent names are cut out of the client's user agent; an alert's key,
samples and evidence lines are raw input by design.
"""

from __future__ import annotations

import pyarrow as pa

PERSONAL_FIELDS: frozenset[str] = frozenset(
    {
        # who the client is
        "source_address",
        "source_ip",
        "source_domain",
        "source_proxy_ip",
        "http_request_x_forwarded_for",
        "user_name",
        "user_identity",
        "user_agent_original",
        # where the client is
        "source_geo_city_name",
        "source_geo_location",
        "user_agent_name",
        "user_agent_os_name",
        "user_agent_device_name",
        # what the client sent that may name them
        "url_query",
        "url_original",
        "url_path",
        "url_domain",
        "http_request_line",
        "http_request_method",
        "http_request_referrer",
        "event_id",
        "labels",
        # error events: messages embed client addresses
        "message",
        # dead letters: the whole unparsed line, and a reason that quotes it
        "raw",
        "reason",
        # alerts: the key they are about, sampled values and evidence lines
        "group_key",
        "distinct_sample",
        "evidence",
    }
)


def personal_columns(schema: pa.Schema) -> list[str]:
    """The personal top-level columns of ``schema``, in schema order."""
    return [name for name in schema.names if name in PERSONAL_FIELDS]


def other_columns(schema: pa.Schema) -> list[str]:
    """The top-level columns of ``schema`` that are not personal, in schema order."""
    return [name for name in schema.names if name not in PERSONAL_FIELDS]
