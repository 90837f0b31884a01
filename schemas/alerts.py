"""Security alerts: one row per rule firing on one key, with the evidence behind it."""

import pyarrow as pa

from schemas.fields import TIMESTAMP_TYPE
from schemas.versioning import with_version

EVIDENCE = pa.struct(
    [
        pa.field("log_file_path", pa.string()),
        pa.field("log_offset", pa.int64()),
        pa.field("timestamp", TIMESTAMP_TYPE),
        pa.field("line", pa.string()),
    ]
)

#: Service-health alerts (``alerts.health``): what was measured, over which window, against what.
HEALTH = pa.struct(
    [
        pa.field("status", pa.string()),  # firing, or resolved (the condition false for a whole window)
        pa.field("measure", pa.string()),  # count, ratio, p95, ...
        pa.field("window_start", TIMESTAMP_TYPE),
        pa.field("window_end", TIMESTAMP_TYPE),
        pa.field("value", pa.float64()),
        pa.field("baseline", pa.float64()),
        pa.field("threshold", pa.string()),
        pa.field("events", pa.int64()),
    ]
)

ALERT = with_version(
    pa.schema(
        [
            pa.field("alert_id", pa.string(), nullable=False),
            pa.field("rule_id", pa.string(), nullable=False),
            pa.field("rule_title", pa.string()),
            pa.field("severity", pa.string()),
            pa.field("category", pa.string()),
            pa.field("technique", pa.string()),
            pa.field("description", pa.string()),
            pa.field("source_ip", pa.string()),
            pa.field("user_name", pa.string()),
            pa.field("url_domain", pa.string()),
            pa.field("group_key", pa.string()),
            pa.field("first_seen", TIMESTAMP_TYPE),
            pa.field("last_seen", TIMESTAMP_TYPE),
            pa.field("count", pa.int64()),
            pa.field("distinct_sample", pa.list_(pa.string())),
            pa.field("evidence", pa.list_(EVIDENCE)),
            pa.field("detected_at", TIMESTAMP_TYPE),
            pa.field("health", HEALTH),  # null for security rules
        ]
    ),
    "alert",
)
