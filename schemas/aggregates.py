"""Traffic aggregates for capacity planners: per time bucket and virtual host, no personal data."""

import pyarrow as pa

from schemas.fields import TIMESTAMP_TYPE
from schemas.versioning import with_version

TRAFFIC_AGGREGATE = with_version(
    pa.schema(
        [
            pa.field("bucket_start", TIMESTAMP_TYPE, nullable=False),
            pa.field("bucket", pa.string(), nullable=False),
            pa.field("url_domain", pa.string()),
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
