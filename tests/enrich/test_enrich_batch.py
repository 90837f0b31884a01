"""enrich_batch on whole batches: every row gets its fields, bad input included, and the caches stay bounded."""

from __future__ import annotations

import pyarrow as pa
import pytest

from parsers.enrich import Enricher, enrich_batch
from parsers.enrich.memo import ColumnMemo
from parsers.files import parse_file
from pipelines.read import open_raw
from schemas.access import ACCESS_EVENT
from tests.enrich.events import access_batch

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def enricher(geo_db):
    enricher = Enricher((geo_db["city"], geo_db["asn"]), trusted_proxies=("10.0.0.0/8",))
    yield enricher
    enricher.close()


def _rows(batch: pa.RecordBatch, *names: str) -> list[tuple]:
    return list(zip(*(batch.column(name).to_pylist() for name in names)))


def test_every_row_gets_user_agent_and_geo_fields(enricher):
    batch = access_batch(
        source_ip=["81.2.69.160", "2a02:1234::7", "192.168.0.4", "81.2.69.160", None],
        user_agent_original=[CHROME, IPHONE, "curl/8.4.0", CHROME, None],
    )
    out = enrich_batch(batch, enricher)
    assert out.schema.equals(ACCESS_EVENT, check_metadata=True)
    assert _rows(out, "user_agent_name", "user_agent_version", "user_agent_os_name", "user_agent_device_type") == [
        ("Chrome", "120.0", "Windows", "desktop"),
        ("Mobile Safari", "17.2", "iOS", "mobile"),
        ("curl", "8.4", None, "bot"),
        ("Chrome", "120.0", "Windows", "desktop"),
        (None, None, None, None),
    ]
    assert out.column("user_agent_is_bot").to_pylist() == [False, False, True, False, None]
    assert _rows(out, "source_geo_country_iso_code", "source_geo_city_name", "source_as_number") == [
        ("GB", "London", 20712),
        ("DE", "Berlin", 64500),
        (None, None, None),  # private: not looked up
        ("GB", "London", 20712),
        (None, None, None),
    ]
    assert out.column("source_geo_location").to_pylist()[:2] == [
        {"lat": 51.5142, "lon": -0.0931},
        {"lat": 52.52, "lon": 13.405},
    ]
    assert out.column("source_geo_location").to_pylist()[2:] == [None, {"lat": 51.5142, "lon": -0.0931}, None]


def test_geolocation_is_about_the_client_behind_the_proxy(enricher):
    batch = access_batch(
        source_ip=["10.0.0.5", "10.0.0.5"],
        http_request_x_forwarded_for=["81.2.69.160, 10.0.0.1", None],
        user_agent_original=[CHROME, CHROME],
    )
    out = enrich_batch(batch, enricher)
    assert _rows(out, "source_ip", "source_proxy_ip", "source_geo_city_name") == [
        ("81.2.69.160", "10.0.0.5", "London"),
        ("10.0.0.5", None, None),
    ]


def test_bad_user_agents_and_addresses(enricher):
    huge = CHROME + " " + "x" * 10_000
    batch = access_batch(
        source_ip=["not-an-ip", "999.0.0.1", "", "::1", "fe80::1%eth0", "2a02:1234::1"],
        user_agent_original=["", "-", huge, "\ufffd\ufffd garbage", "A" * 10_240, IPHONE],
    )
    out = enrich_batch(batch, enricher)
    assert _rows(out, "user_agent_name", "user_agent_device_type") == [
        (None, None),
        (None, None),
        ("Chrome", "desktop"),
        (None, "other"),
        (None, "other"),
        ("Mobile Safari", "mobile"),
    ]
    assert out.column("source_geo_country_iso_code").to_pylist() == [None] * 5 + ["DE"]
    assert out.column("user_agent_original").to_pylist()[2] == huge  # the original is kept whole


