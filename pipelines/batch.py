r"""The batch pipeline: log files in, events archived as encrypted Parquet, dead letters kept.

Reads like the data flow in PRODUCT.md::

    files --ReadLogs--> chunks --Parse--> access events --Enrich--> enriched events --Archive--> encrypted Parquet
                                     |                                   |--AggregateTraffic--> reports
                                     |                                   \--Detect--> alerts (sealed, then sinks)
                                     |--> error events --Archive--> encrypted Parquet, and --Detect-->
                                     \--> dead letters --WriteDeadLetters--> encrypted Parquet (+ JSON lines if asked)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from alerts.rules import load_configured_rules
from alerts.sinks.owed import DeliveryOutcome
from pipelines.aggregate import AggregateTraffic, WriteReports
from pipelines.archive import WriteArchive, temp_root
from pipelines.dead_letters import WriteDeadLetters
from pipelines.detect import Detect, WriteAlertParts, run_outbox, settle_alerts
from pipelines.enrich import Enrich
from pipelines.inputs import list_files
from pipelines.metrics import RunCounts
from pipelines.parse import ACCESS, DEAD_LETTERS, ERROR, ParseChunks
from pipelines.read import ReadLogChunks
from retention.keyring import writer_keys
from retention.parquet_files import ACCESS_DIR, ERROR_DIR
from schemas import ACCESS_EVENT, ERROR_EVENT
from schemas.config import Config


def new_run_id() -> str:
    """Sortable and unique: ``20261128T201500Z-1a2b3c``."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def build_batch_pipeline(
    pipeline: beam.Pipeline,
    inputs: list[str],
    output: str,
    config: Config,
    run_id: str,
    dead_letter_jsonl: str | None = None,
    follow_symlinks: bool = False,
) -> None:
    """Attach the batch graph to ``pipeline``; the archive is written with the writer role's (public) keys."""
    keys = writer_keys(config.keys.keyring)
    outbox = run_outbox(output, config) if config.alerts.enabled else None
    chunks = pipeline | "ReadLogs" >> ReadLogChunks(
        inputs,
        config.input.format,
        config.input.chunk_bytes,
        config.input.range_bytes,
        config.input.timezone,
        config.input.max_line_bytes,
        follow_symlinks,
    )
    parsed = chunks | "Parse" >> ParseChunks()
    access = parsed[ACCESS]
    if config.enrich.enabled:
        access = access | "Enrich" >> Enrich(config.enrich)
    access | "ArchiveAccessEvents" >> WriteArchive(output, ACCESS_DIR, run_id, ACCESS_EVENT, keys, config.archive)
    parsed[ERROR] | "ArchiveErrorEvents" >> WriteArchive(output, ERROR_DIR, run_id, ERROR_EVENT, keys, config.archive)
    parsed[DEAD_LETTERS] | "WriteDeadLetters" >> WriteDeadLetters(
        output, run_id, keys, config.archive, dead_letter_jsonl
    )
    if config.alerts.enabled:
        alerts = {"access": access, "error": parsed[ERROR]} | "Detect" >> Detect(
            load_configured_rules(config.alerts), config.alerts.shards, bounded=True
        )
        alerts | "WriteAlertParts" >> WriteAlertParts(outbox, run_id)
    if config.reports.enabled:
        (
            access
            | "AggregateTraffic" >> AggregateTraffic(config.reports.bucket)
            | "WriteReports" >> WriteReports(output, run_id)
        )


@dataclasses.dataclass
class BatchRun:
    run_id: str
    output: str
    counts: RunCounts
    seconds: float
    #: This run's alerts and how delivering them (and what earlier runs owed) went.
    alerts: list[dict] = dataclasses.field(default_factory=list)
    delivery: DeliveryOutcome = dataclasses.field(default_factory=DeliveryOutcome)

    @property
    def lines_per_second(self) -> float:
        return self.counts.lines_read / self.seconds if self.seconds else 0.0


def run_batch(
    inputs: list[str],
    output: str,
    config: Config,
    options: PipelineOptions,
    dead_letter_jsonl: str | None = None,
    follow_symlinks: bool = False,
) -> BatchRun:
    """Run the batch pipeline over files, globs or directories to completion and return its counts."""
    run_id = new_run_id()
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    files = list_files(inputs, follow_symlinks)
    build_batch_pipeline(pipeline, files, output, config, run_id, dead_letter_jsonl, follow_symlinks)
    result = pipeline.run()
    result.wait_until_finish()
    alerts, delivery = settle_alerts(output, run_id, config) if config.alerts.enabled else ([], DeliveryOutcome())
    seconds = time.monotonic() - started
    tmp = temp_root(output, run_id)
    if FileSystems.exists(tmp):
        FileSystems.delete([tmp])
    counts = RunCounts.from_result(result)
    counts.alerts_undelivered = delivery.undelivered
    return BatchRun(run_id, output, counts, seconds, alerts, delivery)
