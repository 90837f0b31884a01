"""Dead-letter transform: unparsed lines to JSON lines, with source, offset, line number and reason."""

from __future__ import annotations

import apache_beam as beam

from schemas.json_rows import batch_to_json_lines


class WriteDeadLetters(beam.PTransform):
    """Dead-letter batches to ``<output>/dead_letters/part-<run>-NNNNN-of-NNNNN.jsonl``."""

    def __init__(self, output: str, run_id: str):
        super().__init__()
        self._prefix = f"{output.rstrip('/')}/dead_letters/part-{run_id}"

    def expand(self, batches):
        return (
            batches
            | "ToJsonLines" >> beam.FlatMap(batch_to_json_lines)
            | "WriteJsonLines" >> beam.io.WriteToText(self._prefix, file_name_suffix=".jsonl", num_shards=1)
        )
