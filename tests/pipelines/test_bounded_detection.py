"""A bounded run's detection: hits spilled to the run's staging folder, only file names shuffled, each shard
folded oldest record first with a bounded number of unfolded hits, and the same alerts as one fold at the end."""

from __future__ import annotations

import gc
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from alerts.observe import Observer, kept_whole
from alerts.rules import load_rules
from pipelines.batch import new_run_id
from pipelines.detect import Detect, FoldStats, fold_spilled, hits_by_shard
from pipelines.spill import SpillWriter, dumps, new_key
from retention import layout
from tests.alerts.test_detect_pipeline import batches_with_offsets, comparable, expected, traffic

RUN_ID = new_run_id()
KEY = new_key()


def test_a_bounded_run_spills_hits_and_raises_the_pure_replays_alerts(tmp_path):
    rules = load_rules()
    batches = batches_with_offsets(traffic())
    want = expected(rules, batches)
    run_id = new_run_id()
    with beam.Pipeline(runner="FnApiRunner") as p:
        detect = Detect(rules, shards=4, bounded=True, spill=(str(tmp_path), run_id))
        alerts = p | beam.Create(batches) | detect | beam.Map(lambda a: comparable([a])[0])
        assert_that(alerts, equal_to(comparable(want)))
    assert not list(Path(layout.staging_dir(str(tmp_path), run_id)).glob("*.hits")), "folded shards' files go"


def test_spilled_hits_are_sealed_at_rest(tmp_path):
    rules = load_rules()
    by_shard = _spill(tmp_path, rules, batches_with_offsets(traffic()), shards=1)
    data = b"".join(Path(s.path).read_bytes() for s in by_shard.values())
    assert data and b"192.0.2.66" not in data and b"UNION" not in data


def _spill(tmp_path, rules, batches, shards):
    """Each batch as its own record (as a stream of small bundles would), in one file per shard."""
    observer, whole = Observer(rules, "access"), kept_whole(rules, "access")
    writers: dict[int, SpillWriter] = {}
    for batch in batches:
        for shard, parts in hits_by_shard(observer, whole, shards, batch).items():
            writer = writers.setdefault(shard, SpillWriter(str(tmp_path), RUN_ID, KEY))
            writer.append(dumps(parts), min(int(h.ts.min()) for h in parts), max(int(h.ts.max()) for h in parts))
    return {shard: writer.close() for shard, writer in writers.items()}


def test_a_shard_folds_as_its_records_come_and_holds_only_a_stretch_of_hits(tmp_path):
    rules = load_rules()
    pieces = traffic()
    batches = batches_with_offsets([piece[k : k + 20] for piece in pieces for k in range(0, len(piece), 20)])
    want = expected(rules, batches)
    by_shard = _spill(tmp_path, rules, batches, shards=1)
    stats = FoldStats()
    got = fold_spilled(rules, list(by_shard.values()), KEY, fold_rows=30, stats=stats)
    assert comparable(got) == comparable(want)
    total = sum(len(r) for s in by_shard.values() for r in s.records)
    assert total > 0
    all_rows = sum(sum(len(h) for h in Observer(rules, "access").observe(b)) for b in batches)
    assert stats.peak_pending_rows < all_rows / 4, "the fold folded as it went instead of holding every hit"
    assert stats.late_rows == 0


def test_records_are_folded_oldest_first_whatever_order_the_files_came_in(tmp_path):
    rules = load_rules()
    batches = batches_with_offsets(traffic())
    want = expected(rules, batches)
    early = _spill(tmp_path, rules, batches[:2], shards=1)
    late = _spill(tmp_path, rules, batches[2:], shards=1)
    got = fold_spilled(rules, [*late.values(), *early.values()], KEY, fold_rows=1)
    assert comparable(got) == comparable(want)


def test_a_fold_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    """Folding pauses Python's cyclic collector (its bursts of small objects set off costly collections) and
    hands it back on or off as the worker had it."""
    rules = load_rules()
    batches = batches_with_offsets(traffic())
    spills = list(_spill(tmp_path, rules, batches, shards=1).values())
    assert gc.isenabled()
    assert comparable(fold_spilled(rules, spills, KEY)) == comparable(expected(rules, batches))
    assert gc.isenabled()
    gc.disable()
    try:
        fold_spilled(rules, spills, KEY)
        assert not gc.isenabled()
    finally:
        gc.enable()
