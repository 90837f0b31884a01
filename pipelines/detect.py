"""Detect transform: events in, alerts out, the same in batch replay and in the live stream.

    access / error batches --Observe<dataset>--> (shard, hits)  stateless, vectorised per batch
                           --EvaluateOverTime--> alerts          stateful per shard, event-time timers
    alerts --WriteAlertsFile--> <output>/alerts/alerts-<run>.jsonl     (batch)
           --DeliverAlerts--> jsonl / stdout / webhook / syslog sinks

Keys (source IP, user, ...) are spread over a fixed number of shards so the
stateful step sees a handful of elements per batch, not one per log line.
Each shard buffers hits and folds them when the watermark passes their time,
in event-time order, so replay and stream raise identical alerts.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pickle
import uuid

import apache_beam as beam
from apache_beam.coders import BytesCoder, PickleCoder
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from alerts.alert import alert_sort_key
from alerts.engine import Detector
from alerts.observe import Observer, kept_whole
from alerts.rules import RuleSet
from alerts.sinks import Deliverer, alert_json, build_sinks
from pipelines import metrics, progress
from retention import layout
from schemas.config import AlertSinksConfig

ALERTS_DIR = "alerts"
#: Event time of "the input is complete": the end of the global window, reached only by bounded inputs.
#: Timers fire at millisecond precision, so the time is the last whole millisecond of the window (compared
#: with the exact end, a fold at the end of the input was never seen as the last one).
END_OF_INPUT_US = GlobalWindow().max_timestamp().micros // 1000 * 1000


def _dumps(value) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


#: What crosses from observing to the stateful step: ``(shard, (newest event time in µs, pickled [Hits...]))``.
#: Pickled once here and kept as those very bytes in state: no second pickling in the stateful step.
ShardHits = tuple[int, tuple[int, bytes]]


class ObserveFn(beam.DoFn):
    """One event batch to ``(shard, (newest, pickled hits))`` pairs: only rows that some rule cares about leave."""

    def __init__(self, rules: RuleSet, dataset: str, shards: int):
        self._rules, self._dataset, self._shards = rules, dataset, shards

    def setup(self):
        self._observer = Observer(self._rules, self._dataset)
        self._whole = kept_whole(self._rules, self._dataset)

    def process(self, batch):
        by_shard = collections.defaultdict(list)
        for hits in self._observer.observe(batch):
            for shard, part in hits.by_shard(self._shards, hits.rule_id in self._whole).items():
                by_shard[shard].append(part)
        for shard, parts in by_shard.items():
            yield shard, (max(int(h.ts.max()) for h in parts), _dumps(parts))


class EvaluateOverTimeFn(beam.DoFn):
    """Per shard: buffer hits, and when the watermark passes them fold them in event-time order.

    One timer per shard: in a stream, set at the newest buffered time when none is
    pending, so alerts leave within one watermark step; in a bounded replay, set at the
    end of the input, so each shard folds once.  Both fold the same rows in the same
    order, hence the same alerts.
    """

    # Hits and key states are kept as pickled bytes: Beam's state cache sizes values by walking every
    # object they hold, which for thousands of small key states cost more than the detection itself.
    PENDING = BagStateSpec("pending", BytesCoder())
    STATE = ReadModifyWriteStateSpec("detector", BytesCoder())
    FLUSH_AT = ReadModifyWriteStateSpec("flush_at", PickleCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self, rules: RuleSet, bounded: bool = False):
        self._rules = rules
        self._bounded = bounded
        self._late = metrics.counter(metrics.ALERT_LATE_ROWS)

    def process(
        self,
        shard_and_hits,
        pending=beam.DoFn.StateParam(PENDING),  # noqa: B008 (Beam\'s state/timer injection)
        flush_at=beam.DoFn.StateParam(FLUSH_AT),  # noqa: B008 (Beam\'s state/timer injection)
        flush=beam.DoFn.TimerParam(FLUSH),  # noqa: B008 (Beam\'s state/timer injection)
    ):
        _, (newest, hits) = shard_and_hits
        pending.add(hits)
        if flush_at.read() is None:
            # A bounded replay folds each shard once, at the end of its input; a stream as the watermark moves.
            newest = END_OF_INPUT_US if self._bounded else newest
            flush.set(Timestamp(micros=newest))
            flush_at.write(newest)

    @on_timer(FLUSH)
    def on_flush(
        self,
        fired_at=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),  # noqa: B008 (Beam\'s state/timer injection)
        state=beam.DoFn.StateParam(STATE),  # noqa: B008 (Beam\'s state/timer injection)
        flush_at=beam.DoFn.StateParam(FLUSH_AT),  # noqa: B008 (Beam\'s state/timer injection)
        flush=beam.DoFn.TimerParam(FLUSH),  # noqa: B008 (Beam\'s state/timer injection)
    ):
        detector = Detector(self._rules)
        saved = state.read()
        detector.restore(pickle.loads(saved) if saved else None)
        late_before = detector.late_rows
        for hits in pending.read():
            detector.add(pickle.loads(hits))
        pending.clear()
        at_end = fired_at.micros >= END_OF_INPUT_US
        alerts = detector.flush(None if at_end else fired_at.micros)
        if detector.pending:
            pending.add(_dumps(detector.pending))
            newest = detector.pending_max_us
            flush.set(Timestamp(micros=newest))
            flush_at.write(newest)
        else:
            flush_at.clear()
        self._late.inc(detector.late_rows - late_before)
        if at_end:
            state.clear()  # nothing follows the end of the input
        else:
            state.write(_dumps(detector.snapshot()))
        progress.record_alerts(len(alerts))
        for alert in alerts:
            metrics.counter(metrics.alert_counter_name(alert["rule_id"])).inc()
            yield alert


@dataclasses.dataclass
class Detect(beam.PTransform):
    """``{"access": batches, "error": batches}`` (either may be missing) to alert records (``schemas.ALERT`` rows)."""

    rules: RuleSet
    shards: int = 16
    #: True for a finite replay (``logwarden batch``): fold once at the end instead of at every watermark step.
    bounded: bool = False

    def __post_init__(self):
        super().__init__()

    def expand(self, events):
        if not isinstance(events, dict):
            events = {"access": events}
        observed = [
            batches
            | f"Observe{dataset.capitalize()}"
            >> beam.ParDo(ObserveFn(self.rules, dataset, self.shards)).with_output_types(ShardHits)
            for dataset, batches in sorted(events.items())
            if self.rules.for_dataset(dataset)
        ]
        if not observed:
            return events[next(iter(events))].pipeline | "NoRules" >> beam.Create([])
        hits = observed[0] if len(observed) == 1 else tuple(observed) | "MergeHits" >> beam.Flatten()
        return hits | "EvaluateOverTime" >> beam.ParDo(EvaluateOverTimeFn(self.rules, self.bounded)).with_input_types(
            ShardHits
        )


def write_alerts_file(alerts: list[dict], path: str) -> str:
    """All alerts of a run, sorted by start time, written to a temporary name and renamed into place."""
    directory = path.rsplit("/", 1)[0]
    if not FileSystems.exists(directory):
        FileSystems.mkdirs(directory)
    staging = f"{directory}/.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp"
    with FileSystems.create(staging) as handle:
        for alert in sorted(alerts, key=alert_sort_key):
            handle.write((alert_json(alert) + "\n").encode("utf-8"))
    FileSystems.rename([staging], [path])
    return path


def alerts_file(output: str, run_id: str) -> str:
    return FileSystems.join(output, ALERTS_DIR, f"alerts-{run_id}.jsonl")


def _parts_dir(output: str, run_id: str) -> str:
    return FileSystems.join(layout.staging_dir(output, run_id), ALERTS_DIR)


class WriteAlertPartsFn(beam.DoFn):
    """Each bundle's alerts to one hidden part file (complete, or not there at all)."""

    def __init__(self, output: str, run_id: str):
        self._dir = _parts_dir(output, run_id)

    def start_bundle(self):
        self._alerts = []

    def process(self, alert):
        self._alerts.append(alert)

    def finish_bundle(self):
        if self._alerts:
            write_alerts_file(self._alerts, FileSystems.join(self._dir, f"part-{uuid.uuid4().hex}.jsonl"))
            self._alerts = []


