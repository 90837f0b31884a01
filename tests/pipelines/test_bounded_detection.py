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
from pipelines.detect import SHARD_WEIGHT_BYTES, Detect, FoldStats, fold_spilled, hits_by_shard, spread_shards
from pipelines.spill import SpilledHits, SpillWriter, dumps, new_key
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


def _spilled(path: str, size: int) -> SpilledHits:
    return SpilledHits(path, ((0, size, 0, 0),))


def test_local_workers_fold_groups_of_shards_of_about_equal_size():
    heavy, rest = 28 << 20, [10 << 20, 7 << 20, 4 << 20, 2 << 20, 1 << 20, 1 << 19, 1 << 18]
    spills = [(14, _spilled("a14", heavy // 2)), (14, _spilled("b14", heavy // 2))]
    spills += [(shard, _spilled(f"s{shard}", size)) for shard, size in enumerate(rest)]
    groups = spread_shards(spills, 2)
    assert [slot for slot, _ in groups] == [0, 1]
    folded = [shard for _, group in groups for shard, _ in group]
    assert sorted(folded) == sorted({shard for shard, _ in spills}), "every shard folded once"
    assert [f.path for _, group in groups for shard, files in group if shard == 14 for f in files] == ["a14", "b14"]
    loads = [sum(SHARD_WEIGHT_BYTES + f.size for _, files in group for f in files) for _, group in groups]
    assert max(loads) / min(loads) < 1.15, loads  # by shard number in turn: 35.7 MiB against 17.6
    assert spread_shards(spills, 2) == groups  # the same groups whatever the run
    assert len(spread_shards(spills[:1], 2)) == 1  # no empty group to fold


def test_the_local_runner_hands_each_worker_one_key_when_there_are_as_many_keys_as_workers():
    """Beam internal (``GroupingBuffer.partition``, apache-beam 2.77): keys go to the workers in turn, so one
    group of shards per worker lands one on each, in whatever order the groups reached the shuffle."""
    from apache_beam import coders
    from apache_beam.runners.portability.fn_api_runner.execution import GroupingBuffer
    from apache_beam.transforms import core
    from apache_beam.transforms.window import GlobalWindow, GlobalWindows
    from apache_beam.utils.windowed_value import WindowedValue

    kv = coders.TupleCoder([coders.VarIntCoder(), coders.BytesCoder()])
    pre = coders.WindowedValueCoder(kv, coders.coders.GlobalWindowCoder())
    post = coders.WindowedValueCoder(
        coders.TupleCoder([coders.VarIntCoder(), coders.IterableCoder(coders.BytesCoder())]),
        coders.coders.GlobalWindowCoder(),
    )
    for order in ([0, 1], [1, 0]):
        buffer = GroupingBuffer(pre, post, core.Windowing(GlobalWindows()))
        for slot in order:
            buffer.append(pre.encode(WindowedValue((slot, b"group"), 0, [GlobalWindow()])))
        parts = buffer.partition(2)
        keys = [[post.decode(data).value[0] for data in part] for part in parts]
        assert sorted(map(len, keys)) == [1, 1], keys


def test_a_bounded_run_on_local_workers_folds_groups_of_shards_into_the_same_alerts(tmp_path):
    rules = load_rules()
    batches = batches_with_offsets(traffic())
    want = expected(rules, batches)
    with beam.Pipeline(runner="FnApiRunner") as p:
        detect = Detect(rules, shards=4, bounded=True, spill=(str(tmp_path), new_run_id()), workers=2)
        alerts = p | beam.Create(batches) | detect | beam.Map(lambda a: comparable([a])[0])
        assert_that(alerts, equal_to(comparable(want)))
