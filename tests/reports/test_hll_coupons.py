"""Sketches built from coupons hashed with numpy are the sketches ``hll_sketch.update`` builds."""

import random
import string

import datasketches
import numpy as np
import pyarrow as pa
import pytest

from pipelines.reports import hll_coupons


def _updated(values, lg_k: int) -> datasketches.hll_sketch:
    sketch = datasketches.hll_sketch(lg_k)
    for value in values:
        if value is not None:
            sketch.update(value)
    return sketch


def test_each_string_gets_the_coupon_the_library_gives_it():
    rng = random.Random(3)
    alphabet = string.printable + "éü€😀ß"
    values = ["", "1.2.3.4", "2001:db8:4049:193d::6505", None] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 70))) for _ in range(2000)
    ]
    got = hll_coupons.coupons(pa.array(values, pa.string()))
    for value, coupon in zip(values, got.tolist()):
        image = _updated([value], 21).serialize_compact()  # list mode: the coupons follow an 8-byte preamble
        assert coupon == (int.from_bytes(image[8:12], "little") if len(image) > 8 else 0), value
    sliced = pa.array(values, pa.string()).slice(3, 50)
    assert hll_coupons.coupons(sliced).tolist() == got[3:53].tolist()


@pytest.mark.parametrize("distinct", [1, 7, 8, 96, 97, 500, 5000])
@pytest.mark.parametrize("lg_k", [10, 12])
def test_a_group_sketch_estimates_what_updating_with_its_values_in_row_order_gives(monkeypatch, distinct, lg_k):
    """List, set and HLL mode, with repeats, and a group carried in several images."""
    monkeypatch.setattr(hll_coupons, "_CARRIED", 64)
    rng = np.random.default_rng(distinct)
    addresses = [f"10.{i >> 8 & 255}.{i & 255}.{lg_k}" for i in rng.integers(0, 1 << 16, distinct).tolist()]
    values = [*addresses, None, "", *addresses[: distinct // 2]]
    groups = rng.integers(0, 3, len(values))
    got = hll_coupons.sketches(groups, 4, hll_coupons.coupons(pa.array(values, pa.string())), lg_k)
    for group, sketch in enumerate(got):
        expected = _updated([v for v, g in zip(values, groups.tolist()) if g == group], lg_k)
        ours = datasketches.hll_sketch.deserialize(sketch)
        assert (ours.lg_config_k, ours.get_estimate()) == (lg_k, expected.get_estimate())
    assert got[3] == datasketches.hll_sketch(lg_k).serialize_compact()  # a group without values


def test_small_groups_written_directly_are_the_bytes_the_library_writes(monkeypatch):
    """Groups of up to seven values (repeats included) skip the library; their images must be its own."""
    rng = np.random.default_rng(11)
    values = [f"192.0.2.{i}" for i in rng.integers(0, 12, 430).tolist()]
    groups = np.concatenate([rng.integers(0, 120, 400), np.full(30, 120)])  # mostly small groups, one large
    assert set(range(1, 9)) <= set(np.bincount(groups).tolist())
    coupons = hll_coupons.coupons(pa.array(values, pa.string()))
    for lg_k in (10, 12):
        direct = hll_coupons.sketches(groups, 122, coupons, lg_k)
        monkeypatch.setattr(hll_coupons, "_LIST_MAX", 0)
        assert direct == hll_coupons.sketches(groups, 122, coupons, lg_k)
        monkeypatch.undo()


def _merged(parts: list[list[str]], lg_k: int) -> bytes:
    union = datasketches.hll_union(lg_k)
    for part in parts:
        union.update(_updated(part, lg_k))
    return union.get_result().serialize_compact()


@pytest.mark.parametrize("distinct", [0, 1, 7, 8, 96, 97, 300, 5000])
@pytest.mark.parametrize("lg_k", [10, 12])
def test_canonical_sketches_of_the_same_values_are_the_same_bytes_however_merged(distinct, lg_k):
    """List, set and HLL mode: any order and any merge tree give one image, with the estimate of the values'
    coupons (lists and sets: exact) or of the registers (HLL: as a union of HLL sketches estimates)."""
    rng = random.Random(distinct)
    values = [f"198.51.{i >> 8}.{i & 255}" for i in range(distinct)]
    images = set()
    for _ in range(4):
        rng.shuffle(values)
        cuts = sorted(rng.sample(range(distinct + 1), min(3, distinct + 1)))
        parts = [values[a:b] for a, b in zip([0, *cuts], [*cuts, distinct])]
        for sketch in (_merged([values], lg_k), _merged(parts, lg_k), _updated(values, lg_k).serialize_updatable()):
            images.add(hll_coupons.canonical(sketch))
    (image,) = images
    estimate = datasketches.hll_sketch.deserialize(image).get_estimate()
    if distinct <= 96:
        assert estimate == _updated(values, lg_k).get_estimate()
    if distinct >= 300 and lg_k == 10:
        halves = _merged([values[: distinct // 2]], lg_k), _merged([values[distinct // 2 :]], lg_k)
        union = datasketches.hll_union(lg_k)
        for half in halves:
            union.update(datasketches.hll_sketch.deserialize(half))
        assert estimate == union.get_estimate()
    assert hll_coupons.canonical(image) == image


def test_canonical_array_is_canonical_of_each_sketch():
    values = [f"203.0.113.{i}" for i in range(200)]
    sketches = [_merged([values[:n]], lg_k) for n in (0, 1, 5, 40, 200) for lg_k in (10, 12)]
    sketches += [None, _updated(values[:30], 10).serialize_updatable(), sketches[3]]
    column = pa.array([b"", *sketches], pa.binary()).slice(1)
    assert hll_coupons.canonical_array(column).to_pylist() == [hll_coupons.canonical(s) for s in sketches]
    assert hll_coupons.canonical(None) is None
