"""Traffic partials: mergeable in any order, sketches within their stated error, nothing that identifies a person."""

import random
from collections import defaultdict

import datasketches
import numpy as np
import pyarrow as pa
import pytest

from pipelines.aggregate import MergeTrafficFn
from pipelines.reports.build import build_report
from pipelines.reports.privacy import escape_csv_strings, generalise_path, referrer_domains
from pipelines.reports.publish import report_tables
from pipelines.reports.store import store_tables
from pipelines.reports.traffic import HLL_LG_K, VALUE_HLL_LG_K, TrafficPartial, partials_from_batch
from schemas import ACCESS_EVENT
from tests.reports.support import events, line, small_log

START = 1_793_613_600  # 2026-11-02 10:00:00 UTC


def generated_batch(rows: int, visitors: int, seed: int = 7) -> pa.RecordBatch:
    """A large generated log as access events: ``visitors`` distinct addresses, log-normal response times."""
    rng = np.random.default_rng(seed)
    ip_ids = np.concatenate([np.arange(visitors), rng.integers(0, visitors, rows - visitors)])
    rng.shuffle(ip_ids)
    columns = {
        "timestamp": pa.array(((START + rng.integers(0, 3600, rows)) * 1_000_000).astype("int64")).cast(
            ACCESS_EVENT.field("timestamp").type
        ),
        "source_ip": pa.array([f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in ip_ids.tolist()]),
        "url_domain": pa.array(["www.example.com"] * rows),
        "url_path": pa.array([f"/page/{n}" for n in rng.integers(0, 50, rows).tolist()]),
        "http_response_status_code": pa.array(rng.choice([200, 304, 404, 500], rows), pa.int16()),
        "http_response_body_bytes": pa.array(rng.integers(0, 100_000, rows)),
        "event_duration_us": pa.array(rng.lognormal(9, 1, rows).astype("int64")),
        "log_file_path": pa.array(["/logs/big.log"] * rows),
        "log_offset": pa.array(np.arange(rows) * 200),
    }
    return pa.RecordBatch.from_pydict(columns)


def merged(batches) -> dict:
    out: dict = defaultdict(TrafficPartial)
    for batch in batches:
        for key, partial in partials_from_batch(batch):
            out[key].merge(partial)
    return out


def test_partials_merge_to_the_same_result_in_any_order():
    text = "\n".join(small_log())
    batch = events("/a.log", text + "\n")
    whole = merged([batch])
    pieces = [batch.slice(i, 7) for i in range(0, batch.num_rows, 7)]
    random.Random(1).shuffle(pieces)
    shuffled = merged(pieces)
    reports = [build_report(*store_tables(list(m.items()), "r", "hour", False), None, None) for m in (whole, shuffled)]
    assert [t.to_pylist() for t in report_tables(reports[0])] == [t.to_pylist() for t in report_tables(reports[1])]


def test_sketches_stay_within_their_stated_error_on_a_large_generated_log():
    rows, visitors = 300_000, 120_000
    batch = generated_batch(rows, visitors)
    [partial] = merged(batch.slice(i, 25_000) for i in range(0, rows, 25_000)).values()
    hll = datasketches.hll_sketch.deserialize(partial.visitors)
    # Stated bound: relative standard error 1.04 / sqrt(2^lg_k) = 1.6 %; three of them hold with 99.7 %.
    assert abs(hll.get_estimate() - visitors) / visitors < 3 * 1.04 / 2 ** (HLL_LG_K / 2)
    assert hll.get_lower_bound(3) <= visitors <= hll.get_upper_bound(3)
    kll = datasketches.kll_doubles_sketch.deserialize(partial.response_ms)
    durations = np.sort(batch.column("event_duration_us").to_numpy() / 1000)
    for q in (0.5, 0.95, 0.99):
        true_rank = np.searchsorted(durations, kll.get_quantile(q), side="right") / rows
        assert abs(true_rank - q) <= kll.normalized_rank_error(False), q
    assert partial.requests == rows


def _estimate(sketch: bytes) -> float:
    return datasketches.hll_sketch.deserialize(sketch).get_estimate()


def _updated_estimate(addresses, lg_k: int) -> float:
    sketch = datasketches.hll_sketch(lg_k)
    for address in addresses:
        sketch.update(address)
    return sketch.get_estimate()


