"""Aggregate transform: access events to the run's mergeable traffic aggregates in the aggregate store."""

from __future__ import annotations

import apache_beam as beam

from pipelines import coders
from pipelines.reports.store import write_run_aggregates
from pipelines.reports.traffic import Key, TrafficPartial, partials_from_batch


class MergeTrafficFn(beam.CombineFn):
    """Merge partials of one (bucket, host, source) in any order."""

    def create_accumulator(self) -> TrafficPartial:
        return TrafficPartial()

    def get_accumulator_coder(self):
        return coders.TrafficPartialCoder()

    def add_input(self, accumulator: TrafficPartial, partial: TrafficPartial) -> TrafficPartial:
        return accumulator.merge(partial)

    def merge_accumulators(self, accumulators) -> TrafficPartial:
        merged = TrafficPartial()
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator: TrafficPartial) -> TrafficPartial:
        accumulator.compact_seconds()
        return accumulator


class AggregateTraffic(beam.PTransform):
    """Access-event batches in; one ``((bucket, host, source), TrafficPartial)`` per bucket, host and source out.

    ``sources`` maps each input path to its ingest-ledger key (``retention.ledger.FileIdentity.key``), so the
    store can tell a re-read of the same log from new traffic.
    """

    def __init__(self, grain: str = "hour", sources: dict[str, str] | None = None):
        super().__init__()
        self._grain = grain
        self._sources = dict(sources or {})

    def expand(self, batches):
        coders.register()
        return (
            batches
            | "Partials"
            >> beam.FlatMap(partials_from_batch, self._grain, self._sources).with_output_types(
                tuple[Key, TrafficPartial]
            )
            | "MergePartials" >> beam.CombinePerKey(MergeTrafficFn())
        )


class WriteAggregates(beam.PTransform):
    """All of a run's partials into the aggregate store in one step (a run's aggregates are small)."""

    def __init__(self, output: str, run_id: str, grain: str, geoip_configured: bool):
        super().__init__()
        self._args = (output, run_id, grain, geoip_configured)

    def expand(self, results):
        output, run_id, grain, geoip = self._args

        def write(all_results):
            return write_run_aggregates(all_results, output, run_id, grain, geoip) if all_results else []

        return results | "Collect" >> beam.combiners.ToList() | "Write" >> beam.FlatMap(write)
