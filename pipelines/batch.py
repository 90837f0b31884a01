"""The batch pipeline: log files in, through the one graph (``pipelines.graph``), until the input is complete."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from alerts.sinks.owed import DeliveryOutcome
from pipelines.detect import settle_alerts
from pipelines.graph import GraphOutputs, build_graph
from pipelines.inputs import list_files
from pipelines.metrics import RunCounts
from pipelines.read import ReadLogChunks
from pipelines.reports.publish import publish_run
from pipelines.reports.store import source_fingerprints
from retention import commit
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
) -> GraphOutputs:
    """Attach the batch graph to ``pipeline``: the one graph (``pipelines.graph``) fed by files."""
    chunks = pipeline | "ReadLogs" >> ReadLogChunks(
        inputs,
        config.input.format,
        config.input.chunk_bytes,
        config.input.range_bytes,
        config.input.timezone,
        config.input.max_line_bytes,
        follow_symlinks,
    )
    sources = source_fingerprints(inputs) if config.reports.enabled else None
    return build_graph(
        chunks, output, config, run_id, bounded=True, dead_letter_jsonl=dead_letter_jsonl, sources=sources
    )


@dataclasses.dataclass
class BatchRun:
    run_id: str
    output: str
    counts: RunCounts
    seconds: float
    #: What the start of the run cleaned up after killed runs.
    recovered: commit.RecoveryReport = dataclasses.field(default_factory=commit.RecoveryReport)
    #: This run's alerts and how delivering them (and what earlier runs owed) went.
    alerts: list[dict] = dataclasses.field(default_factory=list)
    delivery: DeliveryOutcome = dataclasses.field(default_factory=DeliveryOutcome)
    report: str | None = None  # the run's report page

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
    """Run the batch pipeline over files, globs or directories to completion and return its counts.

    The run holds a lease on the archive while it writes; it first finishes or rolls back what killed runs
    left (``retention.commit.recover``), and at the end clears its own staging folder.
    """
    run_id = new_run_id()
    started = time.monotonic()
    with commit.RunLease(output, run_id):
        recovered = commit.recover(output, own_run=run_id)
        pipeline = beam.Pipeline(options=options)
        files = list_files(inputs, follow_symlinks)
        build_batch_pipeline(pipeline, files, output, config, run_id, dead_letter_jsonl, follow_symlinks)
        result = pipeline.run()
        result.wait_until_finish()
        alerts, delivery = settle_alerts(output, run_id, config) if config.alerts.enabled else ([], DeliveryOutcome())
        page = publish_run(output, run_id, config.reports) if config.reports.enabled else None
        seconds = time.monotonic() - started
        commit.clear_staging(output, run_id)
    counts = RunCounts.from_result(result)
    counts.alerts_undelivered = delivery.undelivered
    return BatchRun(run_id, output, counts, seconds, recovered, alerts=alerts, delivery=delivery, report=page)
