"""Schema version stamped into every file we write, so readers can tell layouts apart."""

import pyarrow as pa

SCHEMA_VERSION = "1"
VERSION_KEY = b"logwarden.schema_version"
KIND_KEY = b"logwarden.kind"


def with_version(schema: pa.Schema, kind: str) -> pa.Schema:
    """Return ``schema`` with the logwarden schema version and record kind in its metadata."""
    metadata = dict(schema.metadata or {})
    metadata[VERSION_KEY] = SCHEMA_VERSION.encode()
    metadata[KIND_KEY] = kind.encode()
    return schema.with_metadata(metadata)


def schema_version_of(schema: pa.Schema) -> str | None:
    """The logwarden schema version recorded in a file's schema, or None for foreign files."""
    value = (schema.metadata or {}).get(VERSION_KEY)
    return value.decode() if value is not None else None
