"""Archive transform: record batches to encrypted Parquet partitioned by event day, published by commits.

Workers write complete files into the run's staging folder; after a group-by on
the day, one step per day commits them (``retention.commit``): renamed into
``<dataset>/dt=<day>/`` and listed in the partition's manifest, which is what
readers go by.  A killed job therefore leaves files that no reader sees and
that the next run or ``archive verify --repair`` removes.

Every file is encrypted with the keys of its partition's month, through the
writer role (public halves only): the pipeline cannot read back what it wrote.
pyarrow's ``CryptoFactory`` cannot be pickled, so each worker builds its own in
``setup()``.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipelines import coders, metrics
from retention import commit, layout
from retention.encryption import ArchiveEncryptor
from retention.keyring import WriterKeys
from retention.parquet_files import ParquetFileWriter, WrittenFile, split_by_day
from retention.signing import Signer
from schemas.config import ArchiveConfig


class WriteTempFilesFn(beam.DoFn):
    """Keep one open encrypted Parquet writer per day per bundle; emit each file when it is complete."""

    def __init__(self, output: str, run_id: str, schema: pa.Schema, keys: WriterKeys, config: ArchiveConfig):
        self._output, self._run_id = output, run_id
        self._schema = schema
        self._keys = keys
        self._config = config

    def setup(self):
        self._encryptor = ArchiveEncryptor(self._keys)

    def start_bundle(self):
        self._writers: dict[str, ParquetFileWriter] = {}

    def _open(self, day: str) -> ParquetFileWriter:
        return ParquetFileWriter(
            commit.staging_path(self._output, self._run_id),
            self._schema,
            commit.create,
            encryption=self._encryptor.for_day(self._schema, day),
            compression=self._config.compression,
            row_group_rows=self._config.row_group_rows,
            row_group_bytes=self._config.row_group_bytes,
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


class CommitDayFn(beam.DoFn):
    """Commit one day's finished files to their partition: one commit per dataset, day and run."""

    def __init__(self, output: str, dataset: str, run_id: str, rows_counter: str, signer: Signer | None = None):
        self._output = output
        self._dataset = dataset
        self._run_id = run_id
        self._signer = signer
        self._files = metrics.counter(metrics.FILES_WRITTEN)
        self._rows = metrics.counter(rows_counter)

    def process(self, day_and_files):
        day, files = day_and_files
        files: list[WrittenFile] = sorted(files, key=lambda f: f.path)
        manifest = commit.commit(self._output, self._dataset, day, self._run_id, files, signer=self._signer)
        directory = layout.partition_dir(self._output, self._dataset, day)
        for written, name in zip(files, manifest.names, strict=True):
            self._files.inc()
            self._rows.inc(written.rows)
            yield dataclasses.replace(written, path=FileSystems.join(directory, name))


@dataclasses.dataclass
class WriteArchive(beam.PTransform):
    """Record batches of one schema to encrypted ``<output>/<dataset>/dt=YYYY-MM-DD/*.parquet``.

    Partitioned by the UTC day of ``day_column``; with ``day_column=None`` by the day the
    job runs, and so are rows whose ``day_column`` is null when ``undated_to_run_day``.
    """

    output: str
    dataset: str
    run_id: str
    schema: pa.Schema
    keys: WriterKeys
    config: ArchiveConfig = dataclasses.field(default_factory=ArchiveConfig)
    day_column: str | None = "timestamp"
    rows_counter: str = metrics.ROWS_WRITTEN
    #: Signs each day's manifest (``retention.signing``); readers skip files no trusted writer signed.
    signer: Signer | None = None
    #: Where rows whose ``day_column`` is null go (dead letters whose line names no time): the run's day.
    undated_to_run_day: bool = False

    def __post_init__(self):
        super().__init__()

    def expand(self, batches):
        coders.register()
        if self.day_column is None:
            day = layout.today()
            by_day = batches | "KeyByIngestDay" >> beam.Map(lambda batch: (day, batch)).with_output_types(
                tuple[str, pa.RecordBatch]
            )
        else:
            column, undated = self.day_column, layout.today() if self.undated_to_run_day else None
            by_day = batches | "SplitByDay" >> beam.FlatMap(
                lambda batch: split_by_day(batch, column, undated)
            ).with_output_types(tuple[str, pa.RecordBatch])
        return (
            by_day
            | "WriteTempFiles"
            >> beam.ParDo(WriteTempFilesFn(self.output, self.run_id, self.schema, self.keys, self.config))
            | "GroupByDay" >> beam.GroupByKey()
            | "CommitDays"
            >> beam.ParDo(CommitDayFn(self.output, self.dataset, self.run_id, self.rows_counter, self.signer))
        )
