"""Small GeoIP databases written at test time, so a fresh clone tests real lookups without downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from parsers.enrich import geoip


def _place(iso: str, country: str, city: str | None = None, lat: float | None = None, lon: float | None = None):
    record = {"country": {"iso_code": iso, "names": {"en": country, "de": f"{country} (de)"}}}
    if city:
        record["city"] = {"names": {"en": city, "fr": f"{city} (fr)"}}
    if lat is not None:
        record["location"] = {"latitude": lat, "longitude": lon, "accuracy_radius": 20}
    return record


CITY_RECORDS = {
    "81.2.69.0/24": _place("GB", "United Kingdom", "London", 51.5142, -0.0931),
    "8.8.8.0/24": _place("US", "United States"),  # country only: no city, no location
    "2a02:1234::/32": _place("DE", "Germany", "Berlin", 52.52, 13.405),
    # Private and documentation ranges carry data here only to prove they are never looked up.
    "10.0.0.0/8": _place("FR", "France", "Paris", 48.85, 2.35),
    "203.0.113.0/24": _place("FR", "France", "Paris", 48.85, 2.35),
}
ASN_RECORDS = {
    "81.2.69.0/24": {"autonomous_system_number": 20712, "autonomous_system_organization": "Andrews & Arnold Ltd"},
    "8.8.8.0/24": {"autonomous_system_number": 15169, "autonomous_system_organization": "Google LLC"},
    "2a02:1234::/32": {"autonomous_system_number": 64500},
}


def _write(path: Path, database_type: str, records: dict) -> str:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type, languages=["en"])
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return str(path)


@pytest.fixture(scope="session")
def geo_db(tmp_path_factory) -> dict[str, str]:
    """Paths of a City, an ASN, a Domain (wrong kind) database and of a file that is not a database."""
    root = tmp_path_factory.mktemp("geoip")
    garbage = root / "garbage.mmdb"
    garbage.write_bytes(b"this is not a MaxMind database\n" * 100)
    return {
        "city": _write(root / "Test-City.mmdb", "GeoLite2-City", CITY_RECORDS),
        "asn": _write(root / "Test-ASN.mmdb", "GeoLite2-ASN", ASN_RECORDS),
        "domain": _write(root / "Test-Domain.mmdb", "GeoIP2-Domain", {"81.2.69.0/24": {"domain": "example.net"}}),
        "garbage": str(garbage),
        "missing": str(root / "does-not-exist.mmdb"),
    }


@pytest.fixture(autouse=True)
def _fresh_warnings():
    """Each test is its own run for the one-warning-per-run rule."""
    geoip._warned.clear()
    yield
    geoip._warned.clear()
