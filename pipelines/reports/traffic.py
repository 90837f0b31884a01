"""Mergeable traffic partials: from one batch of access events to what the aggregate store keeps.

A batch yields one ``TrafficPartial`` per (bucket, host, input source); partials
merge in any order (so Beam can combine them on many workers, and a report can
merge the partials of many runs).  Distinct visitors are HyperLogLog sketches
(so no address is ever kept), response times a KLL sketch, per-second load the
exact sparse series (so peaks and 5-minute billing samples stay exact across
runs and hosts).  Each breakdown value carries its own small visitor sketch:
the report shows a value only when enough distinct visitors share it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import datasketches
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.reports import hll_coupons
from pipelines.reports.privacy import OTHER, generalise_paths, referrer_domains

#: Stored grains (the report can roll them up to any coarser bucket, week included).
GRAIN_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
#: Visitors per bucket: relative standard error about 1.04/sqrt(2^12) = 1.6 %.
HLL_LG_K = 12
#: Visitors per breakdown value: small sketches (exact in list mode up to a few hundred visitors).
VALUE_HLL_LG_K = 10
#: Response-time quantiles: normalised rank error about 1.65 % (KLL, k = 200).
KLL_K = 200
#: Distinct values the store keeps per key and dimension; the rarest beyond it are merged into "(other)".
STORED_VALUES = 1000
#: Distinct values a partial keeps per dimension while being merged.  Folding only once, over a key's whole
#: counts (``stored_breakdown``), makes the store independent of how a run's partials were cut and merged (so
#: of the worker count); only a key with more values than this folds early, its rarest in an order-dependent
#: way, so that memory stays bounded.
MERGE_VALUES = 16 * STORED_VALUES
UNKNOWN = "(unknown)"

DIMENSIONS = ("browser", "crawler", "os", "device", "country", "status", "path", "missing_path", "referrer")


@dataclasses.dataclass
class TrafficPartial:
    requests: int = 0
    bytes: int = 0
    bot_requests: int = 0
    status_classes: Counter = dataclasses.field(default_factory=Counter)
    #: Per-second load as parallel arrays (epoch second, requests, bytes); seconds may repeat until compacted.
    seconds: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    second_requests: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    second_bytes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    visitors: bytes | None = None  # serialised HLL sketch
    response_ms: bytes | None = None  # serialised KLL sketch of response times in milliseconds
    #: Byte offsets of the first and last line of the source that this partial counts.
    first_offset: int = -1
    last_offset: int = -1
    #: dimension -> value -> [requests, bytes, visitor HLL bytes]
    breakdown: dict[str, dict[str, list]] = dataclasses.field(default_factory=dict)

    def merge_counts(self, other: TrafficPartial) -> None:
        """Add ``other``'s counts, per-second series and offsets (everything but the sketches and breakdowns)."""
        self.requests += other.requests
        self.bytes += other.bytes
        self.bot_requests += other.bot_requests
        self.status_classes.update(other.status_classes)
        self.seconds = np.concatenate([self.seconds, other.seconds])
        self.second_requests = np.concatenate([self.second_requests, other.second_requests])
        self.second_bytes = np.concatenate([self.second_bytes, other.second_bytes])
        if len(self.seconds) > 8192:
            self.compact_seconds()
        if other.first_offset >= 0:
            self.first_offset = (
                other.first_offset if self.first_offset < 0 else min(self.first_offset, other.first_offset)
            )
            self.last_offset = max(self.last_offset, other.last_offset)

    def merge(self, other: TrafficPartial) -> TrafficPartial:
        self.merge_counts(other)
        self.visitors = merge_hll(self.visitors, other.visitors, HLL_LG_K)
        self.response_ms = merge_kll(self.response_ms, other.response_ms)
        for dimension, values in other.breakdown.items():
            mine = self.breakdown.setdefault(dimension, {})
            for value, (requests, size, sketch) in values.items():
                slot = mine.get(value)
                if slot is None:
                    mine[value] = [requests, size, sketch]
                else:
                    slot[0] += requests
                    slot[1] += size
                    slot[2] = merge_hll(slot[2], sketch, VALUE_HLL_LG_K)
            if len(mine) > MERGE_VALUES:
                self.breakdown[dimension] = fold_rare(mine, MERGE_VALUES // 2)
        return self

    def compact_seconds(self) -> None:
        """Sum the entries of each second so the arrays hold every second once."""
        self.seconds, self.second_requests, self.second_bytes = per_second_totals(
            self.seconds, self.second_requests, self.second_bytes
        )


def by_requests(item: tuple[str, list]) -> tuple[int, str]:
    """Most requested first, equal counts by value: a ranking that depends on the counts only, never on the
    order in which values arrived."""
    return -item[1][0], item[0]


def fold_rare(values: dict[str, list], keep: int) -> dict[str, list]:
    """The ``keep`` most requested values (``by_requests``, in that order), the others summed into "(other)"
    (nothing is dropped)."""
    ranked = sorted(((v, c) for v, c in values.items() if v != OTHER), key=by_requests)
    kept = dict(ranked[: keep - 1])
    rest = ranked[keep - 1 :] + ([(OTHER, values[OTHER])] if OTHER in values else [])
    if rest:
        other = [0, 0, None]
        for _, (requests, size, sketch) in rest:
            other[0] += requests
            other[1] += size
            other[2] = merge_hll(other[2], sketch, VALUE_HLL_LG_K)
        kept[OTHER] = other
    return kept


def stored_breakdown(breakdown: dict[str, dict[str, list]]) -> list[tuple[str, dict[str, list]]]:
    """What the store keeps of a key's merged breakdown: per dimension (by name) at most ``STORED_VALUES``
    values ranked ``by_requests``, "(other)" last."""
    out = []
    for dimension, values in sorted(breakdown.items()):
        if len(values) > STORED_VALUES:
            values = fold_rare(values, STORED_VALUES)
        else:
            values = dict(sorted(values.items(), key=lambda kv: (kv[0] == OTHER, *by_requests(kv))))
        out.append((dimension, values))
    return out


def per_second_totals(seconds: np.ndarray, requests: np.ndarray, sizes: np.ndarray):
    unique, where = np.unique(seconds, return_inverse=True)
    return (
        unique,
        np.bincount(where, weights=requests, minlength=len(unique)).astype(np.int64),
        np.bincount(where, weights=sizes, minlength=len(unique)).astype(np.int64),
    )


def merge_hll(a: bytes | None, b: bytes | None, lg_k: int = HLL_LG_K) -> bytes | None:
    if a is None or b is None:
        return a or b
    union = datasketches.hll_union(lg_k)
    union.update(datasketches.hll_sketch.deserialize(a))
    union.update(datasketches.hll_sketch.deserialize(b))
    return union.get_result().serialize_compact()


def merge_kll(a: bytes | None, b: bytes | None) -> bytes | None:
    if a is None or b is None:
        return a or b
    sketch = datasketches.kll_doubles_sketch.deserialize(a)
    sketch.merge(datasketches.kll_doubles_sketch.deserialize(b))
    return sketch.serialize()


def _major(version: pa.Array) -> pa.Array:
    return pc.struct_field(pc.extract_regex(version, r"^(?P<m>[^.]+)"), [0])


def _joined(name: pa.Array, version: pa.Array) -> pa.Array:
    with_version = pc.binary_join_element_wise(name, _major(version), " ")
    return pc.fill_null(pc.coalesce(with_version, name), UNKNOWN)


def _column(table: pa.Table, name: str, type_: pa.DataType | None = None) -> pa.Array:
    if name in table.column_names:
        column = table.column(name)
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return pa.nulls(table.num_rows, type_ or pa.string())


#: Dense codes per event (-1: not counted) and the value each code stands for.
Coded = tuple[np.ndarray, pa.Array]


def _codes(values: pa.Array, nulls: bool = False) -> Coded:
    """Dense codes numbered by first appearance and the distinct values they stand for; a null is -1, or
    (``nulls``) a value of its own."""
    encoded = pc.dictionary_encode(values, null_encoding="encode" if nulls else "mask")
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def _dense(codes: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """``codes`` (ints in ``0 .. space - 1``) renumbered densely by first appearance, and the code of each."""
    if space > 4 * len(codes) + 1024:
        dense, distinct = _codes(pa.array(codes, pa.int64()))
        return dense, distinct.to_numpy()
    first = np.full(space, len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    distinct = np.argsort(first, kind="stable")[: np.count_nonzero(first < len(codes))]
    rank = np.empty(space, np.int64)
    rank[distinct] = np.arange(len(distinct))
    return rank[codes], distinct


def _through(fn, *columns: pa.Array) -> Coded:
    """``fn`` of the columns (null in, null out: -1), computed once per distinct combination of their values."""
    combined, distinct = np.zeros(len(columns[0]), np.int64), []
    for column in columns:
        codes, values = _codes(column, nulls=True)
        combined = combined * len(values) + codes
        distinct.append(values)
    if len(columns) == 1:
        combination, index = combined, np.arange(len(distinct[0]))
    else:
        combination, index = _dense(combined, int(np.prod([len(v) for v in distinct])))
    arguments = []
    for values in reversed(distinct):
        index, own = np.divmod(index, len(values))
        arguments.insert(0, values.take(pa.array(own)))
    mapped, names = _codes(fn(*arguments))
    return mapped[combination], names


def _only(where: np.ndarray, coded: Coded) -> Coded:
    return np.where(where, coded[0], -1), coded[1]


def _dimension_codes(table: pa.Table, status: pa.Array, bot: np.ndarray) -> dict[str, Coded]:
    """Per dimension the value of each event (or -1: not counted), each distinct value computed once."""
    agent = _through(_joined, _column(table, "user_agent_name"), _column(table, "user_agent_version"))
    enriched = np.asarray(_column(table, "user_agent_is_bot", pa.bool_()).is_valid())
    path = _through(generalise_paths, _column(table, "url_path"))
    return {
        "browser": _only(enriched & ~bot, agent),
        "crawler": _only(bot, agent),
        "os": _only(
            enriched, _through(_joined, _column(table, "user_agent_os_name"), _column(table, "user_agent_os_version"))
        ),
        "device": _only(
            enriched, _through(lambda v: pc.fill_null(v, UNKNOWN), _column(table, "user_agent_device_type"))
        ),
        "country": _codes(_column(table, "source_geo_country_iso_code")),
        "status": _through(lambda s: pc.cast(s, pa.string()), status),
        "path": path,
        "missing_path": _only(pc.fill_null(pc.equal(status, 404), False).to_numpy(zero_copy_only=False), path),
        "referrer": _through(referrer_domains, _column(table, "http_request_referrer")),
    }


Key = tuple[int, str, str]  # (bucket start in epoch seconds, host or "", ingest-ledger key of the file)


def _sums(groups: np.ndarray, count: int, values: np.ndarray) -> np.ndarray:
    out = np.zeros(count, np.int64)
    np.add.at(out, groups, values)
    return out


def _split(groups: np.ndarray, count: int, values: np.ndarray) -> list[np.ndarray]:
    """``values`` of each group, in row order."""
    order = hll_coupons.group_order(groups, count)
    return np.split(values[order], np.cumsum(np.bincount(groups, minlength=count))[:-1])


def partials_from_batch(
    batch: pa.RecordBatch, grain: str = "hour", sources: dict[str, str] | None = None
) -> list[tuple[Key, TrafficPartial]]:
    """One partial per (bucket start, host, source) for the events of ``batch``.

    ``sources`` maps a log file path to its ingest-ledger key (``retention.ledger.FileIdentity.key``);
    a path missing from it stands for itself.  Partials, and the breakdown values of each, come in the order
    of their first event; rare values are folded only beyond ``MERGE_VALUES`` (the store folds them).
    Everything is counted with numpy over dense codes, and every visitor sketch is built from the coupons of
    its values at once (``hll_coupons``): no Python work per event or per visitor.
    """
    if batch.num_rows == 0:
        return []
    table = pa.Table.from_batches([batch])
    # Epoch seconds; UTC buckets are whole multiples of their length, so flooring is integer division.
    second = _column(table, "timestamp").cast(pa.int64()).to_numpy() // 1_000_000
    status = _column(table, "http_response_status_code", pa.int16())
    bot = pc.fill_null(_column(table, "user_agent_is_bot", pa.bool_()), False).to_numpy(zero_copy_only=False)
    bucket_code, buckets = _codes(pa.array(second // GRAIN_UNITS[grain] * GRAIN_UNITS[grain]))
    host_code, hosts = _codes(pc.fill_null(_column(table, "url_domain"), ""))
    path_code, paths = _codes(_column(table, "log_file_path"), nulls=True)
    fingerprint_code, fingerprints = _codes(pa.array([(sources or {}).get(p, p) or "" for p in paths.to_pylist()]))
    source_code, first_seen = _dense(fingerprint_code[path_code], len(fingerprints))
    source_names = fingerprints.take(pa.array(first_seen))
    key_of_row, key_codes = _dense(
        (bucket_code * len(hosts) + host_code) * len(source_names) + source_code,
        len(buckets) * len(hosts) * len(source_names),
    )
    n = len(key_codes)
    bucket_of, rest = np.divmod(key_codes, len(hosts) * len(source_names))
    host_of, source_of = np.divmod(rest, len(source_names))
    buckets, hosts, source_names = buckets.to_pylist(), hosts.to_pylist(), source_names.to_pylist()

    size = pc.fill_null(_column(table, "http_response_body_bytes", pa.int64()), 0).to_numpy()
    offset = pc.fill_null(_column(table, "log_offset", pa.int64()), -1).to_numpy()
    first_offset = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_offset, key_of_row, offset)
    last_offset = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_offset, key_of_row, offset)
    requests = np.bincount(key_of_row, minlength=n)
    sizes = _sums(key_of_row, n, size)
    bots = np.bincount(key_of_row, weights=bot, minlength=n).astype(np.int64)
    ip_code, ips = _codes(pc.coalesce(_column(table, "source_ip"), _column(table, "source_address")))
    coupon = np.where(ip_code >= 0, hll_coupons.coupons(ips)[ip_code], np.uint32(0))
    duration = _column(table, "event_duration_us", pa.int64())
    timed = np.asarray(duration.is_valid())
    ms = pc.divide(pc.cast(duration, pa.float64()), 1000.0).to_numpy(zero_copy_only=False)
    partials: list[tuple[Key, TrafficPartial]] = []
    visitors = hll_coupons.sketches(key_of_row, n, coupon, HLL_LG_K)
    for k, key_ms in enumerate(_split(key_of_row[timed], n, ms[timed])):
        p = TrafficPartial(int(requests[k]), int(sizes[k]), int(bots[k]))
        p.first_offset, p.last_offset = int(first_offset[k]), int(last_offset[k])
        p.visitors = visitors[k]
        if len(key_ms):
            sketch = datasketches.kll_doubles_sketch(KLL_K)
            sketch.update(key_ms)
            p.response_ms = sketch.serialize()
        partials.append(((buckets[bucket_of[k]], hosts[host_of[k]], source_names[source_of[k]]), p))

    classed = np.asarray(status.is_valid())
    class_code, classes = _codes(pc.divide(pc.cast(status.filter(classed), pa.int32()), 100))
    class_counts = np.bincount(key_of_row[classed] * len(classes) + class_code, minlength=n * len(classes))
    for (k, c), count in zip(np.ndindex(n, len(classes)), class_counts.tolist()):
        if count:
            partials[k][1].status_classes[f"{classes[c].as_py()}xx"] += count

    base = int(second.min())
    span = int(second.max()) - base + 1
    key_seconds, where = np.unique(key_of_row * span + (second - base), return_inverse=True)
    second_requests = np.bincount(where, minlength=len(key_seconds)).astype(np.int64)
    second_bytes = _sums(where, len(key_seconds), size)
    bounds = np.searchsorted(key_seconds // span, np.arange(n + 1))
    for k, (_, p) in enumerate(partials):
        part = slice(bounds[k], bounds[k + 1])
        p.seconds = key_seconds[part] % span + base
        p.second_requests, p.second_bytes = second_requests[part], second_bytes[part]

    for dimension, (value_code, names) in _dimension_codes(table, status, bot).items():
        counted = value_code >= 0
        group_of_row, group_codes = _dense(key_of_row[counted] * len(names) + value_code[counted], n * len(names))
        if not len(group_codes):
            continue
        groups = len(group_codes)
        key_of, value_of = np.divmod(group_codes, len(names))
        value_requests = np.bincount(group_of_row, minlength=groups).tolist()
        value_bytes = _sums(group_of_row, groups, size[counted]).tolist()
        sketches = hll_coupons.sketches(group_of_row, groups, coupon[counted], VALUE_HLL_LG_K)
        names = names.to_pylist()
        for g, (k, v) in enumerate(zip(key_of.tolist(), value_of.tolist())):
            partials[k][1].breakdown.setdefault(dimension, {})[names[v]] = [
                value_requests[g],
                value_bytes[g],
                sketches[g],
            ]
    for _, p in partials:
        for dimension, values in p.breakdown.items():
            if len(values) > MERGE_VALUES:
                p.breakdown[dimension] = fold_rare(values, MERGE_VALUES // 2)
    return partials
