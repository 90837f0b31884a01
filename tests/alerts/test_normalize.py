"""Encodings attackers use to hide payloads are undone before any rule looks at the request."""

import pytest

from alerts.normalize import NormalizeCache, normalize_request


@pytest.mark.parametrize(
    ("raw", "expected_fragment"),
    [
        ("/cgi-bin/.%2e/%2e%2e/etc/passwd", "/../../etc/passwd"),
        ("/a/..%c0%af..%c0%afetc/passwd", "/../../etc/passwd"),
        ("/x?f=%252e%252e%252fetc", "../etc"),
        ("/x?id=1+UNION/**/SELECT+1", "1 union select 1"),
        ("/x?q=%3CScRiPt%3E", "<script>"),
        ("/x?q=&lt;script&gt;", "<script>"),
        ("/files/..\\..\\windows\\win.ini", "/../../windows/win.ini"),
        ("/x?a=%u002e%u002e%u002f", "../"),
        ("http://evil.example//a//b", "http://evil.example/a/b"),
    ],
)
def test_encoded_payloads_become_plain(raw, expected_fragment):
    assert expected_fragment in normalize_request(raw)


def test_ordinary_requests_keep_their_meaning():
    assert normalize_request("/blog/2015/05/Hello-World.html?page=2") == "/blog/2015/05/hello-world.html?page=2"


def test_cache_normalises_each_distinct_value_once():
    cache = NormalizeCache(max_entries=2)
    for _ in range(3):
        cache("/A%20B")
    assert (cache.misses, cache.hits) == (1, 2)
    cache("/b"), cache("/c")  # over the bound: the cache starts afresh instead of growing
    assert cache("/A%20B") == "/a b"
