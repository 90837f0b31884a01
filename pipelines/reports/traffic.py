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

from pipelines.reports.privacy import OTHER, generalise_paths, referrer_domains

#: Stored grains (the report can roll them up to any coarser bucket, week included).
GRAIN_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
#: Visitors per bucket: relative standard error about 1.04/sqrt(2^12) = 1.6 %.
HLL_LG_K = 12
#: Visitors per breakdown value: small sketches (exact in list mode up to a few hundred visitors).
VALUE_HLL_LG_K = 10
#: Response-time quantiles: normalised rank error about 1.65 % (KLL, k = 200).
KLL_K = 200
#: Distinct values a partial keeps per dimension; the rarest beyond it are merged into "(other)".
STORED_VALUES = 1000
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
            if len(mine) > STORED_VALUES:
                self.breakdown[dimension] = fold_rare(mine, STORED_VALUES)
        return self

    def compact_seconds(self) -> None:
        """Sum the entries of each second so the arrays hold every second once."""
        self.seconds, self.second_requests, self.second_bytes = per_second_totals(
            self.seconds, self.second_requests, self.second_bytes
        )


def fold_rare(values: dict[str, list], keep: int) -> dict[str, list]:
    """The ``keep`` most requested values, the others summed into "(other)" (nothing is dropped)."""
    ranked = sorted(((v, c) for v, c in values.items() if v != OTHER), key=lambda kv: -kv[1][0])
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


def hll_of(values) -> bytes:
    sketch = datasketches.hll_sketch(HLL_LG_K)
    for value in values:
        if value is not None:
            sketch.update(value)
    return sketch.serialize_compact()


def _value_hll(values) -> bytes:
    sketch = datasketches.hll_sketch(VALUE_HLL_LG_K)
    for value in values:
        if value is not None:
            sketch.update(value)
    return sketch.serialize_compact()


def _per_distinct(values: pa.Array, fn) -> pa.Array:
    """Apply a vectorised ``fn`` to the distinct values only, then map back (user agents repeat a lot)."""
    distinct = pc.unique(values)
    return pc.take(fn(distinct), pc.index_in(values, distinct))


def _major(version: pa.Array) -> pa.Array:
    return pc.struct_field(pc.extract_regex(version, r"^(?P<m>[^.]+)"), [0])


def _joined(name: pa.Array, version: pa.Array) -> pa.Array:
    major = _per_distinct(version, _major)
    with_version = pc.binary_join_element_wise(name, major, " ")
    return pc.fill_null(pc.coalesce(with_version, name), UNKNOWN)


def _column(table: pa.Table, name: str, type_: pa.DataType | None = None) -> pa.Array:
    if name in table.column_names:
        return table.column(name).combine_chunks()
    return pa.nulls(table.num_rows, type_ or pa.string())


def _dimension_values(table: pa.Table, status: pa.Array, bot: pa.Array) -> dict[str, pa.Array]:
    """One value (or null: not counted) per event and dimension."""
    agent = _joined(_column(table, "user_agent_name"), _column(table, "user_agent_version"))
    none = pa.nulls(table.num_rows, pa.string())
    path = generalise_paths(_column(table, "url_path"))
    enriched = pc.fill_null(pc.is_valid(_column(table, "user_agent_is_bot", pa.bool_())), False)
    return {
        "browser": pc.if_else(pc.and_(enriched, pc.invert(bot)), agent, none),
        "crawler": pc.if_else(bot, agent, none),
        "os": pc.if_else(
            enriched, _joined(_column(table, "user_agent_os_name"), _column(table, "user_agent_os_version")), none
        ),
        "device": pc.if_else(enriched, pc.fill_null(_column(table, "user_agent_device_type"), UNKNOWN), none),
        "country": _column(table, "source_geo_country_iso_code"),
        "status": pc.cast(status, pa.string()),
        "path": path,
        "missing_path": pc.if_else(pc.fill_null(pc.equal(status, 404), False), path, none),
        "referrer": _per_distinct(_column(table, "http_request_referrer"), referrer_domains),
    }


Key = tuple[int, str, str]  # (bucket start in epoch seconds, host or "", ingest-ledger key of the file)