def test_each_visitor_sketch_estimates_what_updating_with_its_events_addresses_gives():
    """Per bucket and per breakdown value, in HLL mode too (a sketch's estimate depends on what it was fed)."""
    batch = generated_batch(20_000, 6_000)
    [(_, partial)] = partials_from_batch(batch)
    rows = batch.to_pylist()
    assert _estimate(partial.visitors) == _updated_estimate([r["source_ip"] for r in rows], HLL_LG_K)
    by_path, by_status = defaultdict(list), defaultdict(list)
    for row in rows:
        by_path[generalise_path(row["url_path"])].append(row["source_ip"])
        by_status[str(row["http_response_status_code"])].append(row["source_ip"])
    for dimension, expected in (("path", by_path), ("status", by_status)):
        got = partial.breakdown[dimension]
        assert got.keys() == expected.keys()
        for value, addresses in expected.items():
            assert got[value][0] == len(addresses)
            assert _estimate(got[value][2]) == _updated_estimate(addresses, VALUE_HLL_LG_K), (dimension, value)


def test_one_batch_and_the_same_events_in_many_batches_merge_to_the_same_counts_and_estimates():
    """Through the aggregate step's live merge; few visitors, so every sketch stays exact (coupon mode) and
    its estimate cannot depend on how the events were cut."""
    batch = generated_batch(6_000, 60)
    views = []
    for step in (batch.num_rows, 701):
        fn = MergeTrafficFn()
        accumulators: dict = {}
        for start in range(0, batch.num_rows, step):
            for key, partial in partials_from_batch(batch.slice(start, step)):
                accumulators[key] = fn.add_input(accumulators.get(key) or fn.create_accumulator(), partial)
        merged_partials = {key: fn.extract_output(a) for key, a in accumulators.items()}
        views.append(
            {
                key: (
                    (p.requests, p.bytes, p.bot_requests, dict(p.status_classes), p.first_offset, p.last_offset),
                    (p.seconds.tolist(), p.second_requests.tolist(), p.second_bytes.tolist()),
                    _estimate(p.visitors),
                    {
                        d: {v: (n, size, _estimate(h)) for v, (n, size, h) in values.items()}
                        for d, values in p.breakdown.items()
                    },
                )
                for key, p in merged_partials.items()
            }
        )
    assert views[0] == views[1]
    [(_, _, visitors, breakdown)] = views[0].values()
    assert round(visitors) == 60 and len(breakdown["status"]) == 4


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/8812/orders", "/users/:id/orders"),
        ("/u/alice@example.com/inbox", "/u/:id/inbox"),
        ("/u/alice%40example.com", "/u/:id"),
        ("/s/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/s/:id"),
        ("/reset/eyJhbGciOiJIUzI1NiJ9abc123xyz", "/reset/:id"),
        ("/users/john.smith/profile", "/users/:name/profile"),
        ("/profile/JaneDoe1985", "/profile/:name"),
        ("/home/bob", "/home/:name"),
        ("/about/jane_doe", "/about/:name"),
        ("/~alice/cv.html", "/:name/cv.html"),
        ("/shop;jsessionid=8F3A/cart?u=bob", "/shop/cart"),
        ("/blog/release-notes-2026", "/blog/release-notes-2026"),
        ("/docs/performance-monitoring-12", "/docs/performance-monitoring-12"),
        ("/static/app.min.js", "/static/app.min.js"),
        ("/api/v2/items", "/api/v2/items"),
    ],
)
def test_paths_lose_identifiers_and_names_but_keep_their_shape(path, expected):
    assert generalise_path(path) == expected


def test_referrers_are_reduced_to_their_host():
    got = referrer_domains(pa.array(["https://Mail.Example.com/u/alice?token=x", None, "android-app://x"]))
    assert got.to_pylist() == ["mail.example.com", "(none)", "x"]


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped():
    table = pa.table({"url_domain": ["=2+5", "@SUM(A1:A9)", "+1", "-1", "www.example.com", None], "n": [1] * 6})
    assert escape_csv_strings(table)["url_domain"].to_pylist() == [
        "'=2+5",
        "'@SUM(A1:A9)",
        "'+1",
        "'-1",
        "www.example.com",
        None,
    ]


def test_a_hostile_virtual_host_reaches_the_store_as_data_not_as_a_formula():
    text = "\n".join(line("=2+5", f"192.0.2.{i}", "10:00:00", "/", 200, 10, "curl/8.4.0", 100) for i in range(12))
    [(key, _)] = partials_from_batch(events("/h.log", text + "\n"))
    assert key[1] == "=2+5"
