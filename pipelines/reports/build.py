"""A capacity report for a period: the owned store rows of many runs merged into what a planner reads.

Plain Python over Arrow tables (no Beam: a month of hourly aggregates is small).
Rates follow transit billing: the 95th percentile of 5-minute averages, quiet
samples counted as zero, with per-second peaks beside it.  Breakdown values
are k-anonymous: one is shown only when at least ``min_visitors`` distinct
visitors share it; the rest, and the hosts below the same bar, are folded into
"(other)" with their share shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict

import datasketches
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.reports.health import episodes as health_episodes
from pipelines.reports.privacy import OTHER, k_anonymous
from pipelines.reports.traffic import GRAIN_UNITS, HLL_LG_K, VALUE_HLL_LG_K, per_second_totals

BUCKET_SECONDS = {**GRAIN_UNITS, "week": 7 * 86400}
#: Seconds per billing sample (5 minutes; a minute bucket uses its own length).
SAMPLE_SECONDS = 300
#: The Monday 1970-01-05 00:00 UTC, so weeks start on Mondays.
_WEEK_ORIGIN = 4 * 86400
NO_HOST = "(no host)"
OTHER_HOSTS = "(other hosts)"
ALL = ""  # key of the all-hosts figures
NO_GEOIP = "no GeoIP database configured"


class ReportError(Exception):
    """What the planner asked for cannot be built from these aggregates."""


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    bucket: str = "hour"
    min_visitors: int = 10
    top_values: int = 20


@dataclasses.dataclass
class Report:
    period_start: dt.datetime
    period_end: dt.datetime
    bucket: str
    min_visitors: int
    hosts: list[str]  # shown hosts, "(other hosts)" last when some were folded
    series: dict[str, list[dict]]  # host (ALL: every host) -> one dict per bucket with traffic
    totals: dict[str, dict]
    breakdowns: dict[str, dict[str, list[dict]]]  # host -> dimension -> rows ("(other)" last)
    heatmap: dict[str, list[list[int]]] | None  # host -> [weekday][hour] requests (UTC); None above hourly grain
    geoip_configured: bool
    has_response_times: bool
    runs: int  # readers whose figures count (a batch run, or the stream)
    superseded: int  # buckets set aside: a later reading owns their lines (``ownership``)
    partly_superseded: int  # buckets set aside although a later reading owns only part of their lines
    unfinished: int  # stored runs that never completed (killed, or still running): counted nothing
    unledgered: int  # buckets with lines the ingest ledger gives to no run: not counted
    #: Service-health episodes overlapping the period (``pipelines.reports.health.episodes``), oldest first.
    episodes: list[dict] = dataclasses.field(default_factory=list)


def bucket_floor(epoch_seconds: np.ndarray, bucket: str) -> np.ndarray:
    size = BUCKET_SECONDS[bucket]
    origin = _WEEK_ORIGIN if bucket == "week" else 0
    return (epoch_seconds - origin) // size * size + origin


def _epoch_seconds(column) -> np.ndarray:
    return pc.divide(pc.cast(column, pa.int64()), 1_000_000).to_numpy(zero_copy_only=False).astype(np.int64)


def _list_slices(column) -> tuple[np.ndarray, np.ndarray]:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.values.to_numpy(zero_copy_only=False), array.offsets.to_numpy()


def _hll_estimate(sketches, lg_k: int) -> float:
    present = [s for s in sketches if s is not None]
    if not present:
        return 0.0
    union = datasketches.hll_union(lg_k)
    for sketch in present:
        union.update(datasketches.hll_sketch.deserialize(sketch))
    return union.get_estimate()


def _kll(sketches):
    merged = None
    for data in sketches:
        if data is None:
            continue
        sketch = datasketches.kll_doubles_sketch.deserialize(data)
        if merged is None:
            merged = sketch
        else:
            merged.merge(sketch)
    return merged


def _p95(samples: np.ndarray) -> float:
    """Nearest-rank 95th percentile, as transit is billed: drop the top 5 % of samples, take the highest left."""
    return float(np.percentile(samples, 95, method="inverted_cdf")) if len(samples) else 0.0


def _rates(seconds, requests, sizes, window_start: int, window_seconds: int) -> dict:
    sample = min(SAMPLE_SECONDS, window_seconds)
    n = max(window_seconds // sample, 1)
    if len(seconds):
        _, per_second_requests, per_second_bytes = per_second_totals(seconds, requests, sizes)
        where = np.clip((seconds - window_start) // sample, 0, n - 1)
        sample_requests = np.bincount(where, weights=requests, minlength=n) / sample
        sample_bytes = np.bincount(where, weights=sizes, minlength=n) / sample
        peak_r, peak_b = float(per_second_requests.max()), float(per_second_bytes.max())
    else:
        sample_requests = sample_bytes = np.zeros(n)
        peak_r = peak_b = 0.0
    return {
        "peak_requests_per_second": peak_r,
        "p95_requests_per_second": _p95(sample_requests),
        "peak_bytes_per_second": peak_b,
        "p95_bytes_per_second": _p95(sample_bytes),
    }


def _quantiles(sketch) -> dict:
    if sketch is None or sketch.is_empty():
        return {"response_ms_p50": None, "response_ms_p95": None, "response_ms_p99": None}
    p50, p95, p99 = sketch.get_quantiles([0.5, 0.95, 0.99])
    return {"response_ms_p50": p50, "response_ms_p95": p95, "response_ms_p99": p99}


_SUMMED = ["requests", "bytes", "bot_requests", *(f"status_{c}xx" for c in range(1, 6))]


def _figures(rows: list[int], cols: dict, seconds_of, window_start: int, window_seconds: int) -> dict:
    """Totals, visitors, rates and response times of a set of store rows."""
    figures = {name: int(cols[name][rows].sum()) for name in _SUMMED}
    figures["distinct_visitors_estimate"] = round(_hll_estimate((cols["visitors_hll"][i] for i in rows), HLL_LG_K))
    s, r, b = seconds_of(rows)
    figures.update(_rates(s, r, b, window_start, window_seconds))
    figures.update(_quantiles(_kll(cols["response_ms_kll"][i] for i in rows)))
    return figures


def _host_labels(traffic: pa.Table, min_visitors: int) -> dict[str | None, str]:
    """Host as stored -> host as shown; hosts with too few distinct visitors share one label."""
    sketches: dict[str | None, list] = defaultdict(list)
    for host, sketch in zip(traffic["url_domain"].to_pylist(), traffic["visitors_hll"].to_pylist()):
        sketches[host].append(sketch)
    labels = {}
    for host, found in sketches.items():
        shown = k_anonymous(_hll_estimate(found, HLL_LG_K), min_visitors)
        labels[host] = (NO_HOST if host is None else host) if shown else OTHER_HOSTS
    return labels


def _breakdown(breakdown: pa.Table, labels: dict, options: ReportOptions) -> dict[str, dict[str, list[dict]]]:
    """Per shown host (and all hosts, ``ALL``) and dimension: the k-anonymous top values and "(other)".

    Sums come from one Arrow group-by; visitor sketches are merged only for the values that could be
    shown (most requested first), which keeps a month of breakdowns fast.
    """
    if breakdown.num_rows == 0:
        return {}
    shown = [labels.get(h, OTHER_HOSTS) for h in breakdown["url_domain"].to_pylist()]
    table = breakdown.select(["dimension", "value", "requests", "bytes", "visitors_hll"])
    everywhere = table.append_column("h", pa.array([ALL] * table.num_rows, pa.string()))
    if len(set(shown)) == 1 and shown[0] != ALL:
        # One shown host (most logs): its tables are the all-hosts tables, ranked once (half the work).
        tables = _ranked(everywhere, options).get(ALL, {})
        return {shown[0]: {d: [dict(r) for r in rows] for d, rows in tables.items()}, ALL: tables}
    return _ranked(pa.concat_tables([table.append_column("h", pa.array(shown, pa.string())), everywhere]), options)


def _ranked(both: pa.Table, options: ReportOptions) -> dict[str, dict[str, list[dict]]]:
    """``_breakdown``'s tables of the rows of ``both``, whose ``h`` names the host (or ``ALL``) they count for."""
    both = both.append_column("key", pc.binary_join_element_wise(both["h"], both["dimension"], both["value"], "\x00"))
    sums = both.group_by(["h", "dimension", "value"]).aggregate([("requests", "sum"), ("bytes", "sum")])
    items: dict[tuple[str, str], list] = defaultdict(list)
    for h, dimension, value, requests, size in zip(
        *(sums[c].to_pylist() for c in ("h", "dimension", "value", "requests_sum", "bytes_sum"))
    ):
        items[(h, dimension)].append((value, requests, size))
    out: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    pending = {group: _Ranking(group, values, options) for group, values in items.items()}
    while pending:
        # One pass over the table per round fetches the sketches of every group's next candidates.
        wanted = {key: ranking for ranking in pending.values() for key in ranking.next_keys()}
        sketches = _sketches_of(both, list(wanted)) if wanted else {}
        for group, ranking in list(pending.items()):
            ranking.take(sketches)
            if ranking.done:
                out[group[0]][group[1]] = ranking.rows()
                del pending[group]
    return dict(out)


