"""Enrichment cost against parse cost: ``python -m bench enrich FILE [--geoip-db PATH]...``.

Two timed passes over FILE: parsing alone (the baseline), then parsing and
enriching each batch, timing the enrichment on its own.  Then the engines behind
it, on the file's own distinct values: ua-parser with the ua-parser-rs
accelerator, pure Python ua-parser and ``user-agents`` per distinct user agent;
maxminddb records and geoip2 model objects per distinct address.

Without --geoip-db the bench writes a City and an ASN database (with mmdb-writer)
covering the /24 of every address in FILE, with records shaped like GeoLite2's
(eight languages, subdivisions), so every public address is a real hit: the
costly case.  MaxMind's test databases would miss nearly every address.
The goal is enrichment < 25% of parse time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import ipaddress
import multiprocessing
import random
import resource
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc

from parsers.enrich import Enricher, enrich_batch
from parsers.enrich.client_address import is_public, parse_ip
from parsers.files import parse_file
from pipelines.read import open_raw
from schemas.config import EnrichConfig

_NAMES = {language: "Name" for language in ("de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN")}
CITY_RECORD = {
    "continent": {"code": "EU", "geoname_id": 6255148, "names": _NAMES},
    "country": {"iso_code": "GB", "geoname_id": 2635167, "names": _NAMES},
    "registered_country": {"iso_code": "GB", "geoname_id": 2635167, "names": _NAMES},
    "city": {"geoname_id": 2643743, "names": _NAMES},
    "location": {"latitude": 51.5142, "longitude": -0.0931, "accuracy_radius": 20, "time_zone": "Europe/London"},
    "postal": {"code": "EC2V"},
    "subdivisions": [{"iso_code": "ENG", "geoname_id": 6269131, "names": _NAMES}],
}
ASN_RECORD = {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Networks Ltd"}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _parse_only(path: str, format_spec: str, chunk_bytes: int) -> tuple[int, float]:
    started, lines = time.perf_counter(), 0
    for result in parse_file(open_raw, path, format_spec, chunk_bytes):
        lines += result.lines_read
    return lines, time.perf_counter() - started


def _parse_and_enrich(path: str, format_spec: str, chunk_bytes: int, enricher: Enricher) -> float:
    """Seconds spent in enrich_batch over the whole file."""
    seconds = 0.0
    for result in parse_file(open_raw, path, format_spec, chunk_bytes):
        if result.kind == "access" and result.events.num_rows:
            started = time.perf_counter()
            enrich_batch(result.events, enricher)
            seconds += time.perf_counter() - started
    return seconds


@dataclasses.dataclass
class Distinct:
    """The file's distinct user agents and client addresses (a sample of each for the engine timings)."""

    user_agents: int
    addresses: int
    user_agent_sample: list[str]
    address_sample: list[str]


def _distinct(path: str, format_spec: str, chunk_bytes: int) -> tuple[set[str], set[str]]:
    agents: set[str] = set()
    addresses: set[str] = set()
    for result in parse_file(open_raw, path, format_spec, chunk_bytes):
        if result.kind == "access":
            agents.update(pc.unique(result.events.column("user_agent_original")).drop_null().to_pylist())
            addresses.update(pc.unique(result.events.column("source_ip")).drop_null().to_pylist())
    return agents, addresses


def _survey(path: str, format_spec: str, chunk_bytes: int, directory: str | None) -> tuple[Distinct, list[str]]:
    """Run in a child process, so its sets and the database writer do not count in the bench's peak RSS."""
    agents, addresses = _distinct(path, format_spec, chunk_bytes)
    sample = random.Random(0).sample
    distinct = Distinct(
        len(agents),
        len(addresses),
        sample(sorted(agents), min(len(agents), 5000)),
        sample(sorted(addresses), min(len(addresses), 5000)),
    )
    return distinct, covering_databases(addresses, directory) if directory else []


