"""Capacity aggregates: right numbers per bucket, mergeable in any order, and nothing that identifies a person."""

import datetime as dt
import random

import pyarrow as pa
import pytest

from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from pipelines.reports.html import render_report
from pipelines.reports.privacy import generalise_path, referrer_domains
from pipelines.reports.traffic import TrafficPartial, finalize, partials_from_batch

LINE = (
    '{ip} - - [01/Nov/2026:{h:02d}:{m:02d}:{s:02d} +0000] "GET {path} HTTP/1.1" {status} {size} "{ref}" "Mozilla/5.0"'
)


def events(specs):
    text = "\n".join(LINE.format(**spec) for spec in specs) + "\n"
    return parse_chunk(LineChunk("/a.log", 0, 1, text.encode(), "combined")).events


def spec(h=10, m=0, s=0, ip="198.51.100.1", path="/", status=200, size=100, ref="-"):
    return {"ip": ip, "h": h, "m": m, "s": s, "path": path, "status": status, "size": size, "ref": ref}


def test_totals_status_classes_and_rates_per_hour():
    batch = events(
        [spec(s=0)] * 5  # 5 requests in one second: the peak
        + [spec(s=1, status=404, size=0)]
        + [spec(m=30, s=s, ip=f"198.51.100.{s}", status=500, size=10) for s in range(10)]
        + [spec(h=11)]
    )
    rows = {key[0]: finalize(key, p)[0] for key, p in partials_from_batch(batch)}
    ten = rows[int(dt.datetime(2026, 11, 1, 10, tzinfo=dt.timezone.utc).timestamp())]
    assert ten["requests"] == 16 and ten["bytes"] == 5 * 100 + 10 * 10
    assert (ten["status_2xx"], ten["status_4xx"], ten["status_5xx"]) == (5, 1, 10)
    assert ten["peak_requests_per_second"] == 5 and ten["peak_bytes_per_second"] == 500
    assert ten["p95_requests_per_second"] == 0  # 12 busy seconds out of 3600
    assert 10 <= ten["distinct_visitors_estimate"] <= 11
    assert len(rows) == 2


def test_partials_merge_to_the_same_result_in_any_order():
    specs = [spec(m=random.Random(i).randrange(60), s=i % 60, ip=f"203.0.113.{i % 40}", size=i) for i in range(400)]
    whole = dict(partials_from_batch(events(specs)))
    pieces = [dict(partials_from_batch(events(specs[i : i + 37]))) for i in range(0, 400, 37)]
    random.Random(1).shuffle(pieces)
    merged: dict = {}
    for piece in pieces:
        for key, partial in piece.items():
            merged.setdefault(key, TrafficPartial()).merge(partial)
    for key in whole:
        assert finalize(key, merged[key]) == finalize(key, whole[key])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/8812/orders", "/users/:id/orders"),
        ("/u/alice@example.com/inbox", "/u/:id/inbox"),
        ("/s/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/s/:id"),
        ("/reset/eyJhbGciOiJIUzI1NiJ9abc123xyz", "/reset/:id"),
        ("/blog/release-notes-2026", "/blog/release-notes-2026"),
        ("/docs/performance-monitoring-12", "/docs/performance-monitoring-12"),
        ("/static/app.js", "/static/app.js"),
    ],
)
def test_paths_lose_identifiers_but_keep_their_shape(path, expected):
    assert generalise_path(path) == expected


def test_referrers_are_reduced_to_their_host():
    got = referrer_domains(pa.array(["https://Mail.Example.com/u/alice?token=x", None, "android-app://x"]))
    assert got.to_pylist() == ["mail.example.com", "(none)", "x"]


def test_no_ip_or_user_reaches_the_breakdown_or_the_html():
    batch = events(
        [spec(ip=f"192.0.2.{i}", path=f"/users/{1000 + i}/profile", ref="https://t.co/x?u=bob") for i in range(50)]
    )
    results = [finalize(key, p) for key, p in partials_from_batch(batch)]
    breakdown = [b for _, rows in results for b in rows]
    html = render_report([r for r, _ in results], breakdown)
    text = repr(breakdown) + html
    assert "192.0.2." not in text and "bob" not in text and "/users/1001" not in text
    assert {"value": "/users/:id/profile", "requests": 50} in [
        {"value": b["value"], "requests": b["requests"]} for b in breakdown if b["dimension"] == "path"
    ]
    assert "<svg" in html and "Requests per hour" in html and "<script" not in html
