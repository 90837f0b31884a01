"""Searching the encrypted events: partitions pruned by day, predicates read first, whole rows only where they match.

A search opens only the partitions of its date range.  In each file it reads
the predicate columns of a row group first (the cheap part: one or two
decrypted columns), and decrypts whole rows only of row groups with a match.
Lookups of an IP address or a user name first ask the file's blind index
(``access.blind_index``) which row groups can hold the value, so a month-long
lookup of one address reads a handful of row groups.  A file without a valid
index is scanned, and indexed on the way when ``build_indexes`` is on.

Results stream as Arrow tables, oldest first; ``limit`` stops the scan as soon
as enough rows were found.  Everything is read with ``ParquetFile`` per file,
never through ``Scanner.to_reader`` (see ``retention.archive_reader``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from retention.access import blind_index
from retention.access.catalog import ArchiveFile, published_files
from retention.encryption import ArchiveDecryptor
from retention.keyring import ArchiveKeys
from retention.layout import ACCESS_DIR

log = logging.getLogger("logwarden")


class SearchError(ValueError):
    """A search was asked for in a way that cannot be answered (bad address, bad dates)."""


@dataclasses.dataclass(frozen=True)
class Window:
    """Events of one alert: its key (IP or user) between its first and last sighting."""

    field: str
    value: str
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclasses.dataclass(frozen=True)
class EventQuery:
    start: dt.date
    end: dt.date  # inclusive
    ips: tuple[str, ...] = ()  # addresses or networks (CIDR)
    users: tuple[str, ...] = ()
    path_prefix: str | None = None
    statuses: tuple[int, ...] = ()
    windows: tuple[Window, ...] = ()  # from alerts (--rule); an empty tuple with ``from_rule`` matches nothing
    from_rule: bool = False

    def __post_init__(self):
        if self.end < self.start:
            raise SearchError(f"--to {self.end} is before --from {self.start}")
        for ip in self.ips:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                raise SearchError(f"--ip {ip!r} is neither an address nor a network like 203.0.113.0/24") from None

    @property
    def addresses(self) -> tuple[str, ...]:
        """Single addresses (what the blind index answers); networks are scanned."""
        return tuple(ip for ip in self.ips if "/" not in ip)

    @property
    def networks(self) -> tuple[ipaddress._BaseNetwork, ...]:
        return tuple(ipaddress.ip_network(ip, strict=False) for ip in self.ips if "/" in ip)

    def columns(self) -> list[str]:
        """The predicate columns read before deciding whether a row group is decrypted whole."""
        needed = []
        if self.ips:
            needed.append("source_ip")
        if self.users:
            needed.append("user_name")
        if self.path_prefix is not None:
            needed.append("url_path")
        if self.statuses:
            needed.append("http_response_status_code")
        if self.windows:
            needed += ["timestamp", *sorted({w.field for w in self.windows})]
        return list(dict.fromkeys(needed))

    def index_lookups(self) -> list[tuple[str, tuple[str, ...]]]:
        """(field, values) lookups that must all match (AND), each answered by the blind index."""
        lookups = []
        if self.ips and not self.networks:
            lookups.append(("source_ip", self.addresses))
        if self.users:
            lookups.append(("user_name", self.users))
        if self.windows:
            by_field: dict[str, set[str]] = {}
            for window in self.windows:
                by_field.setdefault(window.field, set()).add(window.value)
            if len(by_field) == 1:
                ((field, values),) = by_field.items()
                lookups.append((field, tuple(sorted(values))))
        return lookups

    def mask(self, table: pa.Table) -> pa.ChunkedArray | pa.Array:
        """Which rows of ``table`` (holding ``columns()``) match every predicate."""
        result = pa.array(np.ones(table.num_rows, dtype=bool))
        if self.ips:
            result = pc.and_(result, ip_mask(table.column("source_ip"), self.addresses, self.networks))
        if self.users:
            result = pc.and_(result, pc.fill_null(pc.is_in(table.column("user_name"), pa.array(self.users)), False))
        if self.path_prefix is not None:
            result = pc.and_(result, pc.fill_null(pc.starts_with(table.column("url_path"), self.path_prefix), False))
        if self.statuses:
            statuses = pa.array(self.statuses, table.schema.field("http_response_status_code").type)
            result = pc.and_(result, pc.fill_null(pc.is_in(table.column("http_response_status_code"), statuses), False))
        if self.windows:
            result = pc.and_(result, windows_mask(table, self.windows))
        if "timestamp" in table.column_names:
            result = pc.and_(result, self.days_mask(table.column("timestamp")))
        return result

    def days_mask(self, stamps: pa.ChunkedArray):
        """Rows within the query's days (needed where a partition holds more than one day: the archive tier)."""
        low = pa.scalar(dt.datetime.combine(self.start, dt.time(), dt.timezone.utc), stamps.type)
        high = pa.scalar(dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), dt.timezone.utc), stamps.type)
        return pc.and_(pc.greater_equal(stamps, low), pc.less(stamps, high))


