"""Enrich transform: access-event batches in, the same batches with client, browser and geo columns filled.

The work is ``parsers.enrich.enrich_batch``; this module only gives each worker
one ``Enricher`` (ua-parser's matchers compiled and the GeoIP databases
memory-mapped once, in ``setup``) and reports what the caches did as counters.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from parsers.enrich import Enricher, check_databases, enrich_batch
from pipelines import metrics
from schemas.config import ConfigError, EnrichConfig

USER_AGENTS_PARSED = "user_agents_parsed"
ADDRESSES_LOOKED_UP = "addresses_looked_up"


def check_enrich_config(config: EnrichConfig, key: str = "enrich.geoip_databases") -> None:
    """Raise ConfigError for a GeoIP database of the wrong kind, before any worker starts.

    Missing or unreadable files are not errors: they are warned about once and their fields stay empty.
    """
    problems = check_databases(config.geoip_databases)
    if problems:
        index, problem = problems[0]
        raise ConfigError(f"{key}[{index}]", problem)


class EnrichBatchFn(beam.DoFn):
    def __init__(self, config: EnrichConfig):
        self._config = config
        self._enricher: Enricher | None = None
        self._user_agents = metrics.counter(USER_AGENTS_PARSED)
        self._addresses = metrics.counter(ADDRESSES_LOOKED_UP)

    def setup(self):
        self._enricher = Enricher.from_config(self._config)

    def process(self, batch: pa.RecordBatch):
        agents, addresses = self._enricher.user_agents.stats, self._enricher.addresses.stats
        parsed_before, looked_up_before = agents.computed, addresses.computed
        enriched = enrich_batch(batch, self._enricher)
        self._user_agents.inc(agents.computed - parsed_before)
        self._addresses.inc(addresses.computed - looked_up_before)
        yield enriched

    def teardown(self):
        if self._enricher is not None:
            self._enricher.close()


class Enrich(beam.PTransform):
    """Access events in, access events out with ``user_agent_*``, ``source_geo_*``, ``source_as_*`` filled.

    Behind trusted proxies ``source_ip`` becomes the client from X-Forwarded-For first, so geolocation
    describes the client, not the load balancer.
    """

    def __init__(self, config: EnrichConfig):
        super().__init__()
        self._config = config

    def expand(self, events):
        return events | "EnrichBatch" >> beam.ParDo(EnrichBatchFn(self._config)).with_output_types(pa.RecordBatch)
