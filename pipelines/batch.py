"""The batch pipeline: log files in, through the one graph (``pipelines.graph``), until the input is complete."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import time
import uuid
from collections.abc import Callable

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from alerts.rules import load_configured_rules
from alerts.sinks.owed import DeliveryOutcome
from pipelines.detect import archive_run_alerts, deliver_run_alerts, run_outbox
from pipelines.graph import GraphOutputs, build_graph, ingest_signer
from pipelines.inputs import list_files
from pipelines.metrics import RunCounts
from pipelines.options import local_worker_processes
from pipelines.read import ReadLogChunks, open_raw
from pipelines.reports.health import run_event_end, write_run_health
from retention import commit
from retention.ledger import FileOutcome, FilePlan, Ledger, produced_alert_ids
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
    plans: list[FilePlan] | None = None,
    already_raised: frozenset[str] = frozenset(),
) -> GraphOutputs:
    """Attach the batch graph to ``pipeline``: the one graph (``pipelines.graph``) fed by files.

    ``plans`` (the ingest ledger's) say what to read of each input; without them every input is read whole.
    """
    chunks = pipeline | "ReadLogs" >> ReadLogChunks(
        inputs,
        config.input.format,
        config.input.chunk_bytes,
        config.input.range_bytes,
        config.input.timezone,
        config.input.max_line_bytes,
        follow_symlinks,
        plans=plans,
        workers=local_worker_processes(pipeline.options) or 1,
    )
    # Aggregates name each file by its ledger key, so reports can tell which run owns which of its lines.
    sources = {p.path: p.identity.key for p in plans or () if not p.nothing_to_read} if config.reports.enabled else None
    return build_graph(
        chunks,
        output,
        config,
        run_id,
        bounded=True,
        dead_letter_jsonl=dead_letter_jsonl,
        already_raised=already_raised,
        sources=sources,
    )


@dataclasses.dataclass
class BatchRun:
    run_id: str
    output: str
    counts: RunCounts
    seconds: float
    #: What the start of the run cleaned up after killed runs.
    recovered: commit.RecoveryReport = dataclasses.field(default_factory=commit.RecoveryReport)
    #: What was read of each input, against what earlier runs had archived.
    inputs: list[FileOutcome] = dataclasses.field(default_factory=list)
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
    reprocess: bool = False,
    while_the_job_runs: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> BatchRun:
    """Run the batch pipeline over what of the inputs no earlier run archived, to completion; return its counts.

    The run is one transaction (``retention.commit``): it holds a lease on the archive, first withdraws or
    finishes what killed runs left, then commits day by day out of readers' sight, and completes with the
    ledger record of the byte ranges it archived and the alert ids it raised; only then is it visible.
    ``reprocess`` reads every input whole again, into a new run.  ``while_the_job_runs()`` is held open around
    building and running the job (the command's local worker pool and progress display), and only when there
    is something to read: a rerun with nothing new forks no workers.
    """
    run_id = new_run_id()
    started = time.monotonic()
    with commit.RunLease(output, run_id):
        recovered = commit.recover(output, own_run=run_id)
        opener = functools.partial(open_raw, follow_symlinks=follow_symlinks)
        plans = Ledger.load(output).plan(list_files(inputs, follow_symlinks), opener, reprocess)
        already = frozenset(produced_alert_ids(output))
        commit.begin_transaction(output, run_id, {"kind": "batch", "planned": [p.path for p in plans]})
        counts, page, alerts = RunCounts(), None, []
        if any(not p.nothing_to_read for p in plans):
            with while_the_job_runs():
                pipeline = beam.Pipeline(options=options)
                build_batch_pipeline(
                    pipeline, [], output, config, run_id, dead_letter_jsonl, follow_symlinks, plans, already
                )
                result = pipeline.run()
                result.wait_until_finish()
            counts = RunCounts.from_result(result)
        outbox = run_outbox(output, config) if config.alerts.enabled else None
        if outbox is not None:
            alerts = archive_run_alerts(output, run_id, config, ingest_signer(config.keys), outbox)
        if config.reports.enabled and any(a.get("health") for a in alerts):
            # Service-health episodes for the capacity report (no keys, no personal data): part of the transaction.
            rules = load_configured_rules(config.alerts)
            write_run_health(output, run_id, alerts, rules, run_event_end(output, run_id))
        outcomes = [FileOutcome(p, counts.input_bytes.get(p.path, 0), counts.input_lines.get(p.path, 0)) for p in plans]
        alert_ids = [a["alert_id"] for a in alerts]
        record = {"kind": "batch", "lines_read": counts.lines_read, "alert_ids": alert_ids, **Ledger.record(outcomes)}
        commit.complete_transaction(output, run_id, record)
        # Delivered only once the run is complete: a run killed before that raises them again on its rerun.
        delivery = deliver_run_alerts(output, run_id, config, alerts, outbox) if outbox else DeliveryOutcome()
        # After the commit point: reports count only completed runs' aggregates (``pipelines.reports.ownership``).
        if config.reports.enabled and counts.lines_read:
            # Imported here: the report's libraries (jinja2, pyarrow.dataset) load once the job has handed back
            # its memory, not on top of its peak.
            from pipelines.reports.publish import publish_run

            page = publish_run(output, run_id, config.reports)
        seconds = time.monotonic() - started
        commit.clear_staging(output, run_id)
    counts.alerts_undelivered = delivery.undelivered
    return BatchRun(run_id, output, counts, seconds, recovered, outcomes, alerts, delivery, page)
