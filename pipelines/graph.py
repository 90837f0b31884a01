r"""The one logwarden graph: chunks of log lines in, archive, alerts and reports out, whatever the source.

::

    chunks --Parse--> access events --Enrich--> enriched events --Archive--> encrypted Parquet (commits)
                 |                                   |--AggregateTraffic--> aggregate store (reports)
                 |                                   \--Detect--> alerts (sealed; archived, sinks)
                 |--> error events --Archive--> encrypted Parquet, and --Detect-->
                 \--> dead letters --WriteDeadLetters--> encrypted Parquet (+ JSON lines if asked)

``logwarden batch`` feeds it chunks read from files (``pipelines.batch``); the
stream feeds it chunks of lines as they are appended.  The two differ only in
that source and in ``bounded`` (fold detection once at the end of the input, or
as event time advances) and in how the archive is cut (``archive``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import apache_beam as beam
import pyarrow as pa

from alerts.rules import load_configured_rules
from pipelines.aggregate import AggregateTraffic, WriteAggregates
from pipelines.archive import WriteArchive
from pipelines.dead_letters import WriteDeadLetters
from pipelines.detect import DeliverAlerts, Detect, WriteAlertParts, has_sinks, run_outbox
from pipelines.enrich import Enrich
from pipelines.parse import ACCESS, DEAD_LETTERS, ERROR, ParseChunks
from retention.keyring import WriterKeys, writer_keys
from retention.layout import ACCESS_DIR, ERROR_DIR
from schemas import ACCESS_EVENT, ERROR_EVENT
from schemas.config import Config

#: Builds the archive step of one dataset: ``(dataset, schema, keys) -> PTransform`` of record batches.
ArchiveStep = Callable[[str, pa.Schema, WriterKeys], beam.PTransform]


@dataclasses.dataclass
class GraphOutputs:
    """The graph's PCollections, for callers that attach more steps (or tests that look at them)."""

    access: beam.PCollection  # enriched access-event batches
    errors: beam.PCollection  # error-event batches
    dead_letters: beam.PCollection  # dead-letter batches
    archived: dict[str, beam.PCollection]  # committed files (``WrittenFile``) per dataset
    alerts: beam.PCollection | None = None  # alert records, when alerts are enabled


def build_graph(
    chunks: beam.PCollection,
    output: str,
    config: Config,
    run_id: str,
    *,
    bounded: bool = True,
    archive: ArchiveStep | None = None,
    dead_letter_jsonl: str | None = None,
    sources: dict[str, str] | None = None,
) -> GraphOutputs:
    """Attach parse, enrich, archive, detect and aggregate to ``chunks`` (a PCollection of ``LineChunk``).

    ``archive`` defaults to the batch archive step (files per bundle, one commit per day at the end).
    ``sources`` maps input paths to content fingerprints (``pipelines.reports.store.source_fingerprints``) so
    stored aggregates of a log read twice are counted once; without it a path stands for itself.
    """
    keys = writer_keys(config.keys.keyring)
    archive = archive or (lambda dataset, schema, k: WriteArchive(output, dataset, run_id, schema, k, config.archive))
    parsed = chunks | "Parse" >> ParseChunks(config.keys.keyring)
    access = parsed[ACCESS]
    if config.enrich.enabled:
        access = access | "Enrich" >> Enrich(config.enrich)
    archived = {
        ACCESS_DIR: access | "ArchiveAccessEvents" >> archive(ACCESS_DIR, ACCESS_EVENT, keys),
        ERROR_DIR: parsed[ERROR] | "ArchiveErrorEvents" >> archive(ERROR_DIR, ERROR_EVENT, keys),
    }
    archived["dead_letters"] = parsed[DEAD_LETTERS] | "WriteDeadLetters" >> WriteDeadLetters(
        output, run_id, keys, config.archive, dead_letter_jsonl
    )
    outputs = GraphOutputs(access, parsed[ERROR], parsed[DEAD_LETTERS], archived)
    if config.alerts.enabled:
        outputs.alerts = {"access": access, "error": parsed[ERROR]} | "Detect" >> Detect(
            load_configured_rules(config.alerts), config.alerts.shards, bounded=bounded
        )
        # Sealed to the outbox key; a bounded run archives and delivers them once the job is done
        # (``pipelines.detect.settle_alerts``), a stream delivers each as it is raised.
        outputs.alerts | "WriteAlertParts" >> WriteAlertParts(run_outbox(output, config), run_id)
        if not bounded and has_sinks(config.alerts.sinks):
            outputs.alerts | "DeliverAlerts" >> DeliverAlerts(config.alerts.sinks)
    if config.reports.enabled:
        geoip = bool(config.enrich.enabled and config.enrich.geoip_databases)
        (
            access
            | "AggregateTraffic" >> AggregateTraffic(config.reports.bucket, sources)
            | "WriteAggregates" >> WriteAggregates(output, run_id, config.reports.bucket, geoip)
        )
    return outputs
