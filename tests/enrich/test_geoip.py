"""Geolocation: MaxMind's own test databases, databases written at test time, and every way a file can be wrong."""

from __future__ import annotations

import ipaddress
import json
import logging

import pytest

from parsers.enrich.client_address import is_public
from parsers.enrich.geoip import NO_GEO, GeoLookup, database_kind
from pipelines.enrich import check_enrich_config
from schemas.config import ConfigError, EnrichConfig


def test_own_city_and_asn_databases(geo_db):
    lookup = GeoLookup.open([geo_db["city"], geo_db["asn"]])
    london = lookup.lookup("81.2.69.160")
    assert (london.country_iso_code, london.country_name, london.city_name) == ("GB", "United Kingdom", "London")
    assert london.location == {"lat": 51.5142, "lon": -0.0931}
    assert (london.as_number, london.as_organization_name) == (20712, "Andrews & Arnold Ltd")
    google = lookup.lookup("8.8.8.8")
    assert (google.country_iso_code, google.city_name, google.location, google.as_number) == ("US", None, None, 15169)


def test_ipv6_and_address_spellings(geo_db):
    lookup = GeoLookup.open([geo_db["city"], geo_db["asn"]])
    berlin = lookup.lookup("2a02:1234::42")
    assert (berlin.city_name, berlin.as_number, berlin.as_organization_name) == ("Berlin", 64500, None)
    assert lookup.lookup("[2a02:1234::42]:443") == berlin
    assert lookup.lookup("::ffff:81.2.69.160").city_name == "London"
    assert lookup.lookup("81.2.69.160:51234").city_name == "London"


@pytest.mark.parametrize("address", ["10.1.2.3", "203.0.113.9", "127.0.0.1", "::1", "fe80::1%eth0", "192.168.1.1"])
def test_private_loopback_and_documentation_addresses_are_not_looked_up(geo_db, address):
    lookup = GeoLookup.open([geo_db["city"]])
    assert lookup.lookup(address) == NO_GEO
    assert lookup.lookups_done == 0


@pytest.mark.parametrize(
    "address", ["", "-", "unknown", "999.1.1.1", "1.2.3", "01.2.3.4", "example.com", "::g", "1.2.3.4\x00"]
)
def test_invalid_addresses_give_empty_fields(geo_db, address):
    assert GeoLookup.open([geo_db["city"]]).lookup(address) == NO_GEO


def test_address_not_in_database_gives_empty_fields(geo_db):
    assert GeoLookup.open([geo_db["city"], geo_db["asn"]]).lookup("1.1.1.1") == NO_GEO


def test_database_kind_comes_from_metadata():
    assert database_kind("GeoIP2-City") == database_kind("GeoLite2-City") == "city"
    assert database_kind("GeoIP2-City-Shield") == database_kind("GeoIP2-Precision-Enterprise") == "city"
    assert database_kind("GeoLite2-Country") == database_kind("DBIP-Country-Lite") == "country"
    assert database_kind("GeoLite2-ASN") == "asn"
    assert database_kind("GeoIP2-Domain") is database_kind("GeoIP2-ISP") is database_kind("GeoIP2-Anonymous-IP") is None


