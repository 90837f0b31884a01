"""Dead letters: input lines that could not be parsed, kept whole with where they came from."""

import pyarrow as pa

from schemas.fields import TIMESTAMP_TYPE
from schemas.versioning import with_version

DEAD_LETTER = with_version(
    pa.schema(
        [
            pa.field("raw", pa.binary(), nullable=False),
            pa.field("log_file_path", pa.string(), nullable=False),
            pa.field("log_offset", pa.int64(), nullable=False),
            pa.field("line_number", pa.int64(), nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("event_dataset", pa.string()),
            # The event time the line itself names, when one can be read out of it: a dead letter is kept
            # (and crypto-shredded) with its month's events; null means the partition of the day of the run.
            pa.field("timestamp", TIMESTAMP_TYPE),
        ]
    ),
    "dead_letter",
)