def covering_databases(addresses: set[str], directory: str) -> list[str]:
    """A City and an ASN database with one GeoLite2-shaped record per /24 (or /48) of ``addresses``."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    networks = set()
    for text in addresses:
        address = parse_ip(text)
        if address is not None and is_public(address):
            prefix = 24 if address.version == 4 else 48
            networks.add(str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)))
    paths = []
    for kind, record in (("City", CITY_RECORD), ("ASN", ASN_RECORD)):
        writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=f"GeoLite2-{kind}", languages=["en"])
        for network in networks:
            writer.insert_network(IPSet([network]), record)
        paths.append(str(Path(directory) / f"covering-{kind}.mmdb"))
        writer.to_db_file(paths[-1])
    return paths


def _per_item_us(function, items) -> float:
    for item in items[:200]:  # warm up: lazily compiled regexes, page cache
        function(item)
    started = time.perf_counter()
    for item in items:
        function(item)
    return (time.perf_counter() - started) / max(len(items), 1) * 1e6


def _user_agent_engines(agents: list[str]) -> list[tuple[str, float]]:
    import ua_parser
    import user_agents
    from ua_parser import Domain

    from parsers.enrich.user_agent import UserAgentParser

    timings = [("logwarden UserAgentParser (" + UserAgentParser().engine + ")", UserAgentParser().parse)]
    if ua_parser.RegexResolver is not None:
        rust = ua_parser.RegexResolver(ua_parser.load_lazy_builtins())
        timings.append(("ua-parser + ua-parser-rs", lambda ua: rust(ua, Domain.ALL)))
    basic = ua_parser.BasicResolver(ua_parser.load_builtins())
    timings.append(("ua-parser pure Python", lambda ua: basic(ua, Domain.ALL)))
    timings.append(("user-agents", lambda ua: user_agents.parse(ua).is_bot))
    return [(name, _per_item_us(function, agents)) for name, function in timings]


def _geo_engines(addresses: list[str], databases: list[str]) -> list[tuple[str, float]]:
    import geoip2.database
    import geoip2.errors
    import maxminddb

    from parsers.enrich.geoip import GeoLookup

    city = next(
        (d for d in databases if Path(d).exists() and "City" in maxminddb.open_database(d).metadata().database_type),
        None,
    )
    if city is None:
        return []
    public = [a for a in addresses if (ip := parse_ip(a)) is not None and is_public(ip)]
    raw = maxminddb.open_database(city)
    models = geoip2.database.Reader(city)

    def geoip2_city(address: str):
        try:
            return models.city(address)
        except geoip2.errors.AddressNotFoundError:
            return None

    lookup = GeoLookup.open([city])
    return [
        ("logwarden GeoLookup (maxminddb records)", _per_item_us(lookup.lookup, public)),
        ("maxminddb get", _per_item_us(raw.get, public)),
        ("geoip2 Reader.city", _per_item_us(geoip2_city, public)),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench enrich", description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--format", default="auto")
    parser.add_argument("--chunk-bytes", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--geoip-db", action="append", metavar="PATH", help="default: databases covering FILE")
    parser.add_argument("--ip-cache-size", type=int, default=EnrichConfig.ip_cache_size)
    args = parser.parse_args(argv)

    lines, parse_seconds = _parse_only(args.file, args.format, args.chunk_bytes)
    rss_parse = _peak_rss_mib()
    with tempfile.TemporaryDirectory() as directory:
        fork = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=fork) as child:
            survey = child.submit(
                _survey, args.file, args.format, args.chunk_bytes, None if args.geoip_db else directory
            )
            distinct, covering = survey.result()
        databases = args.geoip_db or covering
        return _enrich_and_report(args, databases, lines, parse_seconds, rss_parse, distinct)


def _enrich_and_report(
    args, databases: list[str], lines: int, parse_seconds: float, rss_parse: float, distinct: Distinct
) -> int:
    started = time.perf_counter()
    enricher = Enricher(databases, ip_cache_size=args.ip_cache_size)
    setup_seconds = time.perf_counter() - started
    enrich_seconds = _parse_and_enrich(args.file, args.format, args.chunk_bytes, enricher)
    rss_enrich = _peak_rss_mib()
    stats = enricher.stats()

    print(f"enrichment bench: {args.file}, {lines:,} lines, databases: {', '.join(databases)}")
    print(f"ip_cache_size {args.ip_cache_size:,}")
    print(f"{'step':<44}{'seconds':>10}{'lines/s':>14}{'vs parse':>10}")
    print(f"{'parse (baseline)':<44}{parse_seconds:>10.2f}{lines / parse_seconds:>14,.0f}{'100%':>10}")
    ratio = enrich_seconds / parse_seconds
    print(f"{'enrich_batch (all batches)':<44}{enrich_seconds:>10.2f}{lines / enrich_seconds:>14,.0f}{ratio:>10.1%}")
    print(f"{'Enricher setup (once per worker)':<44}{setup_seconds:>10.2f}")
    print()
    print(f"{'memo':<16}{'rows':>12}{'distinct':>10}{'looked up':>11}{'row hit rate':>14}{'resets':>8}")
    for name, memo, count in (
        ("user agents", stats.user_agents, distinct.user_agents),
        ("addresses", stats.addresses, distinct.addresses),
    ):
        print(f"{name:<16}{memo.rows:>12,}{count:>10,}{memo.computed:>11,}{memo.hit_rate:>14.4%}{memo.resets:>8}")
    print(f"addresses found public and looked up in the databases: {stats.addresses_in_databases:,}")
    print(f"peak RSS: parse only {rss_parse:.0f} MiB, after parse + enrich {rss_enrich:.0f} MiB")
    print()
    print(f"{'engine (per distinct value)':<44}{'µs each':>10}")
    timings = _user_agent_engines(distinct.user_agent_sample) + _geo_engines(distinct.address_sample, databases)
    for name, micros in timings:
        print(f"{name:<44}{micros:>10.1f}")
    print(f"goal: enrichment < 25% of parse time: {'met' if ratio < 0.25 else 'NOT met'} ({ratio:.1%})")
    enricher.close()
    return 0 if ratio < 0.25 else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