def test_wrong_kind_of_database_is_a_config_error_naming_the_key(geo_db):
    config = EnrichConfig(geoip_databases=(geo_db["city"], geo_db["domain"]))
    with pytest.raises(ConfigError) as raised:
        check_enrich_config(config)
    assert raised.value.key == "enrich.geoip_databases[1]"
    assert "GeoIP2-Domain" in str(raised.value) and "City, Country or ASN" in str(raised.value)


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_missing_or_corrupt_database_warns_once_and_leaves_fields_empty(geo_db, kind, caplog):
    caplog.set_level(logging.WARNING, logger="logwarden.enrich")
    check_enrich_config(EnrichConfig(geoip_databases=(geo_db[kind], geo_db["asn"])))  # not a config error
    lookups = [GeoLookup.open([geo_db[kind], geo_db["asn"]]) for _ in range(3)]  # e.g. three workers' setup
    assert lookups[0].lookup("81.2.69.160") == NO_GEO._replace(
        as_number=20712, as_organization_name="Andrews & Arnold Ltd"
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert geo_db[kind] in warnings[0] and "stay empty" in warnings[0]


def test_no_databases_at_all(geo_db):
    lookup = GeoLookup.open([])
    assert not lookup.enabled
    assert lookup.lookup("81.2.69.160") == NO_GEO


def test_close_releases_the_readers(geo_db):
    lookup = GeoLookup.open([geo_db["city"]])
    lookup.close()
    assert not lookup.enabled


PUBLIC_CHECKS = [
    ("8.8.8.8", True),
    ("81.2.69.160", True),
    ("2a02:1234::1", True),
    ("2001:218::1", True),
    ("10.0.0.1", False),
    ("172.16.5.4", False),
    ("172.32.0.1", True),
    ("192.168.0.1", False),
    ("100.64.0.1", False),
    ("127.0.0.1", False),
    ("169.254.1.1", False),
    ("0.0.0.0", False),
    ("224.0.0.1", False),
    ("255.255.255.255", False),
    ("192.0.2.1", False),
    ("198.51.100.1", False),
    ("203.0.113.1", False),
    ("::1", False),
    ("::", False),
    ("fe80::1", False),
    ("fc00::1", False),
    ("ff02::1", False),
    ("2001:db8::1", False),
]


@pytest.mark.parametrize(("address", "public"), PUBLIC_CHECKS)
def test_is_public_agrees_with_the_iana_registries(address, public):
    parsed = ipaddress.ip_address(address)
    assert is_public(parsed) is public
    assert parsed.is_global or not public  # never looks up what Python itself calls non-global


# MaxMind's own test databases ------------------------------------------------------------------------------


def _expectations(corpora, source: str):
    """(address, record) for the first address of each public network in MaxMind's source JSON.

    The record is the most specific network's, as in the database; ``::a.b.c.d/N`` networks are IPv4.
    """
    entries = []
    for entry in json.loads((corpora / "maxmind-test-db" / "source-data" / source).read_text(encoding="utf-8")):
        ((network, record),) = entry.items()
        parsed = ipaddress.ip_network(network, strict=False)
        if parsed.version == 6 and network.startswith("::") and "." in network:
            parsed = ipaddress.ip_network(f"{network.split('/')[0][2:]}/{parsed.prefixlen - 96}", strict=False)
        entries.append((parsed, record))
    for network, _ in entries:
        address = network.network_address
        if not is_public(address):
            continue
        containing = [(n.prefixlen, r) for n, r in entries if n.version == address.version and address in n]
        yield str(address), max(containing, key=lambda pair: pair[0])[1]


def test_maxmind_city_test_database(corpora):
    path = corpora / "maxmind-test-db" / "test-data" / "GeoIP2-City-Test.mmdb"
    lookup = GeoLookup.open([str(path)])
    checked = 0
    for address, record in _expectations(corpora, "GeoIP2-City-Test.json"):
        info = lookup.lookup(address)
        assert info.country_iso_code == record.get("country", {}).get("iso_code"), address
        assert info.country_name == record.get("country", {}).get("names", {}).get("en"), address
        assert info.city_name == record.get("city", {}).get("names", {}).get("en"), address
        location = record.get("location", {})
        if "latitude" in location:
            assert info.location == {"lat": location["latitude"], "lon": location["longitude"]}, address
        checked += 1
    assert checked > 100
    london = lookup.lookup("81.2.69.160")
    assert (london.country_iso_code, london.city_name) == ("GB", "London")


def test_maxmind_country_test_database(corpora):
    lookup = GeoLookup.open([str(corpora / "maxmind-test-db" / "test-data" / "GeoIP2-Country-Test.mmdb")])
    checked = 0
    for address, record in _expectations(corpora, "GeoIP2-Country-Test.json"):
        info = lookup.lookup(address)
        assert info.country_iso_code == record.get("country", {}).get("iso_code"), address
        assert info.city_name is None
        checked += 1
    assert checked > 100


def test_maxmind_asn_test_database(corpora):
    lookup = GeoLookup.open([str(corpora / "maxmind-test-db" / "test-data" / "GeoLite2-ASN-Test.mmdb")])
    checked = 0
    for address, record in _expectations(corpora, "GeoLite2-ASN-Test.json"):
        info = lookup.lookup(address)
        assert info.as_number == record.get("autonomous_system_number"), address
        assert info.as_organization_name == record.get("autonomous_system_organization"), address
        checked += 1
    assert checked > 100
    assert lookup.lookup("1.128.0.1").as_organization_name == "Telstra Pty Ltd"


@pytest.mark.parametrize("name", ["GeoIP2-Domain-Test.mmdb", "GeoIP2-ISP-Test.mmdb", "GeoIP2-Anonymous-IP-Test.mmdb"])
def test_maxmind_databases_of_other_kinds_are_config_errors(corpora, name):
    path = str(corpora / "maxmind-test-db" / "test-data" / name)
    with pytest.raises(ConfigError, match=r"enrich\.geoip_databases\[0\]"):
        check_enrich_config(EnrichConfig(geoip_databases=(path,)))


@pytest.mark.parametrize(
    "name", ["GeoIP2-City-Test-Invalid-Node-Count.mmdb", "GeoIP2-City-Test-Broken-Double-Format.mmdb"]
)
def test_maxmind_broken_databases_never_crash(corpora, name, caplog):
    caplog.set_level(logging.WARNING, logger="logwarden.enrich")
    lookup = GeoLookup.open([str(corpora / "maxmind-test-db" / "test-data" / name)])
    for entry in json.loads((corpora / "maxmind-test-db" / "source-data" / "GeoIP2-City-Test.json").read_text()):
        address = ipaddress.ip_network(next(iter(entry)), strict=False).network_address
        lookup.lookup(str(address))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and name in warnings[0]