def _sketches_of(table: pa.Table, keys: list[str]) -> dict[str, list]:
    found = table.filter(pc.is_in(table["key"], pa.array(keys, pa.string())))
    grouped = found.group_by("key").aggregate([("visitors_hll", "list")])
    return dict(zip(grouped["key"].to_pylist(), grouped["visitors_hll_list"].to_pylist()))


class _Ranking:
    """The most requested k-anonymous values of one (host, dimension), found a few candidates at a time."""

    def __init__(self, group: tuple[str, str], values: list, options: ReportOptions):
        self._prefix = f"{group[0]}\x00{group[1]}\x00"
        self._options = options
        self._total_requests = sum(v[1] for v in values)
        self._total_bytes = sum(v[2] for v in values)
        # Visitors <= requests: only values requested at least min_visitors times can qualify.
        self._candidates = [
            v for v in sorted(values, key=lambda v: (-v[1], v[0])) if v[0] != OTHER and v[1] >= options.min_visitors
        ]
        self._next = 0
        self.shown: list[dict] = []

    @property
    def done(self) -> bool:
        return len(self.shown) == self._options.top_values or self._next >= len(self._candidates)

    def next_keys(self) -> list[str]:
        chunk = self._candidates[self._next : self._next + 2 * self._options.top_values]
        return [self._prefix + v[0] for v in chunk]

    def take(self, sketches: dict[str, list]) -> None:
        chunk = self._candidates[self._next : self._next + 2 * self._options.top_values]
        self._next += len(chunk)
        for value, requests, size in chunk:
            visitors = _hll_estimate(sketches.get(self._prefix + value, []), VALUE_HLL_LG_K)
            if k_anonymous(visitors, self._options.min_visitors):
                self.shown.append({"value": value, "requests": requests, "bytes": size, "visitors": round(visitors)})
                if len(self.shown) == self._options.top_values:
                    return

    def rows(self) -> list[dict]:
        """The shown values, then "(other)" with everything else, each with its share of requests."""
        rows = list(self.shown)
        rest = self._total_requests - sum(r["requests"] for r in rows)
        if rest > 0:
            rows.append(
                {
                    "value": OTHER,
                    "requests": rest,
                    "bytes": self._total_bytes - sum(r["bytes"] for r in rows),
                    "visitors": None,
                }
            )
        for row in rows:
            row["share"] = row["requests"] / self._total_requests
        return rows


