"""Which columns hold personal data: defined once, used by the archive's column keys and by reports.

A column named here is personal in every schema that has it.  The encrypted
archive puts these columns under the ``personal`` master key of their period
and every other column under the ``data`` key; nothing else decides it.
Query strings, full URLs, request lines and referrers are personal because a
query string can carry e-mail addresses, tokens or names; error messages are
personal because Apache and nginx embed the client address in them.
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
        # what the client sent that may name them
        "url_query",
        "url_original",
        "http_request_line",
        "http_request_referrer",
        # error events: messages embed client addresses
        "message",
        # dead letters: the whole unparsed line
        "raw",
    }
)


def personal_columns(schema: pa.Schema) -> list[str]:
    """The personal top-level columns of ``schema``, in schema order."""
    return [name for name in schema.names if name in PERSONAL_FIELDS]


def other_columns(schema: pa.Schema) -> list[str]:
    """The top-level columns of ``schema`` that are not personal, in schema order."""
    return [name for name in schema.names if name not in PERSONAL_FIELDS]
