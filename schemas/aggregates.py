"""Traffic aggregates for capacity planners: per time bucket and virtual host, no personal data.

``TRAFFIC_AGGREGATE`` has one row per bucket and host; ``TRAFFIC_BREAKDOWN`` one
row per bucket, host, dimension (browser, os, device, status, path, referrer
domain, country, client) and value.  Neither has a column that could identify a
person: visitors are counted with a sketch, paths are generalised, referrers
reduced to their domain.
"""

import pyarrow as pa

from schemas.fields import TIMESTAMP_TYPE
from schemas.versioning import with_version

_KEY = [
    pa.field("bucket_start", TIMESTAMP_TYPE, nullable=False),
    pa.field("bucket", pa.string(), nullable=False),  # "hour" or "day"
    pa.field("url_domain", pa.string()),
]

TRAFFIC_AGGREGATE = with_version(
    pa.schema(
        [
            *_KEY,
            pa.field("requests", pa.int64()),
            pa.field("bytes", pa.int64()),
            pa.field("distinct_visitors_estimate", pa.int64()),
            pa.field("status_1xx", pa.int64()),
            pa.field("status_2xx", pa.int64()),
            pa.field("status_3xx", pa.int64()),
            pa.field("status_4xx", pa.int64()),
            pa.field("status_5xx", pa.int64()),
            pa.field("peak_requests_per_second", pa.float64()),
            pa.field("p95_requests_per_second", pa.float64()),
            pa.field("peak_bytes_per_second", pa.float64()),
            pa.field("p95_bytes_per_second", pa.float64()),
            pa.field("bot_requests", pa.int64()),
        ]
    ),
    "aggregate",
)

TRAFFIC_BREAKDOWN = with_version(
    pa.schema(
        [
            *_KEY,
            pa.field("dimension", pa.string(), nullable=False),
            pa.field("value", pa.string()),
            pa.field("requests", pa.int64()),
            pa.field("bytes", pa.int64()),
        ]
    ),
    "breakdown",
)