def partials_from_batch(
    batch: pa.RecordBatch, grain: str = "hour", sources: dict[str, str] | None = None
) -> list[tuple[Key, TrafficPartial]]:
    """One partial per (bucket start, host, source) for the events of ``batch``.

    ``sources`` maps a log file path to its ingest-ledger key (``retention.ledger.FileIdentity.key``);
    a path missing from it stands for itself.
    """
    if batch.num_rows == 0:
        return []
    table = pa.Table.from_batches([batch])
    ts = table.column("timestamp")
    start = pc.cast(pc.floor_temporal(ts, 1, unit=grain), pa.int64())
    second = pc.cast(pc.floor_temporal(ts, 1, unit="second"), pa.int64())
    status = _column(table, "http_response_status_code", pa.int16())
    bot = pc.fill_null(_column(table, "user_agent_is_bot", pa.bool_()), False)
    paths = _column(table, "log_file_path")
    distinct_paths = pc.unique(paths)
    fingerprints = pa.array([(sources or {}).get(p, p) for p in distinct_paths.to_pylist()], pa.string())
    duration = _column(table, "event_duration_us", pa.int64())
    frame = {
        "b": pc.divide(start, 1_000_000),
        "d": pc.fill_null(_column(table, "url_domain"), ""),
        "src": pc.fill_null(pc.take(fingerprints, pc.index_in(paths, distinct_paths)), ""),
        "s": pc.divide(second, 1_000_000),
        "off": pc.fill_null(_column(table, "log_offset", pa.int64()), -1),
        "bytes": pc.fill_null(_column(table, "http_response_body_bytes", pa.int64()), 0),
        "cls": pc.divide(pc.cast(status, pa.int32()), 100),
        "bot": pc.cast(bot, pa.int64()),
        "ip": pc.coalesce(_column(table, "source_ip"), _column(table, "source_address")),
        "ms": pc.divide(pc.cast(duration, pa.float64()), 1000.0),
    }
    for dimension, values in _dimension_values(table, status, bot).items():
        frame[f"dim_{dimension}"] = values
    t = pa.table(frame)
    keys = ["b", "d", "src"]
    partials: dict[Key, TrafficPartial] = {}

    def partial(b: int, d: str, src: str) -> TrafficPartial:
        found = partials.get((b, d, src))
        if found is None:
            found = partials[(b, d, src)] = TrafficPartial()
        return found

    totals = t.group_by(keys).aggregate(
        [
            ("bytes", "sum"),
            ("bytes", "count"),
            ("bot", "sum"),
            ("ip", "distinct"),
            ("off", "min"),
            ("off", "max"),
            ("ms", "list"),
        ]
    )
    for row in totals.to_pylist():
        p = partial(row["b"], row["d"], row["src"])
        p.requests, p.bytes, p.bot_requests = row["bytes_count"], row["bytes_sum"], row["bot_sum"]
        p.first_offset, p.last_offset = row["off_min"], row["off_max"]
        p.visitors = hll_of(row["ip_distinct"])
        durations = [ms for ms in row["ms_list"] if ms is not None]
        if durations:
            sketch = datasketches.kll_doubles_sketch(KLL_K)
            sketch.update(np.asarray(durations, dtype=np.float64))
            p.response_ms = sketch.serialize()
    for row in t.group_by([*keys, "cls"]).aggregate([("bytes", "count")]).to_pylist():
        if row["cls"] is not None:
            partial(row["b"], row["d"], row["src"]).status_classes[f"{row['cls']}xx"] += row["bytes_count"]
    seconds = (
        t.group_by([*keys, "s"])
        .aggregate([("bytes", "count"), ("bytes", "sum")])
        .sort_by([(k, "ascending") for k in keys])
    )
    group = list(zip(*(seconds.column(k).to_pylist() for k in keys)))
    s_col, n_col, b_col = (seconds.column(c).to_numpy() for c in ("s", "bytes_count", "bytes_sum"))
    begin = 0
    for end in range(1, len(group) + 1):
        if end == len(group) or group[end] != group[begin]:
            p = partial(*group[begin])
            p.seconds, p.second_requests, p.second_bytes = s_col[begin:end], n_col[begin:end], b_col[begin:end]
            begin = end
    for dimension in DIMENSIONS:
        column = f"dim_{dimension}"
        grouped = t.group_by([*keys, column]).aggregate([("bytes", "count"), ("bytes", "sum"), ("ip", "distinct")])
        for b, d, src, value, n, size, ips in zip(
            *(grouped.column(c).to_pylist() for c in (*keys, column, "bytes_count", "bytes_sum", "ip_distinct"))
        ):
            if value is not None:
                partial(b, d, src).breakdown.setdefault(dimension, {})[value] = [n, size, _value_hll(ips)]
    for p in partials.values():
        for dimension, values in p.breakdown.items():
            if len(values) > STORED_VALUES:
                p.breakdown[dimension] = fold_rare(values, STORED_VALUES)
    return list(partials.items())
