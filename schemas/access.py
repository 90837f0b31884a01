"""Access events: one row per HTTP request line of an access log."""

import pyarrow as pa

from schemas.fields import PROVENANCE, SOURCE, TIMESTAMP
from schemas.versioning import with_version

#: Columns filled by the parsers from the log line itself.
PARSED_FIELDS = [
    TIMESTAMP,
    *SOURCE,
    pa.field("source_proxy_ip", pa.string()),
    pa.field("http_request_x_forwarded_for", pa.string()),
    pa.field("destination_ip", pa.string()),
    pa.field("destination_port", pa.int32()),
    pa.field("user_name", pa.string()),
    pa.field("user_identity", pa.string()),
    pa.field("http_request_method", pa.string()),
    pa.field("url_original", pa.string()),
    pa.field("url_path", pa.string()),
    pa.field("url_query", pa.string()),
    pa.field("url_scheme", pa.string()),
    pa.field("url_domain", pa.string()),
    pa.field("http_version", pa.string()),
    pa.field("http_request_line", pa.string()),
    pa.field("http_request_bytes", pa.int64()),
    pa.field("http_response_status_code", pa.int16()),
    pa.field("http_response_body_bytes", pa.int64()),
    pa.field("http_response_bytes", pa.int64()),
    pa.field("http_request_referrer", pa.string()),
    pa.field("user_agent_original", pa.string()),
    pa.field("event_duration_us", pa.int64()),
    pa.field("http_upstream_response_time_us", pa.int64()),
    pa.field("tls_version", pa.string()),
    pa.field("tls_cipher", pa.string()),
    pa.field("process_pid", pa.int32()),
    # Apache %L / nginx $request_id: the id that ties a request to its error-log entries.
    pa.field("event_id", pa.string()),
]

#: Columns added by enrichment (user agent and geolocation); null until enriched.
ENRICHED_FIELDS = [
    pa.field("user_agent_name", pa.string()),
    pa.field("user_agent_version", pa.string()),
    pa.field("user_agent_os_name", pa.string()),
    pa.field("user_agent_os_version", pa.string()),
    pa.field("user_agent_device_name", pa.string()),
    pa.field("user_agent_device_type", pa.string()),
    pa.field("user_agent_is_bot", pa.bool_()),
    pa.field("source_geo_country_iso_code", pa.string()),
    pa.field("source_geo_country_name", pa.string()),
    pa.field("source_geo_city_name", pa.string()),
    pa.field(
        "source_geo_location",
        pa.struct([pa.field("lat", pa.float64()), pa.field("lon", pa.float64())]),
    ),
    pa.field("source_as_number", pa.int64()),
    pa.field("source_as_organization_name", pa.string()),
]

ACCESS_EVENT = with_version(pa.schema(PARSED_FIELDS + ENRICHED_FIELDS + PROVENANCE), "access")
