r"""The streaming pipeline: followed log files in, the batch job's outputs out, continuously.

    FollowLogs -> Parse -> TruncatedLines -> Enrich -> ObserveAccess -> ObserveError -> LiveCommit
      ("chunk", "truncated" and "tick" envelopes; each step handles its tag and passes the others on)

Parse, Enrich and Observe run the batch job's own DoFns (``OnTag`` wraps them).
The graph is one chain because FnApiRunner materialises every multi-input
Flatten and a GroupByKey after an unbounded source holds everything until the
input ends: either would hold the stream's output back until shutdown.  ``LiveCommit``
instead keeps the archive files, detection state and report windows of the
running cut and publishes them with the follower positions as one commit
(``pipelines.live``, ``retention.stream_state``), which is also what makes a
restart after ``kill -9`` lose and duplicate nothing.  It also hands each alert
to the sinks as it is raised (``alerts.sinks.live``: own threads, confirmations
recorded, what is unconfirmed at a cut sealed in the outbox and retried).

Only FnApiRunner runs an unbounded splittable DoFn offline (see NOTES.md); the
source polls with a short sleep when idle because FnApiRunner ignores
``defer_remainder``'s delay, and FnApiRunner's state cache is switched off (it
sizes every state write, and this graph keeps its state in ``LiveStage``).
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import signal
import sys
import threading
import time

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.core import RestrictionProvider

from alerts.outbox import Outbox, load_outbox_key
from alerts.rules import load_configured_rules
from alerts.sinks import build_sinks
from alerts.sinks.live import STREAM_OUTBOX, LiveDelivery
from parsers.follow import Archived, Follower
from parsers.lines import LineChunk
from parsers.result import all_dead
from pipelines import metrics
from pipelines.batch import new_run_id
from pipelines.detect import ObserveFn, has_sinks, outbox_key_file
from pipelines.enrich import EnrichBatchFn
from pipelines.graph import ingest_signer
from pipelines.inputs import InputError
from pipelines.live import LiveSettings, LiveStage, Tick
from pipelines.parse import ACCESS, ParseChunkFn
from pipelines.read import open_raw
from retention import commit
from retention.keyring import writer_keys
from retention.layout import ACCESS_DIR, DEAD_LETTER_DIR, ERROR_DIR
from retention.ledger import Ledger
from retention.stream_state import StateStore, load_state_key, stream_state_dir
from schemas.config import Config

_LOG = logging.getLogger("logwarden")

#: Set by SIGINT / SIGTERM: the source makes a last poll, sends a final tick and ends its restriction.
STOP = threading.Event()
#: Envelope tags besides the dataset folders (``events``, ``errors``, ``dead_letters``) that carry batches.
CHUNK = "chunk"
TRUNCATED = "truncated"
TICK = "tick"
HITS = "hits"
_END = 2**62


class _Polls(RestrictionProvider):
    """The source's restriction is the sequence of polls; it is never split (one follower owns the files)."""

    def initial_restriction(self, element):
        return OffsetRange(0, _END)

    def create_tracker(self, restriction):
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element, restriction):
        return 1

    def split(self, element, restriction):
        yield restriction


class FollowLogsFn(beam.DoFn):
    """Poll the followed files; whole-line chunks out, and after each poll a ``Tick`` with the positions."""

    def __init__(self, patterns: list[str], config: Config, output: str, follow_symlinks: bool = False):
        self._patterns = list(patterns)
        self._config = config
        self._follow_symlinks = follow_symlinks
        self._output = output
        self._follower: Follower | None = None

    def setup(self):
        store = StateStore(
            stream_state_dir(self._output),
            load_state_key(self._config.stream.state_key_file),
            ingest_signer(self._config.keys),
        )
        self._full_poll_bytes = min(self._config.input.chunk_bytes, 1024 * 1024)
        saved = store.read_checkpoint(self._output)  # LiveCommitFn finishes an interrupted cut: the same checkpoint
        s, i = self._config.stream, self._config.input
        self._follower = Follower(
            self._patterns,
            format_spec=i.format,
            timezone=i.timezone,
            chunk_bytes=self._full_poll_bytes,
            partial_line_seconds=s.partial_line_seconds,
            rotate_grace_seconds=s.rotate_grace_seconds,
            start_at_end=s.start_at == "end",
            positions=saved.positions if saved is not None else None,
            # One chunk per file per poll: the tick after it lets the alerts of a backlog's first lines out
            # before the rest of the backlog is parsed.
            read_bytes=self._full_poll_bytes,
            archived=archived_by_earlier_runs(self._output),
            follow_symlinks=self._follow_symlinks,
        )

    def process(self, element, tracker=beam.DoFn.RestrictionParam(_Polls())):  # noqa: B008 (Beam's injection)
        poll = tracker.current_restriction().start
        budget_ends = time.monotonic() + 5.0  # each bundle end stalls ~50 ms (state sampler join)
        while True:
            final = STOP.is_set()
            if not tracker.try_claim(_END - 1 if final else poll):
                return
            poll += 1
            chunks = self._follower.poll()
            for chunk in chunks:
                yield (TRUNCATED if chunk.truncated else CHUNK), chunk.lines
            follower = self._follower
            yield (
                TICK,
                Tick(tuple(follower.positions()), follower.followed, final, time.time(), follower.bytes_behind()),
            )
            if final:
                return
            if time.monotonic() >= budget_ends:
                tracker.defer_remainder()
                return
            if sum(len(c.lines.data) for c in chunks) < self._full_poll_bytes:
                # Nothing waiting: let lines gather for a poll interval.  Polling again at once read a few lines
                # per poll, each paying every step's fixed cost (most of the CPU at 1,000 lines/s).
                time.sleep(self._config.stream.poll_seconds)

    def teardown(self):
        if self._follower is not None:
            self._follower.close()


