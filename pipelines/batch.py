"""The batch pipeline: log files in, events archived as Parquet, dead letters kept.

Reads like the data flow in PRODUCT.md::

    files --ReadLogs--> chunks --Parse--> access / error events --Archive--> Parquet
                                     |           \\--AggregateTraffic--> reports (Parquet, CSV, HTML)
                                     |           \\--Detect--> alerts (JSON lines, sinks)
                                     \\--> dead letters --WriteDeadLetters--> JSON lines

Later stages (enrich, detect) hang off the same event collections.
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
from pipelines.aggregate import AggregateTraffic, WriteReports
from pipelines.archive import WriteArchive, temp_root
from pipelines.dead_letters import WriteDeadLetters
from pipelines.detect import DeliverAlerts, Detect, WriteAlertsFile, has_sinks, publish_alerts_file
from pipelines.inputs import list_files
from pipelines.metrics import RunCounts
from pipelines.parse import ACCESS, DEAD_LETTERS, ERROR, ParseChunks
from pipelines.read import ReadLogChunks
from schemas import ACCESS_EVENT, ERROR_EVENT
from schemas.config import Config

ACCESS_DIR = "events"
ERROR_DIR = "errors"


def new_run_id() -> str:
    """Sortable and unique: ``20261128T201500Z-1a2b3c``."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def build_batch_pipeline(pipeline: beam.Pipeline, inputs: list[str], output: str, config: Config, run_id: str) -> None:
    """Attach the batch graph to ``pipeline``."""
    chunks = pipeline | "ReadLogs" >> ReadLogChunks(
        inputs, config.input.format, config.input.chunk_bytes, config.input.range_bytes
    )
    parsed = chunks | "Parse" >> ParseChunks()
    parsed[ACCESS] | "ArchiveAccessEvents" >> WriteArchive(output, ACCESS_DIR, run_id, ACCESS_EVENT, config.archive)
    parsed[ERROR] | "ArchiveErrorEvents" >> WriteArchive(output, ERROR_DIR, run_id, ERROR_EVENT, config.archive)
    parsed[DEAD_LETTERS] | "WriteDeadLetters" >> WriteDeadLetters(output, run_id)
    if config.alerts.enabled:
        alerts = {"access": parsed[ACCESS], "error": parsed[ERROR]} | "Detect" >> Detect(
            load_configured_rules(config.alerts), config.alerts.shards, bounded=True
        )
        alerts | "WriteAlerts" >> WriteAlertsFile(output, run_id)
        if has_sinks(config.alerts.sinks):
            alerts | "DeliverAlerts" >> DeliverAlerts(config.alerts.sinks)
    if config.reports.enabled:
        (
            parsed[ACCESS]
            | "AggregateTraffic" >> AggregateTraffic(config.reports.bucket)
            | "WriteReports" >> WriteReports(output, run_id)
        )


@dataclasses.dataclass
class BatchRun:
    run_id: str
    output: str
    counts: RunCounts
    seconds: float

    @property
    def lines_per_second(self) -> float:
        return self.counts.lines_read / self.seconds if self.seconds else 0.0


def run_batch(inputs: list[str], output: str, config: Config, options: PipelineOptions) -> BatchRun:
    """Run the batch pipeline over files, globs or directories to completion and return its counts."""
    run_id = new_run_id()
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build_batch_pipeline(pipeline, list_files(inputs), output, config, run_id)
    result = pipeline.run()
    result.wait_until_finish()
    if config.alerts.enabled:
        publish_alerts_file(output, run_id)
    seconds = time.monotonic() - started
    tmp = temp_root(output, run_id)
    if FileSystems.exists(tmp):
        FileSystems.delete([tmp])
    return BatchRun(run_id, output, RunCounts.from_result(result), seconds)
