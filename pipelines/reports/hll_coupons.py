"""Standard DataSketches HLL sketches of many values at once, without one Python call per value.

``hll_sketch.update`` costs ~0.2 us per call from Python, and a batch feeds its visitor sketches millions of
values.  Here the values are hashed as the library hashes them (MurmurHash3_x64_128, seed 9001, of the UTF-8
bytes) with numpy, turned into the library's 32-bit coupons, and handed to the library in the serialised form
of a coupon hash set; an ``hll_union`` of that set replays the coupons into an ordinary sketch of the wanted
``lg_k`` (list, set and HLL modes, promotions and HIP estimator all the library's own).  The results are plain
``hll_sketch`` bytes: a value hashed here and the same value given to ``update`` set the same coupon.
"""

from __future__ import annotations

import functools
import struct

import datasketches
import numpy as np
import pyarrow as pa

_SEED = 9001
_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)
_KEY_MASK_26 = (1 << 26) - 1
#: The coupon-set image's own lg_k: large enough that no set of a batch is promoted while it is read.
_CARRIER_LG_K = 21


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _fmix(k: np.ndarray) -> np.ndarray:
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


def _bit_length32(x: np.ndarray) -> np.ndarray:
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)  # exact: a uint32 fits a float64


def _words(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of each string zero-padded to whole 16-byte blocks (one more than its full blocks), as
    little-endian 64-bit words (one row per string), and the byte lengths (0 for null)."""
    n = len(values)
    _, offsets_buffer, data_buffer = values.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int64, n + 1, values.offset * 8)
    raw = np.diff(offsets)
    width = 16 * (int(raw.max()) // 16 + 1)
    padded = np.zeros(n * width, np.uint8)
    if data_buffer is not None and offsets[-1] > offsets[0]:
        data = np.frombuffer(data_buffer, np.uint8, int(offsets[-1] - offsets[0]), int(offsets[0]))
        shift = np.arange(n, dtype=np.int64) * width - (offsets[:-1] - offsets[0])
        padded[np.arange(len(data), dtype=np.int64) + np.repeat(shift, raw)] = data
    lengths = np.where(np.asarray(values.is_valid()), raw, 0) if values.null_count else raw
    return padded.view("<u8").reshape(n, width // 8).astype(np.uint64), lengths


def coupons(values: pa.Array) -> np.ndarray:
    """The HLL coupon of each string of ``values`` (0 for null or empty: ``update`` ignores those).

    Strings are hashed in classes of similar length, so that one long string does not pad all the others.
    """
    values = values.cast(pa.large_string()) if values.type != pa.large_string() else values
    if len(values) == 0:
        return np.zeros(0, np.uint32)
    offsets = np.frombuffer(values.buffers()[1], np.int64, len(values) + 1, values.offset * 8)
    width_class = np.ceil(np.log2(np.diff(offsets) // 16 + 1)).astype(np.int64)
    classes = np.unique(width_class)
    if len(classes) == 1:
        return _coupons(values)
    out = np.zeros(len(values), np.uint32)
    for width in classes.tolist():
        rows = np.flatnonzero(width_class == width)
        out[rows] = _coupons(values.take(pa.array(rows)))
    return out


def _coupons(values: pa.Array) -> np.ndarray:
    n = len(values)
    words, lengths = _words(values)
    blocks = lengths // 16
    h1 = np.full(n, _SEED, np.uint64)
    h2 = np.full(n, _SEED, np.uint64)
    with np.errstate(over="ignore"):
        for block in range(int(blocks.max())):
            rows = np.flatnonzero(blocks > block)
            a, b = h1[rows], h2[rows]
            a ^= _rotl(words[rows, 2 * block] * _C1, 31) * _C2
            a = (_rotl(a, 27) + b) * np.uint64(5) + np.uint64(0x52DCE729)
            b ^= _rotl(words[rows, 2 * block + 1] * _C2, 33) * _C1
            b = (_rotl(b, 31) + a) * np.uint64(5) + np.uint64(0x38495AB5)
            h1[rows], h2[rows] = a, b
        rows = np.arange(n)
        # The tail (the bytes after the last full block) is zero-padded: a zero word mixes to nothing.
        h2 ^= _rotl(words[rows, 2 * blocks + 1] * _C2, 33) * _C1
        h1 ^= _rotl(words[rows, 2 * blocks] * _C1, 31) * _C2
        length = lengths.astype(np.uint64)
        h1 ^= length
        h2 ^= length
        h1 += h2
        h2 += h1
        h1, h2 = _fmix(h1), _fmix(h2)
        h1 += h2
        h2 += h1
    high, low = (h2 >> np.uint64(32)).astype(np.uint32), (h2 & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    leading_zeros = np.where(high > 0, 32 - _bit_length32(high), 64 - _bit_length32(low))
    value = np.minimum(leading_zeros, 62) + 1
    out = ((value.astype(np.uint64) << np.uint64(26)) | (h1 & np.uint64(_KEY_MASK_26))).astype(np.uint32)
    return np.where(lengths > 0, out, np.uint32(0))


_CARRIER = struct.Struct("<BBBBBBBBi")  # preamble ints, serial version, family, lg_k, lg_arr, flags, -, mode, count
_SET_MODE = 1
#: Coupons per carrier (its array must stay within the 2^18 slots a set of lg_k 21 may have).
_CARRIED = 1 << 17
_PADDING = bytes(4 * _CARRIED)


def _carrier(coupons_: memoryview) -> bytes:
    """An updatable coupon-hash-set image holding ``coupons_`` (32-bit ints) in their order.

    The library reads such an image as it is (no hashing), and ``hll_union`` replays its coupons in array
    order into its own sketch (the set's lg_k differs from the union's), skipping the empty (0) slots.
    """
    count = len(coupons_) // 4
    lg_arr = max(5, (count - 1).bit_length())
    header = _CARRIER.pack(3, 1, 7, _CARRIER_LG_K, lg_arr, 0, 0, _SET_MODE, count)
    return header + coupons_ + _PADDING[: 4 * ((1 << lg_arr) - count)]


def group_order(groups: np.ndarray, count: int) -> np.ndarray:
    """Indices that sort ``groups`` (ints in ``0 .. count - 1``) keeping row order within a group (a radix
    sort when the groups fit 16 bits)."""
    return np.argsort(groups.astype(np.uint16) if count <= 1 << 16 else groups, kind="stable")


@functools.cache
def empty_sketch(lg_k: int) -> bytes:
    return datasketches.hll_sketch(lg_k).serialize_compact()


#: The compact image of a sketch in list mode, as the library writes it: preamble ints, serial version, family,
#: lg_k, lg_arr (the list's first size), flags (compact), coupon count, mode (list, target HLL_4), then the
#: distinct coupons in the order they came.
_LIST = struct.Struct("<BBBBBBBB")
#: The most coupons a list holds: an eighth promotes the sketch to a set.
_LIST_MAX = 7


def _list_image(lg_k: int, distinct: dict[int, None]) -> bytes:
    return _LIST.pack(2, 1, 7, lg_k, 3, 8, len(distinct), 0) + struct.pack(f"<{len(distinct)}I", *distinct)


def sketches(groups: np.ndarray, count: int, coupons_: np.ndarray, lg_k: int) -> list[bytes]:
    """Compact ``hll_sketch(lg_k)`` bytes per group ``0 .. count - 1``: the sketch that ``update`` with the
    values of the group, in row order, gives (coupons 0 are values ``update`` ignores).

    A group of at most ``_LIST_MAX`` values (most breakdown values of a batch) is written as the list image
    directly: a union per group costs ~6 us of library calls.
    """
    kept = coupons_ != 0
    groups = groups[kept]
    ends = np.cumsum(np.bincount(groups, minlength=count)).tolist()
    image = memoryview(coupons_[kept][group_order(groups, count)].astype("<u4").tobytes())
    out, start = [], 0
    for end in ends:
        out.append(_from_coupons(image[4 * start : 4 * end], lg_k))
        start = end
    return out


def _from_coupons(image: memoryview, lg_k: int) -> bytes:
    """The compact ``hll_sketch(lg_k)`` that ``update`` gives with values of these coupons (non-zero 32-bit
    ints), in this order."""
    count = len(image) // 4
    if count == 0:
        return empty_sketch(lg_k)
    if count <= _LIST_MAX:
        return _list_image(lg_k, dict.fromkeys(struct.unpack_from(f"<{count}I", image)))
    union = datasketches.hll_union(lg_k)
    for begin in range(0, count, _CARRIED):
        union.update(datasketches.hll_sketch.deserialize(_carrier(image[4 * begin : 4 * (begin + _CARRIED)])))
    return union.get_result().serialize_compact()


_EMPTY_FLAG = 4
_COMPACT_FLAG = 8
_HLL_MODE = 2
#: The order a canonical list or set holds its coupons in: by their product with this odd number, modulo 2^32
#: (a fixed shuffle; in sorted order a HIP estimator fed from them later would see its hashes ranked).
_SHUFFLE = np.uint32(0x9E3779B1)
_UNSHUFFLE = np.uint32(pow(0x9E3779B1, -1, 1 << 32))


def canonical(sketch: bytes | None) -> bytes | None:
    """``sketch`` (a serialised ``hll_sketch``) rewritten to depend only on what it counted, never on the order
    its values arrived in: so neither on how the partials holding it were merged, nor on the worker count.

    An ``hll_union`` fed coupons (from a list or set sketch) feeds its HIP estimator in their order, and a
    sketch promoted to HLL that way keeps an estimate of that order.  So a list or set keeps its distinct
    coupons in a fixed order, and an HLL sketch is merged into itself, which marks it out of order: its
    estimate then comes from its registers alone (the composite estimator, as for every union of two HLL
    sketches).
    """
    return canonical_array(pa.array([sketch], pa.binary()))[0].as_py()


def canonical_array(sketches: pa.Array) -> pa.BinaryArray:
    """``canonical`` of each sketch (nulls stay null): compact lists and sets all at once, their coupons put in
    order where they are (the preamble of such an image depends on their count only); the rest one by one."""
    sketches = sketches.cast(pa.binary())
    data, starts, lengths = _images(sketches)
    present = np.flatnonzero(np.asarray(sketches.is_valid()))
    ordered = (lengths[present] >= 8) & _coupon_images(data, starts[present])
    if not ordered.all():
        values = sketches.to_pylist()
        for i in present[~ordered].tolist():
            values[i] = _canonical_image(values[i])
        sketches = pa.array(values, pa.binary())
        data, starts, lengths = _images(sketches)
    listed = present[_coupon_images(data, starts[present])]
    first = starts[listed] + 4 * data[starts[listed]].astype(np.int64) if len(listed) else listed  # after the preamble
    counts = (starts[listed] + lengths[listed] - first) // 4
    total = int(counts.sum())
    if not total:
        return sketches
    owner = np.repeat(np.arange(len(listed)), counts)
    where = np.repeat(first - 4 * (np.cumsum(counts) - counts), counts) + 4 * np.arange(total)
    where = where[:, None] + np.arange(4)
    with np.errstate(over="ignore"):
        keys = np.sort(owner.astype(np.uint64) << np.uint64(32) | (data[where].view("<u4").ravel() * _SHUFFLE))
        data[where] = (keys.astype(np.uint32) * _UNSHUFFLE).astype("<u4").view(np.uint8).reshape(-1, 4)
    validity, offsets = sketches.buffers()[:2]
    return pa.Array.from_buffers(
        pa.binary(), len(sketches), [validity, offsets, pa.py_buffer(data)], sketches.null_count, sketches.offset
    )


def _images(sketches: pa.BinaryArray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """A writable copy of the array's data buffer, and where each image starts in it and its length."""
    n = len(sketches)
    _, offsets_buffer, data_buffer = sketches.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, n + 1, sketches.offset * 4).astype(np.int64)
    data = np.frombuffer(data_buffer, np.uint8).copy() if data_buffer is not None else None
    return data, offsets[:-1], np.diff(offsets)


def _coupon_images(data: np.ndarray | None, starts: np.ndarray) -> np.ndarray:
    """Which images are compact, non-empty lists or sets (a preamble, then their distinct coupons)."""
    if data is None or not len(starts):
        return np.zeros(len(starts), bool)
    flags, mode = data[starts + 5], data[starts + 7] & 3
    return (flags & (_COMPACT_FLAG | _EMPTY_FLAG) == _COMPACT_FLAG) & (mode != _HLL_MODE)


def _canonical_image(sketch: bytes) -> bytes:
    """An empty sketch as ``empty_sketch``; an HLL one merged into itself; an updatable list or set compacted
    (its coupons left for ``canonical_array`` to order)."""
    lg_k = sketch[3]
    if sketch[5] & _EMPTY_FLAG:
        return empty_sketch(lg_k)
    parsed = datasketches.hll_sketch.deserialize(sketch)
    union = datasketches.hll_union(lg_k)
    union.update(parsed)
    if sketch[7] & 3 == _HLL_MODE:
        union.update(parsed)
    return union.get_result().serialize_compact()
