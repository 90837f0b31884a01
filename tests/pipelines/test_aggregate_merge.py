"""The aggregate step's live accumulator merges partials as ``TrafficPartial.merge`` does, serialising once."""

from __future__ import annotations

import pickle

import datasketches
import numpy as np
import pytest

from bench.reports import day_batch
from pipelines.aggregate import LiveTraffic, MergeTrafficFn
from pipelines.reports import traffic
from pipelines.reports.privacy import OTHER
from pipelines.reports.store import store_rows
from pipelines.reports.traffic import TrafficPartial, partials_from_batch


def _partials(rows_per_hour: int = 300, pieces: int = 6):
    batch = day_batch(0, hosts=1, per_hour=rows_per_hour, rng=np.random.default_rng(7))
    step = batch.num_rows // pieces + 1
    out = []
    for start in range(0, batch.num_rows, step):
        out += partials_from_batch(batch.slice(start, step), "day", {})
    assert len({key for key, _ in out}) == 1 and len(out) == pieces
    return [p for _, p in out]


def _estimate(sketch: bytes | None) -> float:
    return datasketches.hll_sketch.deserialize(sketch).get_estimate() if sketch else 0.0


def _same(a: dict, b: dict) -> None:
    """Exact counts; sketch estimates as close as two merge orders of the same sketches give (they are
    approximate: KLL compacts at random, an HLL union's estimate depends a little on how it was merged)."""
    assert a["counts"] == b["counts"] and a["seconds"] == b["seconds"]
    assert a["visitors"] == pytest.approx(b["visitors"], rel=0.01)
    assert a["response_rank"] == pytest.approx(b["response_rank"], rel=0.05)
    assert a["breakdown"].keys() == b["breakdown"].keys()
    for dimension, values in a["breakdown"].items():
        assert values.keys() == b["breakdown"][dimension].keys()
        for value, (n, size, estimate) in values.items():
            assert (n, size) == b["breakdown"][dimension][value][:2]
            assert estimate == pytest.approx(b["breakdown"][dimension][value][2], rel=0.05)  # lg_k 10: 3 % error


def _view(p: TrafficPartial) -> dict:
    p.compact_seconds()
    return {
        "counts": (p.requests, p.bytes, p.bot_requests, dict(p.status_classes), p.first_offset, p.last_offset),
        "seconds": (p.seconds.tolist(), p.second_requests.tolist(), p.second_bytes.tolist()),
        "visitors": round(_estimate(p.visitors), 6),
        "response_rank": datasketches.kll_doubles_sketch.deserialize(p.response_ms).get_quantile(0.5),
        "breakdown": {
            d: {v: (n, size, round(_estimate(s), 6)) for v, (n, size, s) in values.items()}
            for d, values in p.breakdown.items()
        },
    }


def _plain(partials) -> TrafficPartial:
    merged = TrafficPartial()
    for p in partials:
        merged.merge(p)
    return merged


@pytest.mark.parametrize("merge_values", [traffic.MERGE_VALUES, 20])
def test_merging_live_gives_what_merging_partials_gives(monkeypatch, merge_values):
    """In the same order, rare values folded into "(other)" at the same points too."""
    monkeypatch.setattr(traffic, "MERGE_VALUES", merge_values)
    fn = MergeTrafficFn()
    accumulator = fn.create_accumulator()
    for p in _partials():
        accumulator = fn.add_input(accumulator, p)
    assert isinstance(accumulator, LiveTraffic)
    merged = fn.extract_output(accumulator)
    assert "path" in merged.breakdown and len(merged.breakdown["path"]) <= merge_values
    _same(_view(merged), _view(_plain(_partials())))


def _crossed(accumulator: LiveTraffic) -> TrafficPartial:
    """An accumulator as it crosses a shuffle: materialised and pickled (as a staged partial is)."""
    return pickle.loads(pickle.dumps(accumulator.materialize()))


def test_accumulators_cross_the_shuffle_as_partials_and_merge_in_any_grouping():
    fn = MergeTrafficFn()
    odd, even = fn.create_accumulator(), fn.create_accumulator()
    for i, p in enumerate(_partials()):
        fn.add_input(odd if i % 2 else even, p)
    shuffled = _crossed(even)
    assert isinstance(shuffled, TrafficPartial)
    merged = fn.extract_output(fn.merge_accumulators([odd, shuffled]))
    _same(_view(merged), _view(_plain(_partials())))


def _stored(partial: TrafficPartial) -> tuple[list[tuple], list[float]]:
    """A key's traffic and breakdown rows as the store writes them, and the visitor estimates of each."""
    traffic, rows = store_rows((0, "", "log"), partial, "run", "day", False)
    counted = list(zip(*(rows.column(c).to_pylist() for c in ("dimension", "value", "requests", "bytes"))))
    sketches = traffic.column("visitors_hll").to_pylist() + rows.column("visitors_hll").to_pylist()
    return counted, [_estimate(s) for s in sketches]


def _same_rows(a: tuple[list[tuple], list[float]], b: tuple[list[tuple], list[float]]) -> None:
    assert a[0] == b[0]
    assert a[1] == b[1]


def _combined(groups: list[list[TrafficPartial]]) -> TrafficPartial:
    """As Beam may combine: each group added into its own accumulator on a worker, then the accumulators
    merged after crossing the shuffle."""
    fn = MergeTrafficFn()
    accumulators = []
    for group in groups:
        accumulator = fn.create_accumulator()
        for p in group:
            accumulator = fn.add_input(accumulator, p)
        accumulators.append(_crossed(accumulator))
    return fn.extract_output(fn.merge_accumulators(accumulators))


def test_stored_rows_do_not_depend_on_how_partials_were_grouped_or_ordered(monkeypatch):
    """One worker or two, any merge order: the same values are kept and the same folded into "(other)"
    (a rare value that one partial ranks low and another high once ended in "(other)" or not by merge order),
    with the same visitor estimates (a union's estimate once depended on the order it was fed)."""
    monkeypatch.setattr(traffic, "STORED_VALUES", 20)
    partials = _partials(pieces=8)
    expected = _stored(_combined([partials]))
    paths = [row for row in expected[0] if row[0] == "path"]
    assert len(paths) == 20 and paths[-1][1] == OTHER and paths[0][2] >= paths[1][2] >= paths[-2][2]
    rng = np.random.default_rng(3)
    for _ in range(6):
        order = [partials[i] for i in rng.permutation(len(partials))]
        cut = sorted(rng.choice(np.arange(1, len(order)), 2, replace=False))
        _same_rows(_stored(_combined([order[: cut[0]], order[cut[0] : cut[1]], order[cut[1] :]])), expected)
        _same_rows(_stored(_plain(order)), expected)  # the live report windows merge this way


def test_accumulators_of_different_keys_share_their_value_strings():
    """Every hour's accumulator lives until the input is read: a path seen in all of them is held once."""
    fn = MergeTrafficFn()
    accumulators = [fn.add_input(fn.create_accumulator(), p) for p in _partials(pieces=2)]
    paths = [{v: v for v in a.slots["path"]} for a in accumulators]
    common = paths[0].keys() & paths[1].keys()
    assert common and all(paths[0][v] is paths[1][v] for v in common)