class WriteAlertsFile(beam.PTransform):
    """A batch run's alerts as hidden part files; ``publish_alerts_file`` joins them once the job is done.

    No group-by after the event-time timers: the direct runner refuses elements that a timer emits
    after a downstream GroupByKey has completed, and a run's alerts are few enough to join afterwards.
    """

    def __init__(self, output: str, run_id: str):
        super().__init__()
        self._output, self._run_id = output, run_id

    def expand(self, alerts):
        return alerts | "WriteParts" >> beam.ParDo(WriteAlertPartsFn(self._output, self._run_id))


def publish_alerts_file(output: str, run_id: str) -> str:
    """Join the run's part files into ``<output>/alerts/alerts-<run>.jsonl`` (empty when nothing fired), atomically."""
    parts_dir = _parts_dir(output, run_id)
    lines = []
    if FileSystems.exists(parts_dir):
        for match in FileSystems.match([FileSystems.join(parts_dir, "part-*.jsonl")])[0].metadata_list:
            with FileSystems.open(match.path) as handle:
                lines += [line for line in handle.read().decode("utf-8").splitlines() if line]
    rows = [json.loads(line) for line in lines]
    rows.sort(key=lambda a: (a["first_seen"], a["rule_id"], a["group_key"]))
    path = alerts_file(output, run_id)
    directory = path.rsplit("/", 1)[0]
    if not FileSystems.exists(directory):
        FileSystems.mkdirs(directory)
    staging = f"{directory}/.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp"
    with FileSystems.create(staging) as handle:
        for row in rows:
            handle.write((json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
    FileSystems.rename([staging], [path])
    return path


class DeliverAlertsFn(beam.DoFn):
    def __init__(self, config: AlertSinksConfig):
        self._config = config
        self._failed = metrics.counter(metrics.ALERTS_UNDELIVERED)

    def setup(self):
        self._deliverer = Deliverer(build_sinks(self._config))

    def process(self, alert):
        if not self._deliverer.send(alert):
            self._failed.inc()

    def teardown(self):
        self._deliverer.close()


class DeliverAlerts(beam.PTransform):
    """Each alert to the configured sinks as it is raised; failures are counted, never fatal."""

    def __init__(self, config: AlertSinksConfig):
        super().__init__()
        self._config = config

    def expand(self, alerts):
        return alerts | "SendToSinks" >> beam.ParDo(DeliverAlertsFn(self._config))


def has_sinks(config: AlertSinksConfig) -> bool:
    return bool(config.jsonl or config.stdout or config.webhook.url or config.syslog.host)
