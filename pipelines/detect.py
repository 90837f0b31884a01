"""Detect transform: events in, alerts out, the same in batch replay and in the live stream.

    access / error batches --Observe<dataset>--> (shard, hits)  stateless, vectorised per batch
                           --EvaluateOverTime--> alerts          stateful per shard, event-time timers
    a bounded run instead: --Spill<dataset>Hits--> (shard, spill file names)  hits to files (pipelines.spill)
                           --GroupSpillsByShard--FoldShards--> alerts  each shard folded, shards in parallel
                           (local workers: --GatherSpills--SpreadShards--> one group of shards per worker)
    alerts --WriteAlertParts--> sealed parts, archived in the run, then delivered to the sinks (batch)
           --DeliverAlerts--> jsonl / stdout / webhook / syslog sinks                         (stream)

Keys (source IP, user, ...) are spread over a fixed number of shards so the
stateful step sees a handful of elements per batch, not one per log line; a
bounded replay sends each rule whole to one shard, once per bundle.
Each shard buffers hits and folds them when the watermark passes their time,
in event-time order, so replay and stream raise identical alerts.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import hashlib
import pickle
import zlib
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.coders import BytesCoder, PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from alerts.engine import Detector
from alerts.observe import Hits, Observer, join_batches, kept_whole, merge_hits
from alerts.outbox import Outbox, alert_to_json, default_key_file, load_outbox_key
from alerts.rules import RuleSet
from alerts.sinks import build_sinks
from alerts.sinks.delivery import Delivery
from alerts.sinks.owed import DeliveryOutcome, deliver_with_retry, owe_alerts
from pipelines import metrics, progress
from pipelines import spill as spill_files
from pipelines.allocators import trim_heap
from pipelines.spill import SpilledHits, SpillWriter, fold_order, ordered_records
from retention.alert_store import write_alerts
from retention.keyring import writer_keys
from retention.signing import Signer
from schemas.config import AlertSinksConfig, Config

ALERTS_DIR = "alerts"
#: Event time of "the input is complete": the end of the global window, reached only by bounded inputs.
#: Timers fire at millisecond precision, so the time is the last whole millisecond of the window (compared
#: with the exact end, a fold at the end of the input was never seen as the last one).
END_OF_INPUT_US = GlobalWindow().max_timestamp().micros // 1000 * 1000


def _dumps(value) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while: observing and folding make thousands of small tuples,
    lists and dicts at a time (evidence lines and quotes, hits unpickled), and each burst set off collections that
    walked every object of the worker (unpickling a run's spilled hits took four times as long with them).  Hits
    and states hold no reference cycles: reference counting frees them as before."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


#: Rule sets by the digest of their pickle, in this process: what ``PackedRules`` packed or unpacked.
_RULES_BY_DIGEST: dict[bytes, RuleSet] = {}
#: ``id(rules)`` to ``(rules, digest, packed)``: each rule set is pickled once, however often Beam pickles a DoFn.
_PACKED: dict[int, tuple[RuleSet, bytes, bytes]] = {}


@dataclasses.dataclass(frozen=True)
class PackedRules:
    """A rule set as the detect DoFns pickle it: one plain pickle, compressed, made once per rule set.

    Beam pickles each DoFn (cloudpickle, then bzip2) when its ParDo is made (a round trip) and again into the
    job's graph, and unpickles it in each worker: with the rule set inside, about 45 ms per DoFn.  As packed
    bytes it is pickled once, and unpacked once per process (the process that built the graph unpacks nothing).
    """

    digest: bytes
    data: bytes

    @classmethod
    def of(cls, rules: RuleSet) -> PackedRules:
        known = _PACKED.get(id(rules))
        if known is None or known[0] is not rules:
            data = zlib.compress(pickle.dumps(rules, protocol=pickle.HIGHEST_PROTOCOL), 1)
            known = _PACKED[id(rules)] = (rules, hashlib.sha256(data).digest(), data)
        _RULES_BY_DIGEST[known[1]] = rules
        return cls(known[1], known[2])

    def unpack(self) -> RuleSet:
        rules = _RULES_BY_DIGEST.get(self.digest)
        if rules is None:
            rules = _RULES_BY_DIGEST[self.digest] = pickle.loads(zlib.decompress(self.data))
        return rules


class _CarriesRules:
    """For a DoFn holding its rule set in ``self._rules``: pickled as ``PackedRules``."""

    def __getstate__(self):
        return {**self.__dict__, "_rules": PackedRules.of(self._rules)}

    def __setstate__(self, state):
        self.__dict__.update(state, _rules=state["_rules"].unpack())


#: What crosses from observing to the stateful step: ``(shard, (newest event time in µs, pickled [Hits...]))``.
#: Pickled once here and kept as those very bytes in state: no second pickling in the stateful step.
ShardHits = tuple[int, tuple[int, bytes]]


def hits_by_shard(observer: Observer, whole: frozenset[str], shards: int, batch) -> dict[int, list[Hits]]:
    """One event batch's hits, split by shard: only rows that some rule cares about leave."""
    by_shard: dict[int, list[Hits]] = collections.defaultdict(list)
    for hits in observer.observe(batch):
        for shard, part in hits.by_shard(shards, hits.rule_id in whole).items():
            by_shard[shard].append(part)
    return by_shard


