"""Archive transform: record batches to encrypted Parquet partitioned by event day, published atomically.

Workers write complete files under ``<output>/.tmp/<run>/``; after a group-by
on the day, one step renames them into ``<dataset>/dt=<day>/`` and writes the
partition's manifest.  A killed job therefore leaves at most hidden temporary
files, never a half-written Parquet file inside a partition.

Every file is encrypted with the keys of its partition's month, through the
writer role (public halves only): the pipeline cannot read back what it wrote.
pyarrow's ``CryptoFactory`` cannot be pickled, so each worker builds its own in
``setup()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines import coders, metrics  # noqa: F401 - coders registers the RecordBatch coder
from retention.encryption import ArchiveEncryptor
from retention.keyring import WriterKeys
from retention.parquet_files import (
    ParquetFileWriter,
    WrittenFile,
    final_file_name,
    manifest_document,
    manifest_name,
    partition_name,
    split_by_day,
)
from schemas.config import ArchiveConfig


def temp_root(output: str, run_id: str) -> str:
    return FileSystems.join(output, ".tmp", run_id)


def _mkdirs(path: str) -> None:
    with contextlib.suppress(OSError):  # already there
        FileSystems.mkdirs(path)


def _create(path: str):
    _mkdirs(path.rsplit("/", 1)[0])
    return FileSystems.create(path)


class WriteTempFilesFn(beam.DoFn):
    """Keep one open encrypted Parquet writer per day per bundle; emit each file when it is complete."""

    def __init__(self, output: str, run_id: str, schema: pa.Schema, keys: WriterKeys, config: ArchiveConfig):
        self._tmp = temp_root(output, run_id)
        self._schema = schema
        self._keys = keys
        self._config = config

    def setup(self):
        self._encryptor = ArchiveEncryptor(self._keys)

    def start_bundle(self):
        self._writers: dict[str, ParquetFileWriter] = {}

    def _open(self, day: str) -> ParquetFileWriter:
        path = FileSystems.join(self._tmp, f"{day}-{uuid.uuid4().hex}.parquet")
        return ParquetFileWriter(
            path,
            self._schema,
            _create,
            encryption=self._encryptor.for_day(self._schema, day),
            compression=self._config.compression,
            row_group_rows=self._config.row_group_rows,
        )

    def process(self, day_and_batch):
        day, batch = day_and_batch
        writer = self._writers.get(day)
        if writer is None:
            writer = self._writers[day] = self._open(day)
        writer.write(batch)
        if writer.rows >= self._config.max_file_rows:
            yield day, writer.close()
            del self._writers[day]

    def finish_bundle(self):
        for day, writer in self._writers.items():
            yield WindowedValue((day, writer.close()), GlobalWindow().max_timestamp(), [GlobalWindow()])
        self._writers = {}


class PublishFilesFn(beam.DoFn):
    """Move one day's finished files into their partition and write the partition manifest."""

    def __init__(self, output: str, dataset_dir: str, run_id: str, rows_counter: str):
        self._output = output
        self._dataset_dir = dataset_dir
        self._run_id = run_id
        self._files = metrics.counter(metrics.FILES_WRITTEN)
        self._rows = metrics.counter(rows_counter)

    def process(self, day_and_files):
        day, files = day_and_files
        files: list[WrittenFile] = sorted(files, key=lambda f: f.path)
        partition = FileSystems.join(self._output, self._dataset_dir, partition_name(day))
        _mkdirs(partition)
        entries = []
        for index, written in enumerate(files):
            name = final_file_name(self._run_id, index)
            target = FileSystems.join(partition, name)
            if not FileSystems.exists(target):  # a retried bundle may already have moved it
                FileSystems.rename([written.path], [target])
            entries.append(written.manifest_entry(name))
            self._files.inc()
            self._rows.inc(written.rows)
            yield dataclasses.replace(written, path=target)
        manifest = FileSystems.join(partition, manifest_name(self._run_id))
        staging = FileSystems.join(self._output, ".tmp", self._run_id, f"manifest-{day}.json")
        with _create(staging) as fh:
            fh.write(manifest_document(day, self._run_id, entries))
        FileSystems.rename([staging], [manifest])


def ingest_day() -> str:
    """Today (UTC): the partition of records that carry no event time, such as dead letters."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


@dataclasses.dataclass
class WriteArchive(beam.PTransform):
    """Record batches of one schema to encrypted ``<output>/<dataset_dir>/dt=YYYY-MM-DD/*.parquet``.

    Partitioned by the UTC day of ``day_column``; with ``day_column=None`` (dead
    letters, which have no event time) by the day the job runs.
    """

    output: str
    dataset_dir: str
    run_id: str
    schema: pa.Schema
    keys: WriterKeys
    config: ArchiveConfig = dataclasses.field(default_factory=ArchiveConfig)
    day_column: str | None = "timestamp"
    rows_counter: str = metrics.ROWS_WRITTEN

    def __post_init__(self):
        super().__init__()

    def expand(self, batches):
        if self.day_column is None:
            day = ingest_day()
            by_day = batches | "KeyByIngestDay" >> beam.Map(lambda batch: (day, batch)).with_output_types(
                tuple[str, pa.RecordBatch]
            )
        else:
            column = self.day_column
            by_day = batches | "SplitByDay" >> beam.FlatMap(
                lambda batch: split_by_day(batch, column)
            ).with_output_types(tuple[str, pa.RecordBatch])
        return (
            by_day
            | "WriteTempFiles"
            >> beam.ParDo(WriteTempFilesFn(self.output, self.run_id, self.schema, self.keys, self.config))
            | "GroupByDay" >> beam.GroupByKey()
            | "PublishFiles"
            >> beam.ParDo(PublishFilesFn(self.output, self.dataset_dir, self.run_id, self.rows_counter))
        )
