"""The per-batch core without Beam: parse a chunk, enrich its access events; what ``detect`` and ``parse`` run.

The Beam graph runs the very same functions in its DoFns (``parse_chunk`` in
``ParseChunkFn``, ``enrich_batch`` in ``EnrichBatchFn``, ``Observer`` in
``ObserveFn``), so ``logwarden detect`` over a file raises the alerts
``logwarden batch`` raises: same client address behind trusted proxies, same
ids, times and counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from parsers.enrich import Enricher, enrich_batch
from parsers.files import FileParse, parse_file
from parsers.result import ParseResult
from schemas.config import Config, EnrichConfig


def enricher_for(config: EnrichConfig) -> Enricher | None:
    """The enricher ``batch`` uses for this config (None when enrichment is off)."""
    return Enricher.from_config(config) if config.enabled else None


def enrich_result(result: ParseResult, enricher: Enricher | None) -> ParseResult:
    if enricher is None or result.kind != "access" or not result.events.num_rows:
        return result
    return dataclasses.replace(result, events=enrich_batch(result.events, enricher))


def parse_files(
    paths: Iterable[str],
    open_raw: Callable[[str], BinaryIO],
    format_spec: str,
    config: Config,
    enricher: Enricher | None,
    reports: list[FileParse] | None = None,
) -> Iterator[ParseResult]:
    """Every file parsed chunk by chunk as ``batch`` reads it (chunk size, time zone), access events enriched."""
    for path in paths:
        report = FileParse(path)
        if reports is not None:
            reports.append(report)
        for result in parse_file(
            open_raw,
            path,
            format_spec,
            config.input.chunk_bytes,
            report,
            config.input.timezone,
            config.input.max_line_bytes,
        ):
            yield enrich_result(result, enricher)
