"""Field definitions shared by several record kinds (time, provenance, client address)."""

import pyarrow as pa

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

TIMESTAMP = pa.field("timestamp", TIMESTAMP_TYPE, nullable=False)
EVENT_DATASET = pa.field("event_dataset", pa.string(), nullable=False)
LOG_FILE_PATH = pa.field("log_file_path", pa.string(), nullable=False)
LOG_OFFSET = pa.field("log_offset", pa.int64(), nullable=False)
LOG_FLAGS = pa.field("log_flags", pa.list_(pa.string()))
LABELS = pa.field("labels", pa.map_(pa.string(), pa.string()))

SOURCE = [
    pa.field("source_address", pa.string()),
    pa.field("source_ip", pa.string()),
    pa.field("source_domain", pa.string()),
    pa.field("source_port", pa.int32()),
]

PROVENANCE = [EVENT_DATASET, LOG_FILE_PATH, LOG_OFFSET, LOG_FLAGS, LABELS]