class ObserveFn(_CarriesRules, beam.DoFn):
    """One event batch to ``(shard, (newest, pickled hits))`` pairs: only rows that some rule cares about leave."""

    def __init__(self, rules: RuleSet, dataset: str, shards: int):
        self._rules, self._dataset, self._shards = rules, dataset, shards

    def setup(self):
        self._observer = Observer(self._rules, self._dataset)
        self._whole = kept_whole(self._rules, self._dataset)

    def process(self, batch):
        yield from self._by_shard(self._observer.observe(batch))

    def _by_shard(self, found) -> Iterator[ShardHits]:
        by_shard = collections.defaultdict(list)
        for hits in found:
            for shard, part in hits.by_shard(self._shards, hits.rule_id in self._whole).items():
                by_shard[shard].append(part)
        for shard, parts in by_shard.items():
            yield shard, (max(int(h.ts.max()) for h in parts), _dumps(parts))


def observe_unread(observer: Observer, unread: list) -> list[Hits]:
    """``alerts.observe.observe_many`` of a file's batches held unread, emptying ``unread`` as they are joined
    (``join_batches``): the joined copy is all observing needs, so the batches are not held twice while the rules
    run (at the 4 MiB default chunk that was a third of the batch job's Arrow memory at its peak)."""
    return observer.observe(*join_batches(unread))


#: A bounded replay observes consecutive batches of one file joined up to about this many rows: evaluating every
#: rule has a fixed cost per batch (a third of observing, at the 4 MiB default chunk) that joining spreads.  The
#: joined copy and the rules' temporaries are the 1M-line bench's memory peak: 65,536 rows cost ~12 MiB more
#: (1 core, 309 against 296 MiB) for no CPU measurably saved.
JOINED_ROWS = 49_152