def test_user_agent_bytes_that_are_not_utf8(enricher):
    """A lax upstream can hand Arrow string columns holding invalid UTF-8: read them, do not crash."""
    raw = [CHROME.encode(), b"Mozilla/5.0 \xff\xfe (X11; Linux x86_64) Firefox/121.0"]
    data = b"".join(raw)
    offsets = pa.array([0, len(raw[0]), len(data)], pa.int32())
    invalid = pa.Array.from_buffers(pa.string(), 2, [None, offsets.buffers()[1], pa.py_buffer(data)])
    batch = access_batch(source_ip=["81.2.69.160", "81.2.69.160"], user_agent_original=["x", "y"])
    batch = batch.set_column(batch.schema.get_field_index("user_agent_original"), "user_agent_original", invalid)
    out = enrich_batch(batch, enricher)
    assert out.column("user_agent_name").to_pylist() == ["Chrome", "Firefox"]


def test_without_databases_the_geo_columns_stay_null():
    batch = access_batch(source_ip=["81.2.69.160"], user_agent_original=[CHROME])
    out = enrich_batch(batch, Enricher())
    assert out.column("user_agent_name").to_pylist() == ["Chrome"]
    assert out.column("source_geo_country_iso_code").to_pylist() == [None]


def test_empty_batch(enricher):
    out = enrich_batch(access_batch(source_ip=[], user_agent_original=[]), enricher)
    assert out.num_rows == 0 and out.schema.equals(ACCESS_EVENT)


def test_each_distinct_value_is_parsed_once_across_batches(enricher):
    batch = access_batch(source_ip=["81.2.69.160", "8.8.8.8"] * 500, user_agent_original=[CHROME, IPHONE] * 500)
    for _ in range(5):
        enrich_batch(batch, enricher)
    stats = enricher.stats()
    assert stats.rows == 5000
    assert (stats.user_agents.rows, stats.user_agents.computed) == (5000, 2)
    assert (stats.addresses.computed, stats.addresses_in_databases) == (2, 2)
    assert stats.user_agents.hit_rate == pytest.approx(1 - 2 / 5000)


def test_memo_is_bounded_and_stays_right_after_it_starts_again():
    calls = []

    def lookup(value: str) -> tuple:
        calls.append(value)
        return (value.upper(), len(value))

    memo = ColumnMemo(lookup, [pa.string(), pa.int64()], max_values=3)
    assert [a.to_pylist() for a in memo.map(pa.array(["a", "bb", None, "a"]))] == [
        ["A", "BB", None, "A"],
        [1, 2, None, 1],
    ]
    assert [a.to_pylist() for a in memo.map(pa.array(["cc", "ddd", "a"]))] == [["CC", "DDD", "A"], [2, 3, 1]]
    assert memo.stats.resets == 1
    assert len(memo._keys) <= 3
    assert [a.to_pylist() for a in memo.map(pa.array(["ddd", "cc"]))] == [["DDD", "CC"], [3, 2]]
    assert calls == ["a", "bb", "cc", "ddd"]  # "a" was kept across the reset: each value was looked up once


def test_a_real_log_through_the_parser(tmp_path, geo_db, enricher):
    log = tmp_path / "access.log"
    lines = [
        f'81.2.69.160 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 2326 "-" "{CHROME}"',
        '2a02:1234::9 - - [10/Oct/2023:13:55:37 +0000] "GET /a HTTP/1.1" 404 12 "-" "sqlmap/1.7.2#stable (https://sqlmap.org)"',
        '10.9.9.9 - - [10/Oct/2023:13:55:38 +0000] "GET /b HTTP/1.1" 200 5 "-" "-"',
    ]
    log.write_bytes(
        "\n".join(lines).encode()
        + b'\n8.8.8.8 - - [10/Oct/2023:13:55:39 +0000] "GET / HTTP/1.1" 200 1 "-" "Bad \xff UA"\n'
    )
    results = list(parse_file(open_raw, str(log), "combined"))
    events = pa.Table.from_batches([r.events for r in results]).to_batches()[0]
    out = enrich_batch(events, enricher)
    assert _rows(out, "user_agent_name", "user_agent_is_bot", "source_geo_country_iso_code", "source_as_number") == [
        ("Chrome", False, "GB", 20712),
        ("sqlmap", True, "DE", 64500),
        (None, None, None, None),
        (None, False, "US", 15169),
    ]
