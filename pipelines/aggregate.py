"""Aggregate transform: access events to capacity reports (Parquet, CSV, HTML) without personal data."""

from __future__ import annotations

import io

import apache_beam as beam
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines import coders
from pipelines.reports.html import render_report
from pipelines.reports.traffic import TrafficPartial, finalize, partials_from_batch
from schemas import TRAFFIC_AGGREGATE, TRAFFIC_BREAKDOWN


class MergeTrafficFn(beam.CombineFn):
    """Merge partials of one (bucket, host) in any order."""

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
        return accumulator


class AggregateTraffic(beam.PTransform):
    """Access-event batches in; one ``(aggregate_row, breakdown_rows)`` per bucket and host out."""

    def __init__(self, bucket: str = "hour"):
        super().__init__()
        self._bucket = bucket

    def expand(self, batches):
        coders.register()
        bucket = self._bucket
        return (
            batches
            | "Partials"
            >> beam.FlatMap(partials_from_batch, bucket).with_output_types(tuple[tuple[int, str], TrafficPartial])
            | "MergePartials" >> beam.CombinePerKey(MergeTrafficFn())
            | "Finalize" >> beam.MapTuple(lambda key, partial: finalize(key, partial, bucket))
        )


def _write_atomically(path: str, data: bytes) -> None:
    staging = f"{path}.tmp"
    with FileSystems.create(staging) as handle:
        handle.write(data)
    FileSystems.rename([staging], [path])


def write_reports(results: list[tuple[dict, list[dict]]], directory: str, run_id: str) -> list[str]:
    """Write ``traffic-<run>.parquet|csv``, ``breakdown-<run>.parquet|csv`` and ``report-<run>.html``."""
    aggregates = sorted((row for row, _ in results), key=lambda r: (r["bucket_start"], r["url_domain"] or ""))
    breakdown = [b for _, rows in results for b in rows]
    breakdown.sort(key=lambda r: (r["bucket_start"], r["url_domain"] or "", r["dimension"], -r["requests"]))
    written = []
    for name, schema, rows in (("traffic", TRAFFIC_AGGREGATE, aggregates), ("breakdown", TRAFFIC_BREAKDOWN, breakdown)):
        table = pa.Table.from_pylist(rows, schema=schema)
        for suffix in ("parquet", "csv"):
            sink = io.BytesIO()
            if suffix == "parquet":
                pq.write_table(table, sink, compression="zstd")
            else:
                pacsv.write_csv(table, sink)
            path = FileSystems.join(directory, f"{name}-{run_id}.{suffix}")
            _write_atomically(path, sink.getvalue())
            written.append(path)
    html = FileSystems.join(directory, f"report-{run_id}.html")
    _write_atomically(html, render_report(aggregates, breakdown).encode("utf-8"))
    written.append(html)
    return written


class WriteReports(beam.PTransform):
    """All report rows of a run to ``<output>/reports/`` in one step (reports are small)."""

    def __init__(self, output: str, run_id: str):
        super().__init__()
        self._directory = FileSystems.join(output, "reports")
        self._run_id = run_id

    def expand(self, results):
        directory, run_id = self._directory, self._run_id

        def write(all_results):
            FileSystems.mkdirs(directory) if not FileSystems.exists(directory) else None
            return write_reports(all_results, directory, run_id)

        return results | "Collect" >> beam.combiners.ToList() | "Write" >> beam.FlatMap(write)
