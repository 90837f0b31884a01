"""Arrow schemas, defined once, for everything logwarden reads, writes and reports.

Field names follow the Elastic Common Schema with dots replaced by underscores
(``source.ip`` -> ``source_ip``, ``@timestamp`` -> ``timestamp``).  Every other
module derives its columns, JSON keys and Parquet layout from these objects.
"""

from schemas.access import ACCESS_EVENT
from schemas.aggregates import (
    BREAKDOWN_STORE,
    HEALTH_EPISODES,
    HEALTH_STORE,
    TRAFFIC_AGGREGATE,
    TRAFFIC_BREAKDOWN,
    TRAFFIC_STORE,
)
from schemas.alerts import ALERT
from schemas.dead_letters import DEAD_LETTER
from schemas.errors import ERROR_EVENT
from schemas.versioning import SCHEMA_VERSION, schema_version_of, with_version

__all__ = [
    "ACCESS_EVENT",
    "ALERT",
    "BREAKDOWN_STORE",
    "DEAD_LETTER",
    "ERROR_EVENT",
    "HEALTH_EPISODES",
    "HEALTH_STORE",
    "SCHEMA_VERSION",
    "TRAFFIC_AGGREGATE",
    "TRAFFIC_BREAKDOWN",
    "TRAFFIC_STORE",
    "schema_for_kind",
    "schema_version_of",
    "with_version",
]

_BY_KIND = {
    "access": ACCESS_EVENT,
    "error": ERROR_EVENT,
    "dead_letter": DEAD_LETTER,
    "alert": ALERT,
    "aggregate": TRAFFIC_AGGREGATE,
    "breakdown": TRAFFIC_BREAKDOWN,
    "traffic_store": TRAFFIC_STORE,
    "breakdown_store": BREAKDOWN_STORE,
    "health_store": HEALTH_STORE,
    "health_episodes": HEALTH_EPISODES,
}


def schema_for_kind(kind: str):
    """The schema of one record kind: access, error, dead_letter, alert, aggregate or breakdown."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(_BY_KIND)}") from None
