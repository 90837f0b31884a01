"""Traffic aggregates for capacity planners: per time bucket and virtual host, no personal data.

Two kinds of tables.  What every run *stores* (``TRAFFIC_STORE`` and
``BREAKDOWN_STORE``): mergeable rows per run, input source, bucket and host,
with sketch bytes (HyperLogLog visitors, KLL response times) and the exact
sparse per-second load, so a report for any period merges runs without
double-counting and without archive keys.  What a *report* holds
(``TRAFFIC_AGGREGATE``: one row per report bucket and host;
``TRAFFIC_BREAKDOWN``: one row per host, dimension and value over the period,
k-anonymous, "(other)" included).  No column can identify a person: visitors
are sketches, paths generalised, referrers reduced to their host.
"""

import pyarrow as pa

from schemas.fields import TIMESTAMP_TYPE
from schemas.versioning import with_version

_STATUS = [pa.field(f"status_{c}xx", pa.int64()) for c in range(1, 6)]
_STORE_KEY = [
    pa.field("run_id", pa.string(), nullable=False),
    # Fingerprint of the input file's first decompressed bytes: the same log read again (or rotated,
    # renamed, compressed) is the same source, so a later run over it replaces, never adds.
    pa.field("source", pa.string(), nullable=False),
    pa.field("bucket_start", TIMESTAMP_TYPE, nullable=False),
    pa.field("bucket", pa.string(), nullable=False),  # stored grain: minute, hour or day
    pa.field("url_domain", pa.string()),
]

TRAFFIC_STORE = with_version(
    pa.schema(
        [
            *_STORE_KEY,
            # Decompressed byte offsets of the first and last line counted from this source.
            pa.field("source_first_offset", pa.int64()),
            pa.field("source_last_offset", pa.int64()),
            pa.field("requests", pa.int64()),
            pa.field("bytes", pa.int64()),
            pa.field("bot_requests", pa.int64()),
            *_STATUS,
            pa.field("seconds", pa.list_(pa.int64())),  # epoch seconds with at least one request
            pa.field("second_requests", pa.list_(pa.int64())),
            pa.field("second_bytes", pa.list_(pa.int64())),
            pa.field("visitors_hll", pa.binary()),
            pa.field("response_ms_kll", pa.binary()),
            pa.field("geoip_configured", pa.bool_()),
        ]
    ),
    "traffic_store",
)

BREAKDOWN_STORE = with_version(
    pa.schema(
        [
            *_STORE_KEY,
            pa.field("dimension", pa.string(), nullable=False),
            pa.field("value", pa.string(), nullable=False),
            pa.field("requests", pa.int64()),
            pa.field("bytes", pa.int64()),
            pa.field("visitors_hll", pa.binary()),
        ]
    ),
    "breakdown_store",
)

TRAFFIC_AGGREGATE = with_version(
    pa.schema(
        [
            pa.field("bucket_start", TIMESTAMP_TYPE, nullable=False),
            pa.field("bucket", pa.string(), nullable=False),  # minute, hour, day or week
            pa.field("url_domain", pa.string()),
            pa.field("requests", pa.int64()),
            pa.field("bytes", pa.int64()),
            pa.field("distinct_visitors_estimate", pa.int64()),
            *_STATUS,
            pa.field("peak_requests_per_second", pa.float64()),
            # Billing style: the 95th percentile of 5-minute averages (quiet samples count as zero).
            pa.field("p95_requests_per_second", pa.float64()),
            pa.field("peak_bytes_per_second", pa.float64()),
            pa.field("p95_bytes_per_second", pa.float64()),
            pa.field("bot_requests", pa.int64()),
            pa.field("response_ms_p50", pa.float64()),
            pa.field("response_ms_p95", pa.float64()),
            pa.field("response_ms_p99", pa.float64()),
        ]
    ),
    "aggregate",
)

TRAFFIC_BREAKDOWN = with_version(
    pa.schema(
        [
            pa.field("period_start", TIMESTAMP_TYPE, nullable=False),
            pa.field("period_end", TIMESTAMP_TYPE, nullable=False),
            pa.field("url_domain", pa.string()),  # null: all hosts together
            pa.field("dimension", pa.string(), nullable=False),
            pa.field("value", pa.string()),
            pa.field("requests", pa.int64()),
            pa.field("bytes", pa.int64()),
            pa.field("distinct_visitors_estimate", pa.int64()),
            pa.field("share", pa.float64()),  # of the host's requests in the dimension
        ]
    ),
    "breakdown",
)

# Service-health episodes (``pipelines.reports.health``): when availability and performance alerts fired, per
# host (and path prefix for per-path rules), never who caused them.  What a run stores: one row per health alert
# record (firing or resolved); what a report holds: one row per episode in the period.
_HEALTH_RULE = [
    pa.field("rule_id", pa.string(), nullable=False),
    pa.field("rule_title", pa.string()),
    pa.field("category", pa.string()),  # availability or performance
    pa.field("severity", pa.string()),
    pa.field("url_domain", pa.string()),  # the virtual host (null: logs without one)
    pa.field("path_prefix", pa.string()),  # per-path rules: the generalised top-level path
]
_HEALTH_MEASURE = [
    pa.field("measure", pa.string()),  # count, ratio or pNN
    pa.field("field", pa.string()),  # what a percentile measures (event_duration_us: microseconds)
    pa.field("value", pa.float64()),
    pa.field("baseline", pa.float64()),
    pa.field("threshold", pa.string()),
    pa.field("events", pa.int64()),
]

HEALTH_STORE = with_version(
    pa.schema(
        [
            # A hash of rule, host, path prefix and start: the same episode seen by two readings is one.
            pa.field("episode_id", pa.string(), nullable=False),
            pa.field("status", pa.string(), nullable=False),  # firing or resolved
            *_HEALTH_RULE,
            pa.field("first_seen", TIMESTAMP_TYPE, nullable=False),  # when the problem began
            pa.field("window_start", TIMESTAMP_TYPE),  # the window this record judged
            pa.field("window_end", TIMESTAMP_TYPE),
            *_HEALTH_MEASURE,
            pa.field("observed_until", TIMESTAMP_TYPE),  # event time the storing run had reached
        ]
    ),
    "health_store",
)

HEALTH_EPISODES = with_version(
    pa.schema(
        [
            pa.field("episode_id", pa.string(), nullable=False),
            *_HEALTH_RULE,
            pa.field("started", TIMESTAMP_TYPE, nullable=False),  # when the problem began
            pa.field("fired_at", TIMESTAMP_TYPE),  # end of the window that raised the alert
            pa.field("resolved_at", TIMESTAMP_TYPE),  # the resolved notice (null: none stored, still open)
            pa.field("shown_until", TIMESTAMP_TYPE),  # end of the band on the page's charts
            pa.field("window_start", TIMESTAMP_TYPE),  # the window that raised the alert
            pa.field("window_end", TIMESTAMP_TYPE),
            *_HEALTH_MEASURE,
        ]
    ),
    "health_episodes",
)