def archived_by_earlier_runs(output: str):
    """For files the stream has no position for: where completed runs (a batch, an earlier stream) left them in
    the ingest ledger, so the stream archives nothing twice."""
    ledger = Ledger.load(output)

    def archived(path: str) -> Archived | None:
        try:
            identity, history = ledger.identify(path, open_raw)
        except (OSError, InputError):
            return None  # the follower reports a file it cannot read
        if history is None:
            return None
        end, lines = history.archived()
        return Archived(end, lines + 1, identity.head_sha256, identity.head_bytes) if end else None

    return archived


class FollowLogs(beam.PTransform):
    """Followed files as ``("chunk" | "truncated", LineChunk)`` and ``("tick", Tick)`` envelopes, in read order."""

    def __init__(self, patterns: list[str], config: Config, output: str, follow_symlinks: bool = False):
        super().__init__()
        self._fn = FollowLogsFn(patterns, config, output, follow_symlinks)

    def expand(self, pbegin):
        return pbegin | "Start" >> beam.Impulse() | "Follow" >> beam.ParDo(self._fn)


class OnTag(beam.DoFn):
    """Run a batch DoFn on the envelopes tagged ``tag``; pass every other envelope on unchanged.

    ``retag`` names each output of the inner DoFn (a tag, or a function of the output giving
    envelopes); with ``keep`` the input envelope is passed on too, after what it produced.
    """

    def __init__(self, inner: beam.DoFn, tag: str, retag, keep: bool = False):
        self._inner, self._tag, self._retag, self._keep = inner, tag, retag, keep

    def setup(self):
        self._inner.setup()

    def process(self, envelope):
        tag, value = envelope
        if tag != self._tag:
            yield envelope
            return
        for out in self._inner.process(value) or ():
            if isinstance(self._retag, str):
                yield self._retag, out
            else:
                yield from self._retag(out)
        if self._keep:
            yield envelope

    def teardown(self):
        self._inner.teardown()


def _parse_outputs(result):
    """A chunk's parse result as envelopes: its events by dataset, then its dead letters."""
    if result.events.num_rows:
        yield (ACCESS_DIR if result.kind == ACCESS else ERROR_DIR), result.events
    if result.dead_letters.num_rows:
        yield DEAD_LETTER_DIR, result.dead_letters


class TruncatedLineFn(beam.DoFn):
    """A partial line handed out after the idle time: a dead letter saying so, counted as read."""

    def process(self, chunk: LineChunk):
        result = all_dead(chunk, "access", "truncated: the line had no newline when its file went quiet")
        metrics.counter(metrics.LINES_READ).inc(result.lines_read)
        metrics.counter(metrics.LINES_DEAD_LETTERED).inc(result.dead_letters.num_rows)
        yield result.dead_letters


