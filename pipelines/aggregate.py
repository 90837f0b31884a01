"""Aggregate transform: access events to the run's mergeable traffic aggregates in the aggregate store."""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Iterable, Iterator

import apache_beam as beam
import datasketches
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindows

from pipelines import coders
from pipelines.reports import traffic
from pipelines.reports.privacy import OTHER
from pipelines.reports.store import KeyRows, store_rows, write_run_rows
from pipelines.reports.traffic import (
    HLL_LG_K,
    VALUE_HLL_LG_K,
    Key,
    TrafficPartial,
    by_requests,
    partials_from_batch,
)
from pipelines.spill import new_key
from pipelines.staged import Staged, Stager


class LiveTraffic:
    """A ``TrafficPartial`` being merged into, its sketches kept live until the end.

    ``TrafficPartial.merge`` unions sketches as bytes: two deserialisations, a union and a serialisation per
    breakdown value per merge (thousands per partial).  Here each value keeps one union (made when a second
    sketch for it arrives) and is serialised once, by ``materialize``.  Rare values are folded into "(other)"
    at the same points as ``TrafficPartial.merge`` does (beyond ``MERGE_VALUES`` only).  Values are interned:
    every hour of a run holds mostly the same paths, browsers and referrers, and the accumulators of all
    of them live until the input is read (one copy of each string instead of one per key: ~8 MiB at 5M lines).
    """

    __slots__ = ("partial", "response_ms", "slots", "visitors")

    def __init__(self):
        self.partial = TrafficPartial()
        self.visitors = None  # hll_union, once a second visitor sketch arrives
        self.response_ms = None  # kll_doubles_sketch, once a second one arrives
        #: dimension -> value -> [requests, bytes, sketch bytes or None, hll_union or None]
        self.slots: dict[str, dict[str, list]] = {}

    def merge(self, other: TrafficPartial | LiveTraffic) -> LiveTraffic:
        if isinstance(other, LiveTraffic):
            other = other.materialize()
        mine = self.partial
        mine.merge_counts(other)
        if other.visitors is not None:
            if mine.visitors is None and self.visitors is None:
                mine.visitors = other.visitors
            else:
                self.visitors = _into_union(self.visitors, mine.visitors, other.visitors, HLL_LG_K)
                mine.visitors = None
        if other.response_ms is not None:
            if mine.response_ms is None and self.response_ms is None:
                mine.response_ms = other.response_ms
            else:
                if self.response_ms is None:
                    self.response_ms = datasketches.kll_doubles_sketch.deserialize(mine.response_ms)
                    mine.response_ms = None
                self.response_ms.merge(datasketches.kll_doubles_sketch.deserialize(other.response_ms))
        for dimension, values in other.breakdown.items():
            slots = self.slots.setdefault(dimension, {})
            for value, (requests, size, sketch) in values.items():
                slot = slots.get(value)
                if slot is None:
                    slots[sys.intern(value)] = [requests, size, sketch, None]
                    continue
                slot[0] += requests
                slot[1] += size
                if sketch is not None:
                    if slot[2] is None and slot[3] is None:
                        slot[2] = sketch
                    else:
                        slot[3] = _into_union(slot[3], slot[2], sketch, VALUE_HLL_LG_K)
                        slot[2] = None
            if len(slots) > traffic.MERGE_VALUES:
                self.slots[dimension] = _fold_rare_slots(slots, traffic.MERGE_VALUES // 2)
        return self

    def materialize(self) -> TrafficPartial:
        """The merged partial, sketches serialised (the live state stays usable)."""
        out = dataclasses.replace(self.partial, status_classes=Counter(self.partial.status_classes))
        if self.visitors is not None:
            out.visitors = self.visitors.get_result().serialize_compact()
        if self.response_ms is not None:
            out.response_ms = self.response_ms.serialize()
        out.breakdown = {
            dimension: {value: [slot[0], slot[1], _slot_sketch(slot)] for value, slot in slots.items()}
            for dimension, slots in self.slots.items()
        }
        return out


def _into_union(union, held: bytes | None, incoming: bytes, lg_k: int):
    if union is None:
        union = datasketches.hll_union(lg_k)
        if held is not None:
            union.update(datasketches.hll_sketch.deserialize(held))
    union.update(datasketches.hll_sketch.deserialize(incoming))
    return union


def _slot_sketch(slot: list) -> bytes | None:
    return slot[3].get_result().serialize_compact() if slot[3] is not None else slot[2]


def _fold_rare_slots(slots: dict[str, list], keep: int) -> dict[str, list]:
    """``pipelines.reports.traffic.fold_rare`` on live slots: the ``keep`` most requested values, the rest in
    "(other)"."""
    ranked = sorted(((v, s) for v, s in slots.items() if v != OTHER), key=by_requests)
    kept = dict(ranked[: keep - 1])
    rest = ranked[keep - 1 :] + ([(OTHER, slots[OTHER])] if OTHER in slots else [])
    if rest:
        other = [0, 0, None, None]
        for _, (requests, size, sketch, union) in rest:
            other[0] += requests
            other[1] += size
            incoming = union.get_result().serialize_compact() if union is not None else sketch
            if incoming is None:
                continue
            if other[2] is None and other[3] is None:
                other[2] = incoming
            else:
                other[3] = _into_union(other[3], other[2], incoming, VALUE_HLL_LG_K)
                other[2] = None
        kept[OTHER] = other
    return kept


@beam.typehints.with_input_types(TrafficPartial)
@beam.typehints.with_output_types(TrafficPartial)
class MergeTrafficFn(beam.CombineFn):
    """Merge partials of one (bucket, host, source) in any order."""

    def create_accumulator(self) -> LiveTraffic:
        return LiveTraffic()

    def add_input(self, accumulator: LiveTraffic, partial: TrafficPartial) -> LiveTraffic:
        return accumulator.merge(partial)

    def merge_accumulators(self, accumulators) -> LiveTraffic:
        merged = LiveTraffic()
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: LiveTraffic) -> TrafficPartial:
        partial = accumulator.materialize() if isinstance(accumulator, LiveTraffic) else accumulator
        partial.compact_seconds()
        return partial


