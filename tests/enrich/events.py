"""Access-event batches built by hand for enrichment tests."""

from __future__ import annotations

import pyarrow as pa

from schemas.access import ACCESS_EVENT


def access_batch(**columns) -> pa.RecordBatch:
    """An access-event batch with the given columns (lists) and every other column null."""
    length = len(next(iter(columns.values())))
    arrays = []
    for field in ACCESS_EVENT:
        if field.name in columns:
            arrays.append(pa.array(columns[field.name], field.type))
        elif field.name == "timestamp":
            arrays.append(pa.array([0] * length, pa.int64()).cast(field.type))
        elif field.name == "event_dataset":
            arrays.append(pa.array(["apache.access"] * length, field.type))
        elif field.name == "log_file_path":
            arrays.append(pa.array(["test.log"] * length, field.type))
        elif field.name == "log_offset":
            arrays.append(pa.array(range(length), field.type))
        else:
            arrays.append(pa.nulls(length, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=ACCESS_EVENT)