class LiveCommitFn(beam.DoFn):
    """The streaming job's one stateful step: ``LiveStage`` in a DoFn; alerts to the sinks as the watermark passes
    them (from this step: delivery is part of what a cut commits)."""

    def __init__(self, config: Config, output: str, run_id: str):
        self._config = config
        self._output = output
        self._run_id = run_id
        self._stage: LiveStage | None = None

    def setup(self):
        config = self._config
        rules = load_configured_rules(config.alerts) if config.alerts.enabled else None
        settings = LiveSettings(
            output=self._output,
            run_id=self._run_id,
            cut_seconds=config.stream.cut_seconds,
            cut_bytes=config.stream.cut_bytes,
            lateness_seconds=config.stream.lateness_seconds,
            idle_seconds=config.stream.idle_seconds,
            reports_bucket=config.reports.bucket if config.reports.enabled else None,
            reports_geoip=bool(config.enrich.enabled and config.enrich.geoip_databases),
            delivery_wait_seconds=config.alerts.sinks.deadline_seconds,
        )
        store = StateStore(
            stream_state_dir(self._output), load_state_key(config.stream.state_key_file), ingest_signer(config.keys)
        )
        delivery = None
        if config.alerts.enabled and has_sinks(config.alerts.sinks):
            outbox = Outbox.with_key(self._output, load_outbox_key(outbox_key_file(config)), STREAM_OUTBOX)
            delivery = LiveDelivery(outbox, build_sinks(config.alerts.sinks), config.alerts.sinks.queue_size)
        keys = writer_keys(config.keys.keyring)
        self._stage = LiveStage(settings, keys, config.archive, rules, store, delivery=delivery)
        self._stage.start()
        self._progress_at = time.monotonic()
        self._lines_at_progress = 0

    def process(self, envelope):
        tag, value = envelope
        stage = self._stage
        if tag == HITS:
            stage.add_hits(pickle.loads(value[1][1]))
            return
        if tag != TICK:
            stage.add_events(tag, value)
            return
        # Alerts go to the sinks' threads as they are raised; none is emitted, so nothing is encoded for a
        # PCollection nobody reads (FnApiRunner pickled every alert it emitted).
        for alert in stage.tick(value):
            metrics.counter(metrics.alert_counter_name(alert["rule_id"])).inc()
        stage.cut_if_due(value)
        if value.final or time.monotonic() - self._progress_at >= self._config.stream.progress_seconds:
            print(stage.progress_line(self._rate()), file=sys.stderr, flush=True)

    def _rate(self) -> float:
        now = time.monotonic()
        rate = (self._stage.counts.lines - self._lines_at_progress) / max(now - self._progress_at, 1e-9)
        self._progress_at, self._lines_at_progress = now, self._stage.counts.lines
        return rate

    def teardown(self):
        if self._stage is not None:
            self._stage.close()


class LiveSteps(beam.PTransform):
    """Everything after the source, the same for followed files, Pub/Sub and Kafka: envelopes in, the archive and
    the sinks out."""

    def __init__(self, output: str, config: Config, run_id: str):
        super().__init__()
        self._output, self._config, self._run_id = output, config, run_id

    def expand(self, envelopes):
        config = self._config
        steps = envelopes | "Parse" >> beam.ParDo(OnTag(ParseChunkFn(config.keys.keyring), CHUNK, _parse_outputs))
        steps = steps | "TruncatedLines" >> beam.ParDo(OnTag(TruncatedLineFn(), TRUNCATED, DEAD_LETTER_DIR))
        if config.enrich.enabled:
            steps = steps | "Enrich" >> beam.ParDo(OnTag(EnrichBatchFn(config.enrich), ACCESS_DIR, ACCESS_DIR))
        if config.alerts.enabled:
            rules = load_configured_rules(config.alerts)
            for dataset, tag in (("access", ACCESS_DIR), ("error", ERROR_DIR)):
                if rules.for_dataset(dataset):
                    observe = OnTag(ObserveFn(rules, dataset, 1), tag, HITS, keep=True)
                    steps = steps | f"Observe{dataset.capitalize()}" >> beam.ParDo(observe)
        return steps | "LiveCommit" >> beam.ParDo(LiveCommitFn(config, self._output, self._run_id))


def source_envelopes(
    pipeline: beam.Pipeline, patterns: list[str], output: str, config: Config, follow_symlinks: bool = False
):
    """The configured source as chunk and tick envelopes: followed files, Pub/Sub or Kafka."""
    from pipelines import stream_sources

    if config.stream.source == "pubsub":
        return stream_sources.pubsub_envelopes(pipeline, config)
    if config.stream.source == "kafka":
        return stream_sources.kafka_envelopes(pipeline, config)
    return pipeline | "FollowLogs" >> FollowLogs(patterns, config, output, follow_symlinks)


def build_stream(
    pipeline: beam.Pipeline,
    patterns: list[str],
    output: str,
    config: Config,
    run_id: str,
    live: LiveSteps | None = None,
    follow_symlinks: bool = False,
):
    """The streaming graph: the configured source, then ``live`` (one ``LiveSteps`` whatever the source)."""
    live = live or LiveSteps(output, config, run_id)
    return source_envelopes(pipeline, patterns, output, config, follow_symlinks) | "Live" >> live


def _disable_state_cache() -> None:
    """FnApiRunner's state cache sizes every write with objsize; on this graph it was most of the CPU."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.STATE_CACHE_SIZE_MB = 0


@dataclasses.dataclass
class StreamRun:
    run_id: str
    seconds: float


def run_stream(
    patterns: list[str], output: str, config: Config, options: PipelineOptions, follow_symlinks: bool = False
) -> StreamRun:
    """Follow the files until SIGINT / SIGTERM, then drain: everything read is published before returning."""
    run_id = new_run_id()
    started = time.monotonic()
    STOP.clear()
    previous = {}

    def stop(signum, frame):
        STOP.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, stop)
    try:
        _disable_state_cache()
        pipeline = beam.Pipeline(options=options)
        build_stream(pipeline, patterns, output, config, run_id, follow_symlinks=follow_symlinks)
        with commit.RunLease(output, run_id):  # other runs' recovery leaves this run's staged files alone
            pipeline.run().wait_until_finish()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return StreamRun(run_id, time.monotonic() - started)
