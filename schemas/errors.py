"""Error events: one row per entry of an Apache or nginx error log."""

import pyarrow as pa

from schemas.fields import PROVENANCE, SOURCE, TIMESTAMP
from schemas.versioning import with_version

ERROR_EVENT = with_version(
    pa.schema(
        [
            TIMESTAMP,
            pa.field("log_level", pa.string()),
            pa.field("log_logger", pa.string()),
            pa.field("process_pid", pa.int32()),
            pa.field("process_thread_id", pa.int64()),
            *SOURCE,
            pa.field("error_code", pa.string()),
            pa.field("message", pa.string()),
            pa.field("url_domain", pa.string()),
            pa.field("url_original", pa.string()),
            pa.field("http_request_method", pa.string()),
            pa.field("user_name", pa.string()),
            pa.field("event_id", pa.string()),
            *PROVENANCE,
        ]
    ),
    "error",
)
