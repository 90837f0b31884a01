"""The schemas every output derives from: ECS names, types, and the version stamp."""

import pyarrow as pa
import pytest

import schemas
from schemas import ACCESS_EVENT, ALERT, DEAD_LETTER, ERROR_EVENT, TRAFFIC_AGGREGATE, schema_version_of

ALL = [ACCESS_EVENT, ERROR_EVENT, DEAD_LETTER, ALERT, TRAFFIC_AGGREGATE]

ACCESS_REQUIRED = [
    "timestamp",
    "source_ip",
    "source_port",
    "user_name",
    "user_identity",
    "http_request_method",
    "url_original",
    "url_path",
    "url_query",
    "http_version",
    "http_response_status_code",
    "http_response_body_bytes",
    "http_request_referrer",
    "user_agent_original",
    "url_domain",
    "event_duration_us",
    "event_dataset",
    "log_file_path",
    "log_offset",
]
ERROR_REQUIRED = [
    "timestamp",
    "log_level",
    "log_logger",
    "process_pid",
    "process_thread_id",
    "source_ip",
    "source_port",
    "error_code",
    "message",
    "event_dataset",
    "log_file_path",
    "log_offset",
]


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.metadata[b"logwarden.kind"].decode())
def test_every_schema_carries_its_version_and_ecs_style_names(schema):
    assert schema_version_of(schema) == schemas.SCHEMA_VERSION
    for name in schema.names:
        assert "." not in name and "@" not in name and name == name.lower(), name


def test_access_and_error_events_have_the_fields_ops_and_security_rely_on():
    assert set(ACCESS_REQUIRED) <= set(ACCESS_EVENT.names)
    assert set(ERROR_REQUIRED) <= set(ERROR_EVENT.names)
    assert set(DEAD_LETTER.names) >= {"raw", "log_file_path", "log_offset", "line_number", "reason"}


def test_timestamps_are_utc_microseconds_and_offsets_are_64_bit():
    for schema in (ACCESS_EVENT, ERROR_EVENT):
        assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert schema.field("log_offset").type == pa.int64()
    assert DEAD_LETTER.field("raw").type == pa.binary()


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown record kind 'bogus'"):
        schemas.schema_for_kind("bogus")
