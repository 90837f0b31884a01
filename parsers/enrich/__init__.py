"""Enrichment: user-agent, client-address and geolocation columns added to a batch of access events.

``Enricher`` holds what is costly to build (ua-parser's matchers, the open
databases, the caches) and lives for a whole worker; ``enrich_batch`` is the
per-batch step, vectorised over each column's distinct values.  Order matters:
the real client is found behind trusted proxies first, so geolocation is about
the client and not about the load balancer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pyarrow as pa

from parsers.enrich.client_address import TrustedProxies
from parsers.enrich.geoip import GeoInfo, GeoLookup, check_databases
from parsers.enrich.memo import ColumnMemo, MemoStats
from parsers.enrich.user_agent import UserAgentInfo, UserAgentParser, clip
from schemas.access import ACCESS_EVENT

__all__ = ["EnrichStats", "Enricher", "check_databases", "enrich_batch"]

USER_AGENT_COLUMNS = [
    "user_agent_name",
    "user_agent_version",
    "user_agent_os_name",
    "user_agent_os_version",
    "user_agent_device_name",
    "user_agent_device_type",
    "user_agent_is_bot",
]
GEO_COLUMNS = [
    "source_geo_country_iso_code",
    "source_geo_country_name",
    "source_geo_city_name",
    "source_geo_location",
    "source_as_number",
    "source_as_organization_name",
]
assert len(USER_AGENT_COLUMNS) == len(UserAgentInfo._fields)
assert len(GEO_COLUMNS) == len(GeoInfo._fields)


def _types(names: list[str]) -> list[pa.DataType]:
    return [ACCESS_EVENT.field(name).type for name in names]


@dataclasses.dataclass
class EnrichStats:
    """What the memos did, per kind of lookup (see ``parsers.enrich.memo.MemoStats``)."""

    rows: int
    user_agents: MemoStats
    addresses: MemoStats
    addresses_in_databases: int


class Enricher:
    """Per-worker state for enrichment: the parsers, the open databases and bounded memos of their answers."""

    def __init__(
        self,
        geoip_databases: Sequence[str] = (),
        trusted_proxies: Sequence[str] = (),
        user_agent_cache_size: int = 100_000,
        ip_cache_size: int = 250_000,
    ):
        self.user_agent_parser = UserAgentParser()
        self.geo = GeoLookup.open(geoip_databases)
        self.proxies = TrustedProxies(trusted_proxies, ip_cache_size)
        self.user_agents = ColumnMemo(self.user_agent_parser.parse, _types(USER_AGENT_COLUMNS), user_agent_cache_size)
        self.addresses = ColumnMemo(self.geo.lookup, _types(GEO_COLUMNS), ip_cache_size)
        self.rows = 0

    @classmethod
    def from_config(cls, config) -> Enricher:
        """From an ``EnrichConfig`` (``schemas.config``)."""
        return cls(config.geoip_databases, config.trusted_proxies, config.user_agent_cache_size, config.ip_cache_size)

    def stats(self) -> EnrichStats:
        return EnrichStats(self.rows, self.user_agents.stats, self.addresses.stats, self.geo.lookups_done)

    def close(self) -> None:
        self.geo.close()


def _replace(batch: pa.RecordBatch, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    for name, values in columns.items():
        index = batch.schema.get_field_index(name)
        batch = batch.set_column(index, batch.schema.field(index), values)
    return batch


def enrich_batch(batch: pa.RecordBatch, enricher: Enricher) -> pa.RecordBatch:
    """``batch`` (access events) with the client address resolved and user-agent and geo columns filled."""
    enricher.rows += batch.num_rows
    columns: dict[str, pa.Array] = {}
    source_ip, proxy_ip = enricher.proxies.resolve(
        batch.column("source_ip"), batch.column("http_request_x_forwarded_for"), batch.column("source_proxy_ip")
    )
    columns["source_ip"], columns["source_proxy_ip"] = source_ip, proxy_ip
    user_agents = enricher.user_agents.map(clip(batch.column("user_agent_original")))
    columns.update(zip(USER_AGENT_COLUMNS, user_agents))
    if enricher.geo.enabled:
        columns.update(zip(GEO_COLUMNS, enricher.addresses.map(source_ip)))
    return _replace(batch, columns)
