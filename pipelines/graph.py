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
import logging
from collections.abc import Callable

import apache_beam as beam
import pyarrow as pa

from alerts.rules import load_configured_rules
from pipelines import coders
from pipelines.aggregate import AggregateTraffic, WriteAggregates
from pipelines.archive import WriteArchive
from pipelines.dead_letters import WriteDeadLetters
from pipelines.detect import DeliverAlerts, Detect, WriteAlertParts, has_sinks, run_outbox
from pipelines.enrich import Enrich
from pipelines.options import local_worker_processes
from pipelines.parse import ACCESS, DEAD_LETTERS, ERROR, ParseChunks
from retention.keyring import WriterKeys, default_signing_key_file, writer_keys
from retention.layout import ACCESS_DIR, ERROR_DIR
from retention.signing import Signer, load_or_create_signer
from schemas import ACCESS_EVENT, ERROR_EVENT
from schemas.config import Config, KeysConfig

_LOG = logging.getLogger("logwarden")

#: Builds the archive step of one dataset: ``(dataset, schema, keys) -> PTransform`` of record batches.
ArchiveStep = Callable[[str, pa.Schema, WriterKeys], beam.PTransform]


def ingest_signer(config: KeysConfig) -> Signer:
    """This writer's signing key (made on first use; its manifests count once the custodian trusts it)."""
    path = config.signing_key_file or default_signing_key_file(config.keyring)
    signer, made = load_or_create_signer(path)
    if made:
        _LOG.warning(
            "new signing key %s (%s): readers ignore what it signs until the keyring's custodian runs "
            "'logwarden keys trust --signing-key-file %s'",
            path,
            signer.id,
            path,
        )
    return signer


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
    already_raised: frozenset[str] = frozenset(),
    sources: dict[str, str] | None = None,
) -> GraphOutputs:
    """Attach parse, enrich, archive, detect and aggregate to ``chunks`` (a PCollection of ``LineChunk``).

    ``archive`` defaults to the batch archive step (files per bundle, one commit per day at the end).
    Alerts whose id is in ``already_raised`` (earlier runs', ``retention.ledger.Ledger.alert_ids``) are
    neither written nor delivered again.
    ``sources`` maps input paths to their ingest-ledger keys (``retention.ledger.FileIdentity.key``) so
    reports can tell which run owns which stored lines; without it a path stands for itself.
    """
    coders.register()
    keys = writer_keys(config.keys.keyring)
    signer = ingest_signer(config.keys)
    archive = archive or (
        lambda dataset, schema, k: WriteArchive(output, dataset, run_id, schema, k, config.archive, signer=signer)
    )
    parsed = chunks | "Parse" >> ParseChunks(config.keys.keyring)
    access = parsed[ACCESS]
    if config.enrich.enabled:
        access = access | "Enrich" >> Enrich(config.enrich)
    archived = {
        ACCESS_DIR: access | "ArchiveAccessEvents" >> archive(ACCESS_DIR, ACCESS_EVENT, keys),
        ERROR_DIR: parsed[ERROR] | "ArchiveErrorEvents" >> archive(ERROR_DIR, ERROR_EVENT, keys),
    }
    archived["dead_letters"] = parsed[DEAD_LETTERS] | "WriteDeadLetters" >> WriteDeadLetters(
        output, run_id, keys, config.archive, dead_letter_jsonl, signer
    )
    outputs = GraphOutputs(access, parsed[ERROR], parsed[DEAD_LETTERS], archived)
    if config.alerts.enabled:
        outputs.alerts = {"access": access, "error": parsed[ERROR]} | "Detect" >> Detect(
            load_configured_rules(config.alerts),
            config.alerts.shards,
            bounded=bounded,
            spill=(output, run_id) if bounded else None,
            workers=local_worker_processes(chunks.pipeline.options) or 1,
        )
        if already_raised:
            outputs.alerts = outputs.alerts | "SkipAlertsRaisedBefore" >> beam.Filter(
                lambda alert, ids: alert["alert_id"] not in ids, already_raised
            )
        # Sealed to the outbox key; a bounded run archives them in its transaction and delivers them once
        # it is complete (``pipelines.detect.archive_run_alerts``, ``deliver_run_alerts``); a stream
        # delivers each as it is raised.
        outputs.alerts | "WriteAlertParts" >> WriteAlertParts(run_outbox(output, config), run_id)
        if not bounded and has_sinks(config.alerts.sinks):
            outputs.alerts | "DeliverAlerts" >> DeliverAlerts(config.alerts.sinks)
    if config.reports.enabled:
        geoip = bool(config.enrich.enabled and config.enrich.geoip_databases)
        (
            access
            | "AggregateTraffic"
            >> AggregateTraffic(config.reports.bucket, sources, (output, run_id) if bounded else None)
            | "WriteAggregates" >> WriteAggregates(output, run_id, config.reports.bucket, geoip)
        )
    return outputs
