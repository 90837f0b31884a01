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


@pytest.mark.parametrize(
    ("raw", "expected_fragment"),
    [
        ("/x?f=%5Cx2e%5Cx2e%5Cx2fetc%5Cx2fpasswd", "../etc/passwd"),  # literal \xNN escapes
        ("/x?f=%5Cu002e%5Cu002e%5Cu002f", "../"),  # literal \uNNNN escapes
        ("/x/%EF%BC%8E%EF%BC%8E%EF%BC%8Fetc/passwd", "/../etc/passwd"),  # fullwidth dot and slash
        ("/x?f=..%E2%88%95..%E2%88%95etc", "../../etc"),  # division slash look-alike
        ("/x?f=....//....//etc/passwd", "=..//..//etc/passwd"),  # dot runs a one-pass filter leaves as ../
        ("/x/%e0%80%ae%e0%80%ae/", "/../"),  # three-byte overlong dot
        ("/x/%c1%81dmin", "/admin"),  # any two-byte overlong ASCII, not only . and /
        ("/%%32%65%%32%65/etc", "/../etc"),  # nibble-by-nibble double encoding
        ("/x?q=%25252e%25252e%25252f", "../"),  # triple encoding
    ],
)
def test_what_attackers_hide_with_is_undone(raw, expected_fragment):
    assert expected_fragment in normalize_request(raw)


def test_decoded_parts_split_where_the_application_splits():
    from alerts.normalize import request_values

    assert request_values("/a%2Fb?x=1%26y%3D2&Name=O%27Brien") == ("/a/b", "x", "1&y=2", "name", "o'brien")