class BundledObserveFn(ObserveFn):
    """``ObserveFn`` for a bounded replay: a bundle's hits leave at its end, one group per rule and file
    (``alerts.observe.merge_hits``), each rule on its shard, so the stateful step gets a few large elements per
    shard instead of one per batch, rule and shard.  Consecutive batches of a file are observed joined
    (``observe_unread``: the same hits and evidence as one by one).  The folds see the same rows in
    the same order; a stream keeps ``ObserveFn``'s element-by-element output so its alerts are not held back."""

    def setup(self):
        super().setup()
        # Each rule whole on its own shard: a bounded replay folds once, and a rule folded in one place costs one
        # fold instead of one per shard (the split by key bought nothing a rule-by-rule spread does not).
        self._whole = frozenset(r.id for r in self._rules.for_dataset(self._dataset))

    def start_bundle(self):
        self._held = {}  # window -> (earliest input timestamp, hits)
        self._unread = {}  # (window, file) -> batches not observed yet

    def process(self, batch, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        earliest, found = self._held.get(window, (timestamp, []))
        self._held[window] = (min(earliest, timestamp), found)
        paths = batch.column("log_file_path").unique()
        if len(paths) != 1:
            found.extend(self._observer.observe(batch))
            return
        unread = self._unread.setdefault((window, paths[0].as_py()), [])
        unread.append(self._observer.trim(batch))
        if sum(b.num_rows for b in unread) >= JOINED_ROWS:
            found.extend(observe_unread(self._observer, unread))

    def finish_bundle(self):
        for (window, _), unread in self._unread.items():
            if unread:
                self._held[window][1].extend(observe_unread(self._observer, unread))
        held, self._held, self._unread = self._held, {}, {}
        for window, (earliest, found) in held.items():
            for element in self._by_shard(merge_hits(found)):
                yield WindowedValue(element, earliest, [window])


class SpillHitsFn(_CarriesRules, beam.DoFn):
    """A bounded run's observing: each batch's hits appended to this bundle's spill file of their shard
    (``pipelines.spill``); at the end of the bundle one ``(shard, SpilledHits)`` per file leaves."""

    def __init__(self, rules: RuleSet, dataset: str, shards: int, output: str, run_id: str, key: bytes):
        self._rules, self._dataset, self._shards = rules, dataset, shards
        self._output, self._run_id, self._key = output, run_id, key

    def setup(self):
        self._observer = Observer(self._rules, self._dataset)
        # Each rule whole on its own shard (as ``BundledObserveFn``): split by key, every rule's hits of a batch
        # became up to one pickled group per shard, and every shard folded every rule.
        self._whole = frozenset(r.id for r in self._rules.for_dataset(self._dataset))

    def start_bundle(self):
        self._writers: dict[int, SpillWriter] = {}
        self._unread: dict[str, list] = {}  # file -> batches not observed yet

    def process(self, batch):
        # Consecutive batches of one file are observed joined, up to JOINED_ROWS (as ``BundledObserveFn``).
        paths = batch.column("log_file_path").unique()
        if len(paths) != 1:
            self._spill([batch])
            return
        unread = self._unread.setdefault(paths[0].as_py(), [])
        unread.append(self._observer.trim(batch))
        if sum(b.num_rows for b in unread) >= JOINED_ROWS:
            self._spill(unread)

    def _spill(self, batches: list) -> None:
        """``batches`` (one file's, read in a row) observed joined and their hits spilled; ``batches`` is emptied."""
        trim_heap()  # observing's working set comes next: on the heap's free pages, not on top of them
        with collector_paused():
            self._write(observe_unread(self._observer, batches))

    def _write(self, found: list) -> None:
        by_shard: dict[int, list[Hits]] = collections.defaultdict(list)
        for hits in found:
            for shard, part in hits.by_shard(self._shards, hits.rule_id in self._whole).items():
                by_shard[shard].append(part)
        for shard, parts in by_shard.items():
            writer = self._writers.get(shard)
            if writer is None:
                writer = self._writers[shard] = SpillWriter(self._output, self._run_id, self._key)
            writer.append(_dumps(parts), min(int(h.ts.min()) for h in parts), max(int(h.ts.max()) for h in parts))

    def finish_bundle(self):
        for unread in self._unread.values():
            if unread:
                self._spill(unread)
        self._unread = {}
        for shard, writer in sorted(self._writers.items()):
            yield WindowedValue((shard, writer.close()), GlobalWindow().max_timestamp(), [GlobalWindow()])
        self._writers = {}


#: Rows a shard's fold buffers before it folds what is ready: fewer, larger folds, memory still bounded (at 2**18
#: the request-flood rule's shard held 50 MiB at its peak, at 2**17 30 MiB, for the same CPU time).
FOLD_ROWS = 1 << 17


@dataclasses.dataclass
class FoldStats:
    late_rows: int = 0
    #: The most hit rows the detector held unfolded at once (what the fold's memory follows).
    peak_pending_rows: int = 0


def fold_spilled(
    rules: RuleSet, spills, key: bytes, fold_rows: int = FOLD_ROWS, stats: FoldStats | None = None
) -> list[dict]:
    """A bounded run's alerts of one shard from its spilled hits, oldest record first, folded as they come.

    The same alerts as buffering every hit and folding once (``alerts.engine``: a fold gives the same result
    in one flush or many), holding only the hits of about ``fold_rows`` rows of event time at once.
    """
    stats = stats or FoldStats()
    detector = Detector(rules)
    alerts: list[dict] = []
    pending = 0
    with collector_paused():
        for data, next_earliest in fold_order(ordered_records(spills), key):
            hits = pickle.loads(data)
            detector.add(hits)
            pending += sum(len(h) for h in hits)
            stats.peak_pending_rows = max(stats.peak_pending_rows, pending)
            if next_earliest is not None and pending >= fold_rows:
                alerts.extend(detector.flush(next_earliest - 1))
                pending = sum(len(h) for h in detector.pending)
        alerts.extend(detector.finish())
    stats.late_rows = detector.late_rows
    return alerts


class FoldShardFn(_CarriesRules, beam.DoFn):
    """A bounded run's shard: its spill files' hits folded in event-time order; its alerts out."""

    def __init__(self, rules: RuleSet, key: bytes):
        self._rules, self._key = rules, key
        self._late = metrics.counter(metrics.ALERT_LATE_ROWS)

    def process(self, shard_and_spills):
        _, spills = shard_and_spills
        yield from self._fold(list(spills))

    def _fold(self, spills: list[SpilledHits]):
        stats = FoldStats()
        alerts = fold_spilled(self._rules, spills, self._key, stats=stats)
        spill_files.delete(spills)
        self._late.inc(stats.late_rows)
        progress.record_alerts(len(alerts))
        for alert in alerts:
            metrics.counter(metrics.alert_counter_name(alert["rule_id"])).inc()
            yield alert


#: What folding a shard costs besides its spilled bytes (a detector, its alerts), in bytes of spilled hits: measured
#: at 1M lines, a shard took ~30 ms plus ~20-100 ms per MB (the request-flood rule's 28 MB, 0.6 s).
SHARD_WEIGHT_BYTES = 1 << 20


def spread_shards(spills: Iterable[tuple[int, SpilledHits]], slots: int) -> list[tuple[int, list]]:
    """``slots`` groups ``(slot, [(shard, [spills...]), ...])`` of about equal spilled bytes, one per local worker.

    The local runner hands the keys of a shuffle to its workers in turn: with one key per shard, a worker got the
    request-flood rule's heavy shard with half the rest as well (at 5M lines one worker folded 6.3 s, the other
    2.3 s, waiting).  Heaviest shard first (spilled bytes, plus ``SHARD_WEIGHT_BYTES`` each), each to the
    lightest group so far; a group folds its shards one by one.
    """
    by_shard: dict[int, list[SpilledHits]] = collections.defaultdict(list)
    for shard, spilled in spills:
        by_shard[shard].append(spilled)
    weight = {shard: SHARD_WEIGHT_BYTES + sum(f.size for f in files) for shard, files in by_shard.items()}
    groups: list[list] = [[] for _ in range(slots)]
    loads = [0] * slots
    for shard in sorted(by_shard, key=lambda s: (-weight[s], s)):
        lightest = min(range(slots), key=lambda k: (loads[k], k))
        groups[lightest].append((shard, by_shard[shard]))
        loads[lightest] += weight[shard]
    return [(slot, group) for slot, group in enumerate(groups) if group]


class FoldSlotFn(FoldShardFn):
    """A bounded run's group of shards (``spread_shards``), folded one shard after the other."""

    def process(self, slot_and_groups):
        _, groups = slot_and_groups
        for group in groups:
            for _, spills in group:
                yield from self._fold(spills)


class EvaluateOverTimeFn(_CarriesRules, beam.DoFn):
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
        alerts = detector.finish() if at_end else detector.flush(fired_at.micros)
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
    #: A bounded run's ``(output, run_id)``: its hits are spilled to the run's staging folder and only the
    #: files' names cross the shuffle (``pipelines.spill``); each shard is then folded by a plain DoFn, so the
    #: shards fold in parallel.  None: hits cross the shuffle into per-shard state (a stream needs that).
    spill: tuple[str, str] | None = None
    #: A bounded run's local workers: its shards are folded in this many groups of about equal size (``spread_shards``).
    workers: int = 1

    def __post_init__(self):
        super().__init__()

    def expand(self, events):
        if not isinstance(events, dict):
            events = {"access": events}
        datasets = [(d, batches) for d, batches in sorted(events.items()) if self.rules.for_dataset(d)]
        if not datasets:
            return events[next(iter(events))].pipeline | "NoRules" >> beam.Create([])
        if self.bounded and self.spill is not None:
            output, run_id = self.spill
            key = spill_files.new_key()  # in the job's memory only: spilled hits are unreadable at rest
            spilled = [
                batches
                | f"Spill{dataset.capitalize()}Hits"
                >> beam.ParDo(SpillHitsFn(self.rules, dataset, self.shards, output, run_id, key)).with_output_types(
                    tuple[int, SpilledHits]
                )
                for dataset, batches in datasets
            ]
            files = spilled[0] if len(spilled) == 1 else tuple(spilled) | "MergeSpills" >> beam.Flatten()
            if self.workers <= 1:
                return (
                    files
                    | "GroupSpillsByShard" >> beam.GroupByKey()
                    | "FoldShards" >> beam.ParDo(FoldShardFn(self.rules, key))
                )
            # All spill names to one place (a few kB), there cut into one balanced group per worker.
            return (
                files
                | "KeySpillsAlike" >> beam.Map(lambda shard_and_spilled: (0, shard_and_spilled))
                | "GatherSpills" >> beam.GroupByKey()
                | "SpreadShards" >> beam.FlatMap(lambda gathered, n: spread_shards(gathered[1], n), self.workers)
                | "GroupSlots" >> beam.GroupByKey()
                | "FoldShards" >> beam.ParDo(FoldSlotFn(self.rules, key))
            )
        observe = BundledObserveFn if self.bounded else ObserveFn
        observed = [
            batches
            | f"Observe{dataset.capitalize()}"
            >> beam.ParDo(observe(self.rules, dataset, self.shards)).with_output_types(ShardHits)
            for dataset, batches in datasets
        ]
        hits = observed[0] if len(observed) == 1 else tuple(observed) | "MergeHits" >> beam.Flatten()
        return hits | "EvaluateOverTime" >> beam.ParDo(EvaluateOverTimeFn(self.rules, self.bounded)).with_input_types(
            ShardHits
        )


def outbox_key_file(config: Config) -> str:
    return config.alerts.sinks.outbox_key_file or default_key_file(config.keys.keyring)


def run_outbox(output: str, config: Config) -> Outbox:
    """The output's outbox with its private key: for the process that drives the job, never for workers."""
    return Outbox.with_key(output, load_outbox_key(outbox_key_file(config)))


#: A part file is sealed once its alerts' text reaches about this size: sealing copies the text a few times over,
#: and one part for a bundle of 6,862 alerts (9.5 MB, the 5M-line bench) was the batch job's memory peak.
PART_TEXT_BYTES = 1 << 20


class WriteAlertPartsFn(beam.DoFn):
    """A bundle's alerts to part files sealed to the outbox key (each complete, or not there at all), rendered as
    they come and sealed about every ``PART_TEXT_BYTES``: held as text, not as alerts.

    Workers hold the outbox's public half only: a crashed run leaves sealed parts, never plaintext alerts.
    A retried bundle writes its parts again; ``Outbox.run_alerts`` takes each alert once.
    """

    def __init__(self, outbox: Outbox, run_id: str):
        self._outbox, self._run_id = outbox, run_id

    def start_bundle(self):
        self._lines: list[str] = []
        self._size = 0

    def process(self, alert):
        line = alert_to_json(alert) + "\n"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= PART_TEXT_BYTES:
            self._write()

    def finish_bundle(self):
        self._write()

    def _write(self) -> None:
        if self._lines:
            self._outbox.write_part_lines(self._run_id, self._lines)
            self._lines, self._size = [], 0


class WriteAlertParts(beam.PTransform):
    """A batch run's alerts as sealed part files; ``archive_run_alerts`` takes them from there once the job is done.

    No group-by after the event-time timers: the direct runner refuses elements that a timer emits
    after a downstream GroupByKey has completed, and a run's alerts are few enough to join afterwards.
    """

    def __init__(self, outbox: Outbox, run_id: str):
        super().__init__()
        self._outbox, self._run_id = outbox, run_id

    def expand(self, alerts):
        return alerts | "WriteParts" >> beam.ParDo(WriteAlertPartsFn(self._outbox, self._run_id))


def archive_run_alerts(
    output: str, run_id: str, config: Config, signer: Signer | None = None, outbox: Outbox | None = None
) -> list[dict]:
    """After a batch job: the run's alerts into the encrypted ``alerts`` dataset, inside the run's transaction,
    and owed to the sinks in the outbox (so a kill between completing and delivering loses no delivery).

    ``outbox`` (``run_outbox``'s) is best the one ``deliver_run_alerts`` gets next: it remembers what it owes
    the sinks, and delivery need not unseal and parse that again."""
    outbox = outbox or run_outbox(output, config)
    alerts = outbox.run_alerts(run_id)
    write_alerts(output, run_id, alerts, writer_keys(config.keys.keyring), config.archive, signer)
    owe_alerts(outbox, build_sinks(config.alerts.sinks), alerts)
    return alerts


def deliver_run_alerts(
    output: str, run_id: str, config: Config, alerts: list[dict], outbox: Outbox | None = None
) -> DeliveryOutcome:
    """Once the run is complete: its alerts to the sinks, with what earlier runs still owe (kept if undelivered)."""
    outbox = outbox or run_outbox(output, config)
    sinks_config = config.alerts.sinks
    outcome = deliver_with_retry(
        outbox, build_sinks(sinks_config), alerts, sinks_config.deadline_seconds, sinks_config.queue_size
    )
    outbox.clear_parts(run_id)
    return outcome


class DeliverAlertsFn(beam.DoFn):
    """A stream's alerts to the sinks as they are raised, from bounded queues; failures counted, never fatal."""

    def __init__(self, config: AlertSinksConfig):
        self._config = config
        self._failed = metrics.counter(metrics.ALERTS_UNDELIVERED)

    def setup(self):
        self._delivery = Delivery(build_sinks(self._config), float("inf"), self._config.queue_size)

    def process(self, alert):
        self._delivery.submit(alert, wait=False)

    def teardown(self):
        report = self._delivery.finish()
        self._failed.inc(len(report.undelivered_ids))


class DeliverAlerts(beam.PTransform):
    """Each alert to the configured sinks as it is raised (streaming); failures are counted, never fatal."""

    def __init__(self, config: AlertSinksConfig):
        super().__init__()
        self._config = config

    def expand(self, alerts):
        return alerts | "SendToSinks" >> beam.ParDo(DeliverAlertsFn(self._config))


def has_sinks(config: AlertSinksConfig) -> bool:
    return bool(config.jsonl or config.stdout or config.webhook.url or config.syslog.host)