#: Batches in a row that must leave a key untouched before ``PrecombineFn`` hands its partial on.
STALE_BATCHES = 4


class PrecombineFn(beam.DoFn):
    """A bundle's batches to partials merged per key, each key handed on once ``STALE_BATCHES`` batches in a
    row have not touched it, the rest at the end of the bundle.

    Beam's lifted combine kept every key's accumulator (breakdown values, live sketches) until the fused
    stage had read its whole input, so the stage's memory grew with the hours a run covers.  A log is read
    in time order: an hour is done once later hours have arrived.  A key seen again after it was handed on
    starts a new partial; the merge after the shuffle gives the same store either way.
    """

    def __init__(self, grain: str, sources: dict[str, str], stager: Stager | None = None):
        self._grain = grain
        self._sources = sources
        self._stager = stager

    def _handed_on(self, key: Key, accumulator: LiveTraffic) -> tuple[Key, TrafficPartial | Staged]:
        partial = accumulator.materialize()
        return key, (self._stager.put(partial) if self._stager is not None else partial)

    def start_bundle(self):
        self._live: dict[Key, list] = {}  # key -> [LiveTraffic, the batch that last touched it]
        self._batches = 0

    def process(self, batch: pa.RecordBatch):
        self._batches += 1
        for key, partial in partials_from_batch(batch, self._grain, self._sources):
            entry = self._live.get(key)
            if entry is None:
                entry = self._live[key] = [LiveTraffic(), 0]
            entry[0].merge(partial)
            entry[1] = self._batches
        for key in [k for k, (_, last) in self._live.items() if self._batches - last >= STALE_BATCHES]:
            yield self._handed_on(key, self._live.pop(key)[0])

    def finish_bundle(self):
        live, self._live = self._live, {}
        for key, (accumulator, _) in live.items():
            yield GlobalWindows.windowed_value(self._handed_on(key, accumulator))


class MergePartialsFn(beam.DoFn):
    """One key's partials after the shuffle (staged, or the partials themselves) merged into one, read one at a
    time."""

    def __init__(self, stager: Stager | None = None):
        self._stager = stager

    def process(self, grouped: tuple[Key, Iterable[TrafficPartial | Staged]]):
        key, partials = grouped
        fn = MergeTrafficFn()
        accumulator = fn.create_accumulator()
        for partial in partials:
            accumulator = fn.add_input(
                accumulator, self._stager.get(partial) if isinstance(partial, Staged) else partial
            )
        yield key, fn.extract_output(accumulator)


class AggregateTraffic(beam.PTransform):
    """Access-event batches in; one ``((bucket, host, source), TrafficPartial)`` per bucket, host and source out.

    ``sources`` maps each input path to its ingest-ledger key (``retention.ledger.FileIdentity.key``), so the
    store can tell a re-read of the same log from new traffic.  ``staging``: a bounded run's ``(output, run_id)``,
    whose partials cross the shuffle as files in its staging folder (``pipelines.staged``); None: as elements.
    """

    def __init__(
        self, grain: str = "hour", sources: dict[str, str] | None = None, staging: tuple[str, str] | None = None
    ):
        super().__init__()
        self._grain = grain
        self._sources = dict(sources or {})
        self._staging = staging

    def expand(self, batches):
        coders.register()
        stager = Stager(*self._staging, new_key()) if self._staging is not None else None
        return (
            batches
            | "Partials"
            >> beam.ParDo(PrecombineFn(self._grain, self._sources, stager)).with_output_types(
                tuple[Key, TrafficPartial | Staged] if stager is not None else tuple[Key, TrafficPartial]
            )
            | "GroupPartials" >> beam.GroupByKey()
            | "MergePartials" >> beam.ParDo(MergePartialsFn(stager)).with_output_types(tuple[Key, TrafficPartial])
        )


class WriteAggregates(beam.PTransform):
    """A run's merged partials into the aggregate store.

    Each key's rows are built where it was merged (on every worker) and staged (``pipelines.staged``); one step
    then gathers their names under one key and writes the run's two store files.
    """

    def __init__(self, output: str, run_id: str, grain: str, geoip_configured: bool):
        super().__init__()
        self._args = (output, run_id, grain, geoip_configured)

    def expand(self, results):
        coders.register()
        output, run_id, grain, geoip = self._args

        stager = Stager(output, run_id, new_key())

        def rows(result: tuple[Key, TrafficPartial]) -> tuple[int, Staged]:
            key, partial = result
            return 0, stager.put((key, *store_rows(key, partial, run_id, grain, geoip)))

        def write(gathered: tuple[int, Iterable[Staged]]) -> list[str]:
            rows: Iterator[KeyRows] = (stager.get(staged) for staged in gathered[1])
            return write_run_rows(rows, output, run_id)

        # One group under one key (not ``ToList``, whose accumulators would cross as pickled lists).
        return (
            results
            | "StoreRows" >> beam.Map(rows).with_output_types(tuple[int, Staged])
            | "Collect" >> beam.GroupByKey()
            | "Write" >> beam.FlatMap(write)
        )