def ip_mask(column: pa.ChunkedArray, addresses: tuple[str, ...], networks: tuple) -> pa.ChunkedArray:
    """Rows whose address equals one of ``addresses`` (any spelling) or lies in one of ``networks``."""
    wanted = {blind_index.normalise("source_ip", a) for a in addresses}
    matching = []
    for value in pc.unique(column.drop_null()).to_pylist():
        normal = blind_index.normalise("source_ip", value)
        if normal in wanted:
            matching.append(value)
        elif networks:
            try:
                address = ipaddress.ip_address(normal)
            except ValueError:
                continue
            if any(address.version == n.version and address in n for n in networks):
                matching.append(value)
    return pc.fill_null(pc.is_in(column, pa.array(matching, pa.string())), False)


def windows_mask(table: pa.Table, windows: tuple[Window, ...]):
    result = pa.array(np.zeros(table.num_rows, dtype=bool))
    stamps = table.column("timestamp")
    for window in windows:
        low = pa.scalar(window.first_seen, stamps.type)
        high = pa.scalar(window.last_seen, stamps.type)
        hit = pc.and_(
            pc.equal(table.column(window.field), window.value),
            pc.and_(pc.greater_equal(stamps, low), pc.less_equal(stamps, high)),
        )
        result = pc.or_(result, pc.fill_null(hit, False))
    return result


@dataclasses.dataclass
class SearchStats:
    """What a search touched: said in the summary and written to the audit trail (never the values)."""

    partitions: int = 0
    files: int = 0
    row_groups: int = 0
    row_groups_decrypted: int = 0
    rows: int = 0
    indexes_used: int = 0
    indexes_built: int = 0
    stopped_early: bool = False
    #: Rows returned per file (the audit trail lists the files read)
    returned: dict[str, int] = dataclasses.field(default_factory=dict, repr=False)
    _days: set = dataclasses.field(default_factory=set, repr=False)

    def counts(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("returned", "_days")}


class IndexKeys:
    """Index keys per ``personal`` key version, derived once from the role's private halves."""

    def __init__(self, keys: ArchiveKeys):
        self._keys = keys
        self._cache: dict[str, blind_index.IndexKey] = {}

    def get(self, key_id: str) -> blind_index.IndexKey:
        key = self._cache.get(key_id)
        if key is None:
            key = self._cache[key_id] = blind_index.IndexKey.from_private(key_id, self._keys.private_key(key_id))
        return key


