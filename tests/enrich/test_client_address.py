"""The client behind trusted proxies, from X-Forwarded-For walked right to left."""

from __future__ import annotations

import pyarrow as pa
import pytest

from parsers.enrich.client_address import TrustedProxies, parse_ip
from schemas.config import ConfigError, parse_config

PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.7")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.5", "203.0.113.5"),
        (" 203.0.113.5 ", "203.0.113.5"),
        ("203.0.113.5:4711", "203.0.113.5"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("unknown", None),
        ("", None),
        ("300.1.1.1", None),
        ("host.example.com", None),
    ],
)
def test_parse_ip(text, expected):
    address = parse_ip(text)
    assert (str(address) if address else None) == expected


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("198.51.100.9", "198.51.100.9"),
        ("198.51.100.9, 10.1.1.1", "198.51.100.9"),  # a second, inner proxy is skipped
        ("6.6.6.6, 198.51.100.9, 10.1.1.1", "198.51.100.9"),  # the forged leftmost entry is not believed
        ("198.51.100.9,10.1.1.1,192.0.2.7", "198.51.100.9"),
        ("10.2.2.2, 10.1.1.1", "10.2.2.2"),  # every hop trusted: the request came from inside
        ("2001:db8:1::5, 2001:db8:ffff::1", "2001:db8:1::5"),
        ("[2001:db8:1::5]:1234", "2001:db8:1::5"),
        ("198.51.100.9:5555", "198.51.100.9"),
        ("198.51.100.9, , 10.1.1.1", "198.51.100.9"),
        ("unknown, 10.1.1.1", None),  # the chain cannot be followed past garbage
        ("198.51.100.9, unknown", None),
        ("", None),
    ],
)
def test_client_from_forwarded_for(header, client):
    assert TrustedProxies(PROXIES).client_from(header) == (client,)


def test_resolve_moves_the_client_in_and_the_proxy_aside():
    proxies = TrustedProxies(PROXIES)
    source_ip = pa.array(["10.0.0.5", "198.51.100.1", "10.0.0.5", "10.0.0.5", None, "10.0.0.5", "2001:db8:ffff::2"])
    header = pa.array(
        ["198.51.100.9, 10.0.0.1", "6.6.6.6", None, "-", "198.51.100.9", "junk", "2001:db8:1::5"], pa.string()
    )
    proxy = pa.nulls(len(source_ip), pa.string())
    new_ip, new_proxy = proxies.resolve(source_ip, header, proxy)
    assert new_ip.to_pylist() == [
        "198.51.100.9",  # through two trusted proxies
        "198.51.100.1",  # the connecting address is not a trusted proxy: its header may be forged
        "10.0.0.5",  # no header
        "10.0.0.5",  # header logged as "-"
        None,
        "10.0.0.5",  # unusable header: keep what we know
        "2001:db8:1::5",
    ]
    assert new_proxy.to_pylist() == ["10.0.0.5", None, None, None, None, None, "2001:db8:ffff::2"]


def test_without_trusted_proxies_nothing_moves():
    source_ip, header = pa.array(["10.0.0.5"]), pa.array(["198.51.100.9"])
    new_ip, new_proxy = TrustedProxies(()).resolve(source_ip, header, pa.nulls(1, pa.string()))
    assert new_ip.to_pylist() == ["10.0.0.5"] and new_proxy.to_pylist() == [None]


def test_trusted_proxies_must_be_networks_in_the_config():
    config = parse_config({"enrich": {"trusted_proxies": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]}})
    assert config.enrich.trusted_proxies == ("10.0.0.0/8", "2001:db8::/32", "192.0.2.1")
    with pytest.raises(ConfigError) as raised:
        parse_config({"enrich": {"trusted_proxies": ["10.0.0.0/8", "the load balancer"]}})
    assert raised.value.key == "enrich.trusted_proxies"
    assert "'the load balancer' is not a network" in str(raised.value)


def test_cache_sizes_must_be_positive():
    with pytest.raises(ConfigError, match=r"enrich\.ip_cache_size"):
        parse_config({"enrich": {"ip_cache_size": 0}})
