"""Dead-letter transform: unparsed lines kept whole, with source, offset, line number and reason.

A raw log line is personal data (client address, user, query string), so dead
letters go to the encrypted archive like events, under ``<output>/dead_letters/``
partitioned by the day of the time the line names when one can be read out of it
(``parsers.timestamps.recover_times``), so destroying a month's keys shreds its
dead letters too; lines that name no time go to the day the job ran.  A plaintext
JSON-lines copy, handy while writing a new log format, is written only when asked for.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines import metrics
from pipelines.archive import WriteArchive
from retention.keyring import WriterKeys
from retention.layout import DEAD_LETTER_DIR
from retention.signing import Signer
from schemas import DEAD_LETTER
from schemas.config import ArchiveConfig
from schemas.json_rows import batch_to_json_lines


class WriteDeadLetters(beam.PTransform):
    """Dead-letter batches to the encrypted archive, and to ``<jsonl_dir>/part-<run>.jsonl`` if given."""

    def __init__(
        self,
        output: str,
        run_id: str,
        keys: WriterKeys,
        config: ArchiveConfig,
        jsonl_dir: str | None = None,
        signer: Signer | None = None,
    ):
        super().__init__()
        self._archive = WriteArchive(
            output,
            DEAD_LETTER_DIR,
            run_id,
            DEAD_LETTER,
            keys,
            config,
            day_column="timestamp",
            rows_counter=metrics.DEAD_LETTERS_WRITTEN,
            signer=signer,
            undated_to_run_day=True,
        )
        self._jsonl_prefix = f"{jsonl_dir.rstrip('/')}/part-{run_id}" if jsonl_dir else None

    def expand(self, batches):
        archived = batches | "Archive" >> self._archive
        if self._jsonl_prefix:
            (
                batches
                | "ToJsonLines" >> beam.FlatMap(batch_to_json_lines)
                | "WriteJsonLines"
                >> beam.io.WriteToText(self._jsonl_prefix, file_name_suffix=".jsonl", shard_name_template="")
            )
        return archived
