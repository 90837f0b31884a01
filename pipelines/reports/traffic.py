"""Mergeable traffic partials: from one batch of access events to report rows.

A batch yields one ``TrafficPartial`` per (bucket, host); partials merge in any
order (so Beam can combine them on many workers), and ``finalize`` turns one
into a ``TRAFFIC_AGGREGATE`` row and its ``TRAFFIC_BREAKDOWN`` rows.  Peak and
95th-percentile rates come from per-second counts over the whole bucket
(quiet seconds count as zero); distinct visitors from an HLL sketch, so no
address is ever kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter

import datasketches
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.reports.privacy import generalise_paths, referrer_domains

BUCKET_SECONDS = {"hour": 3600, "day": 86400}
HLL_LG_K = 12
#: Distinct values a partial keeps per dimension before trimming to the most frequent.
MAX_VALUES = 5000
TRIM_TO = 2000
#: Values shown per dimension in a report; the rest become "(other)".
TOP_VALUES = 20
#: A path is reported only when requested at least this often in the bucket.
MIN_PATH_REQUESTS = 5

DIMENSIONS = ("browser", "os", "device", "country", "status", "path", "referrer")


@dataclasses.dataclass
class TrafficPartial:
    requests: int = 0
    bytes: int = 0
    bot_requests: int = 0
    status_classes: Counter = dataclasses.field(default_factory=Counter)
    per_second: dict[int, list[int]] = dataclasses.field(default_factory=dict)  # epoch second -> [requests, bytes]
    visitors: bytes | None = None  # serialised HLL sketch
    breakdown: dict[str, dict[str, list[int]]] = dataclasses.field(default_factory=dict)

    def merge(self, other: TrafficPartial) -> TrafficPartial:
        self.requests += other.requests
        self.bytes += other.bytes
        self.bot_requests += other.bot_requests
        self.status_classes.update(other.status_classes)
        for second, (requests, size) in other.per_second.items():
            slot = self.per_second.setdefault(second, [0, 0])
            slot[0] += requests
            slot[1] += size
        self.visitors = _merge_sketches(self.visitors, other.visitors)
        for dimension, values in other.breakdown.items():
            mine = self.breakdown.setdefault(dimension, {})
            for value, (requests, size) in values.items():
                slot = mine.setdefault(value, [0, 0])
                slot[0] += requests
                slot[1] += size
            if len(mine) > MAX_VALUES:
                self.breakdown[dimension] = dict(sorted(mine.items(), key=lambda kv: -kv[1][0])[:TRIM_TO])
        return self


def _merge_sketches(a: bytes | None, b: bytes | None) -> bytes | None:
    if a is None or b is None:
        return a or b
    union = datasketches.hll_union(HLL_LG_K)
    union.update(datasketches.hll_sketch.deserialize(a))
    union.update(datasketches.hll_sketch.deserialize(b))
    return union.get_result().serialize_compact()


def _major(version: pa.Array) -> pa.Array:
    return pc.struct_field(pc.extract_regex(version, r"^(?P<m>[^.]+)"), [0])


def _joined(name: pa.Array, version: pa.Array) -> pa.Array:
    major = _major(version)
    with_version = pc.binary_join_element_wise(name, major, " ")
    return pc.coalesce(with_version, name)


def _column(table: pa.Table, name: str, type_: pa.DataType | None = None) -> pa.Array:
    if name in table.column_names:
        return table.column(name).combine_chunks()
    return pa.nulls(table.num_rows, type_ or pa.string())


def _dimension_values(table: pa.Table) -> dict[str, pa.Array]:
    status = _column(table, "http_response_status_code", pa.int16())
    return {
        "browser": _joined(_column(table, "user_agent_name"), _column(table, "user_agent_version")),
        "os": _joined(_column(table, "user_agent_os_name"), _column(table, "user_agent_os_version")),
        "device": _column(table, "user_agent_device_type"),
        "country": _column(table, "source_geo_country_iso_code"),
        "status": pc.cast(status, pa.string()),
        "path": generalise_paths(_column(table, "url_path")),
        "referrer": referrer_domains(_column(table, "http_request_referrer")),
    }


def partials_from_batch(batch: pa.RecordBatch, bucket: str = "hour") -> list[tuple[tuple[int, str], TrafficPartial]]:
    """One partial per (bucket start in epoch seconds, host) for the events of ``batch``."""
    if batch.num_rows == 0:
        return []
    table = pa.Table.from_batches([batch])
    ts = table.column("timestamp")
    start = pc.cast(pc.floor_temporal(ts, 1, unit=bucket), pa.int64())
    second = pc.cast(pc.floor_temporal(ts, 1, unit="second"), pa.int64())
    status = _column(table, "http_response_status_code", pa.int16())
    frame = {
        "b": pc.divide(start, 1_000_000),
        "d": pc.fill_null(_column(table, "url_domain"), ""),
        "s": pc.divide(second, 1_000_000),
        "bytes": pc.fill_null(_column(table, "http_response_body_bytes", pa.int64()), 0),
        "cls": pc.divide(pc.cast(status, pa.int32()), 100),
        "bot": pc.cast(pc.fill_null(_column(table, "user_agent_is_bot", pa.bool_()), False), pa.int64()),
        "ip": pc.coalesce(_column(table, "source_ip"), _column(table, "source_address")),
    }
    for dimension, values in _dimension_values(table).items():
        frame[f"dim_{dimension}"] = values
    t = pa.table(frame)
    partials: dict[tuple[int, str], TrafficPartial] = {}

    def partial(b: int, d: str) -> TrafficPartial:
        found = partials.get((b, d))
        if found is None:
            found = partials[(b, d)] = TrafficPartial()
        return found

    totals = t.group_by(["b", "d"]).aggregate(
        [("bytes", "sum"), ("bytes", "count"), ("bot", "sum"), ("ip", "distinct")]
    )
    for row in totals.to_pylist():
        p = partial(row["b"], row["d"])
        p.requests, p.bytes, p.bot_requests = row["bytes_count"], row["bytes_sum"], row["bot_sum"]
        sketch = datasketches.hll_sketch(HLL_LG_K)
        for ip in row["ip_distinct"]:
            if ip is not None:
                sketch.update(ip)
        p.visitors = sketch.serialize_compact()
    for row in t.group_by(["b", "d", "cls"]).aggregate([("bytes", "count")]).to_pylist():
        if row["cls"] is not None:
            partial(row["b"], row["d"]).status_classes[f"{row['cls']}xx"] += row["bytes_count"]
    seconds = t.group_by(["b", "d", "s"]).aggregate([("bytes", "count"), ("bytes", "sum")])
    for b, d, s, n, size in zip(*(seconds.column(c).to_pylist() for c in ("b", "d", "s", "bytes_count", "bytes_sum"))):
        partial(b, d).per_second[s] = [n, size]
    for dimension in DIMENSIONS:
        column = f"dim_{dimension}"
        grouped = t.group_by(["b", "d", column]).aggregate([("bytes", "count"), ("bytes", "sum")])
        for b, d, value, n, size in zip(
            *(grouped.column(c).to_pylist() for c in ("b", "d", column, "bytes_count", "bytes_sum"))
        ):
            if value is not None:
                partial(b, d).breakdown.setdefault(dimension, {})[value] = [n, size]
    return list(partials.items())


def _rates(per_second: dict[int, list[int]], bucket_seconds: int) -> tuple[float, float, float, float]:
    counts = np.zeros((bucket_seconds, 2), dtype=np.int64)
    values = np.array(list(per_second.values()), dtype=np.int64).reshape(-1, 2)
    counts[: len(values)] = values  # position does not matter for peak and percentile
    peak = counts.max(axis=0)
    p95 = np.percentile(counts, 95, axis=0)
    return float(peak[0]), float(p95[0]), float(peak[1]), float(p95[1])


def finalize(key: tuple[int, str], partial: TrafficPartial, bucket: str = "hour") -> tuple[dict, list[dict]]:
    """The aggregate row and breakdown rows of one (bucket, host)."""
    start, domain = key
    bucket_start = dt.datetime.fromtimestamp(start, dt.timezone.utc)
    peak_rps, p95_rps, peak_bps, p95_bps = _rates(partial.per_second, BUCKET_SECONDS[bucket])
    visitors = datasketches.hll_sketch.deserialize(partial.visitors).get_estimate() if partial.visitors else 0
    row = {
        "bucket_start": bucket_start,
        "bucket": bucket,
        "url_domain": domain or None,
        "requests": partial.requests,
        "bytes": partial.bytes,
        "distinct_visitors_estimate": round(visitors),
        **{f"status_{c}xx": partial.status_classes.get(f"{c}xx", 0) for c in range(1, 6)},
        "peak_requests_per_second": peak_rps,
        "p95_requests_per_second": p95_rps,
        "peak_bytes_per_second": peak_bps,
        "p95_bytes_per_second": p95_bps,
        "bot_requests": partial.bot_requests,
    }
    breakdown = []
    for dimension in DIMENSIONS:
        values = partial.breakdown.get(dimension, {})
        ranked = sorted(values.items(), key=lambda kv: (-kv[1][0], kv[0]))
        shown = [(v, c) for v, c in ranked if dimension != "path" or c[0] >= MIN_PATH_REQUESTS][:TOP_VALUES]
        rest = [c for v, c in ranked if (v, c) not in shown]
        if rest:
            shown.append(("(other)", [sum(c[0] for c in rest), sum(c[1] for c in rest)]))
        for value, (requests, size) in shown:
            breakdown.append(
                {
                    "bucket_start": bucket_start,
                    "bucket": bucket,
                    "url_domain": domain or None,
                    "dimension": dimension,
                    "value": value,
                    "requests": requests,
                    "bytes": size,
                }
            )
    return row, breakdown
