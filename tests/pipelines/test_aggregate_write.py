"""A run's aggregates: each key's store rows built where it was merged, on one worker or two; one store file pair."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import apache_beam as beam
import datasketches
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

from bench.reports import day_batch
from pipelines.aggregate import STALE_BATCHES, AggregateTraffic, MergeTrafficFn, PrecombineFn, WriteAggregates
from pipelines.reports.store import store_tables
from pipelines.reports.traffic import TrafficPartial, partials_from_batch
from retention.layout import aggregates_dir, staging_dir

SOURCES = {"/logs/access-0.log": "ledger-key-0"}


@pytest.fixture(scope="module")
def batches() -> list[pa.RecordBatch]:
    """A day of three hosts (up to 72 keys), in batches whose keys overlap."""
    batch = day_batch(0, hosts=3, per_hour=40, rng=np.random.default_rng(3))
    return [batch.slice(start, 1000) for start in range(0, batch.num_rows, 1000)]


def expected_tables(batches) -> tuple[pa.Table, pa.Table]:
    merged: dict = defaultdict(TrafficPartial)
    for batch in batches:
        for key, partial in partials_from_batch(batch, "hour", SOURCES):
            merged[key].merge(partial)
    return store_tables(list(merged.items()), "r1", "hour", False)


def run_and_read(
    batches, output: str, options: PipelineOptions | None = None, staged: bool = False
) -> tuple[pa.Table, pa.Table]:
    with TestPipeline(options=options) as p:
        (
            p
            | beam.Create(batches)
            | AggregateTraffic("hour", SOURCES, (output, "r1") if staged else None)
            | WriteAggregates(output, "r1", "hour", geoip_configured=False)
        )
    directory = aggregates_dir(output)
    files = sorted(f.name for f in Path(directory).iterdir())
    assert files == ["breakdown-r1.parquet", "traffic-r1.parquet"]  # one pair per run, however many keys
    return pq.read_table(f"{directory}/traffic-r1.parquet"), pq.read_table(f"{directory}/breakdown-r1.parquet")


def estimates(column: pa.ChunkedArray, kind) -> list:
    return [kind.deserialize(b).get_estimate() if b else None for b in column.to_pylist()]


def assert_same_store(got: tuple[pa.Table, pa.Table], want: tuple[pa.Table, pa.Table], in_order: bool) -> None:
    """Rows and counts exact (the order of a key's breakdown values is the order they were merged in);
    visitor estimates equal; response-time quantiles within KLL's rank error."""
    for table, expected in zip(got, want):
        assert table.schema.metadata == expected.schema.metadata
        table = table.cast(expected.schema)  # Parquet names list items "element"
        if not in_order:
            by = [
                (n, "ascending")
                for n in ("bucket_start", "url_domain", "dimension", "value")
                if n in table.schema.names
            ]
            table, expected = table.sort_by(by), expected.sort_by(by)
        exact = [n for n in table.column_names if not n.endswith(("_hll", "_kll"))]
        assert table.select(exact).equals(expected.select(exact))
        assert estimates(table["visitors_hll"], datasketches.hll_sketch) == pytest.approx(
            estimates(expected["visitors_hll"], datasketches.hll_sketch), rel=1e-3
        )
    medians = [
        [datasketches.kll_doubles_sketch.deserialize(b).get_quantile(0.5) for b in t["response_ms_kll"].to_pylist()]
        for t in (got[0], want[0])
    ]
    assert medians[0] == pytest.approx(medians[1], rel=0.05)


def test_every_key_lands_in_the_run_s_one_store_file_pair_in_key_order(batches, tmp_path):
    got = run_and_read(batches, str(tmp_path / "out"))
    want = expected_tables(batches)
    assert got[0].num_rows > 24 * 2 and got[1].num_rows > got[0].num_rows
    assert_same_store(got, want, in_order=True)


def test_two_worker_processes_store_what_one_stores(batches, tmp_path):
    """The keys are merged and turned into store rows on both workers; the run's files hold them all."""
    two = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    got = run_and_read(batches, str(tmp_path / "two"), two)
    assert_same_store(got, run_and_read(batches, str(tmp_path / "one")), in_order=False)


def test_a_bounded_run_s_partials_and_rows_cross_the_shuffle_as_sealed_staging_files(batches, tmp_path):
    """What two workers hand on is file names: the store is the same, and the run's staging folder, which a
    killed run leaves behind until its rerun, holds nothing readable (no host name, path or agent)."""
    two = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    output = str(tmp_path / "staged")
    got = run_and_read(batches, output, two, staged=True)
    assert_same_store(got, expected_tables(batches), in_order=True)
    staged = list(Path(staging_dir(output, "r1")).glob("*.staged"))
    assert len(staged) > 24 * 3  # a file per handed-on partial and per key's rows
    host = batches[0].column("url_domain")[0].as_py().encode()
    assert host and not any(host in f.read_bytes() for f in staged)


def test_a_log_read_in_time_order_holds_only_its_last_hours_while_it_is_read():
    """Each hour's partial is handed on once later batches have left it behind (the fused stage's memory
    no longer grows with the hours a run covers), and the store is what waiting for the end gives."""
    day = day_batch(0, hosts=1, per_hour=120, rng=np.random.default_rng(5))
    day = day.take(pa.compute.sort_indices(day["timestamp"]))
    batches = [day.slice(start, 50) for start in range(0, day.num_rows, 50)]
    fn = PrecombineFn("hour", SOURCES)
    fn.start_bundle()
    early, held = [], []
    for batch in batches:
        early += fn.process(batch)
        held.append(len(fn._live))
    rest = [windowed.value for windowed in fn.finish_bundle()]
    assert max(held) <= 8 and len(early) >= 24 - STALE_BATCHES and len(rest) <= STALE_BATCHES, held
    partials: dict = defaultdict(list)
    for key, partial in early + rest:
        partials[key].append(partial)
    merged = [(key, MergeTrafficFn().apply(ps)) for key, ps in partials.items()]
    assert_same_store(store_tables(merged, "r1", "hour", False), expected_tables(batches), in_order=True)