def build_report(
    traffic: pa.Table,
    breakdown: pa.Table,
    period_start: dt.datetime | None,
    period_end: dt.datetime | None,
    options: ReportOptions | None = None,
    runs: int = 0,
    superseded: int = 0,
    partly_superseded: int = 0,
    unfinished: int = 0,
    unledgered: int = 0,
    health: pa.Table | None = None,
) -> Report:
    """Merge counted store rows (``store.read_store``) into the report of a period; ``health`` holds the
    counted health store rows (``health.read_health``) whose episodes the report marks."""
    options = options or ReportOptions()
    if options.bucket not in BUCKET_SECONDS:
        raise ReportError(f"unknown bucket {options.bucket!r}; use minute, hour, day or week")
    size = BUCKET_SECONDS[options.bucket]
    grains = set(traffic["bucket"].to_pylist()) if traffic.num_rows else set()
    too_coarse = sorted(g for g in grains if BUCKET_SECONDS[g] > size)
    if too_coarse:
        raise ReportError(
            f"the aggregates are stored per {too_coarse[0]}; a report per {options.bucket} needs runs with "
            f"reports.bucket: {options.bucket} (or ask for --bucket {too_coarse[0]} or coarser)"
        )
    starts = _epoch_seconds(traffic["bucket_start"]) if traffic.num_rows else np.zeros(0, np.int64)
    first = int(starts.min()) if len(starts) else 0
    last_end = int(max((s + GRAIN_UNITS[g] for s, g in zip(starts.tolist(), traffic["bucket"].to_pylist())), default=0))
    if period_start is None:
        period_start = dt.datetime.fromtimestamp(first, dt.timezone.utc)
    if period_end is None:
        period_end = dt.datetime.fromtimestamp(last_end, dt.timezone.utc)
    labels = _host_labels(traffic, options.min_visitors)
    host_of_row = [labels[h] for h in traffic["url_domain"].to_pylist()]
    cols = {name: traffic[name].to_numpy() for name in _SUMMED}
    cols["visitors_hll"] = traffic["visitors_hll"].to_pylist()
    cols["response_ms_kll"] = traffic["response_ms_kll"].to_pylist()
    flat = {name: _list_slices(traffic[name]) for name in ("seconds", "second_requests", "second_bytes")}

    def seconds_of(rows: list[int]):
        parts = []
        for name in ("seconds", "second_requests", "second_bytes"):
            values, offsets = flat[name]
            parts.append(
                np.concatenate([values[offsets[i] : offsets[i + 1]] for i in rows]) if rows else np.zeros(0, np.int64)
            )
        return parts

    buckets = bucket_floor(starts, options.bucket)
    groups: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (b, host) in enumerate(zip(buckets.tolist(), host_of_row)):
        groups[ALL][b].append(i)
        groups[host][b].append(i)
    figured: dict[tuple, dict] = {}

    def figures(rows: list[int], start: int, seconds: int) -> dict:
        # A host with every row (a log of one site) has the all-hosts figures: worked out once, copied.
        key = (tuple(rows), start, seconds)
        if key not in figured:
            figured[key] = _figures(rows, cols, seconds_of, start, seconds)
        return dict(figured[key])

    series = {
        host: [
            {"bucket_start": dt.datetime.fromtimestamp(b, dt.timezone.utc), **figures(rows, b, size)}
            for b, rows in sorted(by_bucket.items())
        ]
        for host, by_bucket in groups.items()
    }
    window_start = max(first, int(period_start.timestamp())) if len(starts) else int(period_start.timestamp())
    window_end = min(last_end, int(period_end.timestamp())) if len(starts) else window_start
    window = max(window_end - window_start, 1)
    totals = {
        host: figures([i for rows in by_bucket.values() for i in rows], window_start, window)
        for host, by_bucket in groups.items()
    }
    hosts = sorted({h for h in host_of_row if h != OTHER_HOSTS}) + ([OTHER_HOSTS] if OTHER_HOSTS in host_of_row else [])
    found = []
    if health is not None and health.num_rows:
        data_end = dt.datetime.fromtimestamp(last_end, dt.timezone.utc) if len(starts) else None
        found = health_episodes(
            health, labels, breakdown, options.min_visitors, period_start, period_end, data_end, OTHER_HOSTS, NO_HOST
        )
        if any(e["host_label"] == OTHER_HOSTS for e in found) and OTHER_HOSTS not in hosts:
            hosts.append(OTHER_HOSTS)
    return Report(
        period_start=period_start,
        period_end=period_end,
        bucket=options.bucket,
        min_visitors=options.min_visitors,
        hosts=hosts,
        series=dict(series),
        totals=totals,
        breakdowns=_breakdown(breakdown, labels, options),
        heatmap=_heatmap(starts, host_of_row, cols["requests"], grains),
        geoip_configured=bool(traffic.num_rows and pc.any(traffic["geoip_configured"]).as_py()),
        has_response_times=any(s is not None for s in cols["response_ms_kll"]),
        runs=runs,
        superseded=superseded,
        partly_superseded=partly_superseded,
        unfinished=unfinished,
        unledgered=unledgered,
        episodes=found,
    )


def _heatmap(starts: np.ndarray, hosts: list[str], requests: np.ndarray, grains: set[str]):
    """Requests per weekday (Monday first) and hour of day, UTC; only from hourly or finer aggregates."""
    if "day" in grains:
        return None
    weekday = ((starts // 86400) + 3) % 7  # 1970-01-01 was a Thursday
    hour = (starts % 86400) // 3600
    out: dict[str, np.ndarray] = defaultdict(lambda: np.zeros((7, 24), np.int64))
    for host in (ALL, *set(hosts)):
        mask = np.ones(len(starts), bool) if host == ALL else np.array([h == host for h in hosts], bool)
        np.add.at(out[host], (weekday[mask], hour[mask]), requests[mask])
    return {host: grid.tolist() for host, grid in out.items()}