class IndexStore:
    """Opening and (re)building the blind index of an archive file."""

    def __init__(self, keys: ArchiveKeys, build: bool = True):
        self.index_keys = IndexKeys(keys)
        self.build = build
        self._write_failed = False

    def load(self, file: ArchiveFile) -> blind_index.FileIndex | None:
        """The file's index if it exists, opens with our key and belongs to this very file (same SHA-256)."""
        key_id = file.personal_key_id
        if key_id is None or not file.index_path.is_file():
            return None
        try:
            data = file.index_path.read_bytes()
            index = blind_index.from_bytes(data, self.index_keys.get(key_id))
        except (blind_index.BlindIndexError, OSError) as error:
            log.warning("ignoring the index of %s: %s", file.path, error)
            return None
        if index.sha256 != file.entry.get("sha256") or index.file != file.path.name:
            return None  # the data file was rewritten after the index was made: stale
        return index

    def make(self, file: ArchiveFile, parquet: pq.ParquetFile) -> blind_index.FileIndex | None:
        key_id = file.personal_key_id
        if key_id is None:
            return None
        key = self.index_keys.get(key_id)
        index = blind_index.build(parquet, key, file.path.name, file.entry.get("sha256", ""))
        try:
            blind_index.write_file(file.index_path, index, key)
        except OSError as error:
            if not self._write_failed:
                log.warning("cannot write blind indexes (%s); searches will scan instead", error)
                self._write_failed = True
        return index


def open_file(file: ArchiveFile, decryptor: ArchiveDecryptor) -> pq.ParquetFile:
    return pq.ParquetFile(file.path, decryption_properties=decryptor.file_properties())


def search_events(
    archive: str | Path,
    keys: ArchiveKeys,
    query: EventQuery,
    *,
    tier: str = "online",
    limit: int | None = None,
    build_indexes: bool = True,
    stats: SearchStats | None = None,
) -> Iterator[pa.Table]:
    """Matching events, oldest partition first, as tables of whole rows; stops once ``limit`` rows were yielded."""
    stats = stats if stats is not None else SearchStats()
    if query.from_rule and not query.windows:
        return  # the rule raised no alert in these days: no event is behind it
    decryptor = ArchiveDecryptor(keys)
    indexes = IndexStore(keys, build_indexes)
    lookups = query.index_lookups()
    destroyed = set(keys.keyring.destroyed())
    for file in published_files(archive, ACCESS_DIR, query.start, query.end, tier, destroyed):
        if limit is not None and stats.rows >= limit:
            stats.stopped_early = True
            return
        stats._days.add(file.day)
        stats.partitions = len(stats._days)
        stats.files += 1
        parquet = open_file(file, decryptor)
        columns = query.columns()
        if file.compacted and "timestamp" not in columns:
            columns.append("timestamp")
        groups = list(range(parquet.num_row_groups))
        stats.row_groups += len(groups)
        if lookups:
            index = indexes.load(file)
            if index is not None:
                stats.indexes_used += 1
            elif indexes.build:
                index = indexes.make(file, parquet)
                stats.indexes_built += index is not None
            if index is not None:
                key = indexes.index_keys.get(index.key_id)
                candidates = set(groups)
                for field, values in lookups:
                    candidates &= index.lookup(key, field, values)
                groups = sorted(candidates)
        for group in groups:
            if columns:
                mask = query.mask(parquet.read_row_group(group, columns=columns))
                if not pc.any(mask).as_py():
                    continue
                rows = parquet.read_row_group(group).filter(mask)
            else:
                rows = parquet.read_row_group(group)
            stats.row_groups_decrypted += 1
            if limit is not None:
                rows = rows.slice(0, limit - stats.rows)
            if rows.num_rows:
                stats.rows += rows.num_rows
                stats.returned[str(file.path)] = stats.returned.get(str(file.path), 0) + rows.num_rows
                yield rows
            if limit is not None and stats.rows >= limit:
                stats.stopped_early = True
                return


def build_indexes(archive: str | Path, keys: ArchiveKeys, tier: str = "all") -> tuple[int, int]:
    """Index every event file that has no valid index yet; returns (files indexed, files already indexed)."""
    store = IndexStore(keys, True)
    decryptor = ArchiveDecryptor(keys)
    built = kept = 0
    for file in published_files(archive, ACCESS_DIR, tier=tier, destroyed=set(keys.keyring.destroyed())):
        if store.load(file) is not None:
            kept += 1
            continue
        store.make(file, open_file(file, decryptor))
        built += 1
    return built, kept
