"""``python -m bench search``: one month of encrypted events, searched with the blind index vs a DuckDB full scan.

Generates ``--days`` days of ``--lines`` access events a day (Arrow, realistic
cardinalities: a pool of client addresses with heavy hitters, a few percent of
requests authenticated, a site map of paths, a status mix), writes each day as
the pipeline does (``ParquetFileWriter``, the writer role's public keys,
default row groups, published through the commit protocol), then times in one
run:

* building the blind indexes (once, as ``search --build-index`` would);
* ``search_events`` for one IP, one user, a path prefix and a status over the
  whole month (rows counted, never printed);
* the same questions as one DuckDB SQL full scan over the decrypted dataset
  (``retention.archive_reader.query_archive``: every column decrypted, what a
  reader without an index does; one scan answers all four, and its time is
  the cost of any one of them).

Reports seconds, speed-up and the index size against the archive's.  Goals:
single IP < 3 s, >= 20x faster than the full scan, index < 5 % of the archive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

PATHS = [
    f"/{section}/{word}" for section in ("blog", "docs", "products", "support", "news", "api/v1") for word in range(300)
]
AGENTS = [f"Mozilla/5.0 (X11; Linux x86_64) Firefox/{v}.0" for v in range(100, 140)]


def _ips(rng: np.random.Generator, count: int) -> np.ndarray:
    octets = rng.integers(1, 255, size=(count, 4))
    return np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in octets])


def day_table(rng: np.random.Generator, day: dt.date, lines: int, ip_pool: np.ndarray, users: np.ndarray) -> pa.Table:
    """One day of events from visitor sessions: a visitor (address, maybe a user) makes a burst of requests.

    About 25 requests per visitor on average with a heavy tail (crawlers, busy offices), visitors drawn from a
    pool that returns across the month, 5 % of visitors logged in; rows sorted by time like a log.
    """
    from schemas import ACCESS_EVENT

    visitors = max(1, lines // 25)
    weight = rng.pareto(1.5, size=visitors) + 1.0
    visitor_of_line = rng.choice(visitors, size=lines, p=weight / weight.sum())
    visitor_ip = rng.integers(0, len(ip_pool), size=visitors)
    visitor_user = np.where(rng.random(visitors) < 0.05, rng.integers(0, len(users), size=visitors), -1)
    session_start = rng.integers(0, 86_400_000_000, size=visitors)
    offsets = rng.exponential(900_000_000, size=lines).astype(np.int64)
    start = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() * 1_000_000)
    stamps = start + np.minimum(session_start[visitor_of_line] + offsets, 86_399_999_999)
    order = np.argsort(stamps, kind="stable")
    stamps, visitor_of_line = stamps[order], visitor_of_line[order]
    ip_index = visitor_ip[visitor_of_line]
    user_index = visitor_user[visitor_of_line]
    authenticated = user_index >= 0
    user_index = np.maximum(user_index, 0)
    path_index = np.minimum(rng.zipf(1.2, size=lines) - 1, len(PATHS) - 1)
    status = rng.choice(np.array([200, 200, 200, 200, 200, 304, 301, 404, 403, 500], dtype=np.int16), size=lines)
    ips = pa.DictionaryArray.from_arrays(pa.array(ip_index.astype(np.int32)), pa.array(ip_pool)).cast(pa.string())
    user_names = pa.DictionaryArray.from_arrays(
        pa.array(user_index.astype(np.int32), mask=~authenticated), pa.array(users)
    ).cast(pa.string())
    paths = pa.DictionaryArray.from_arrays(pa.array(path_index.astype(np.int32)), pa.array(PATHS)).cast(pa.string())
    agents = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, len(AGENTS), size=lines).astype(np.int32)), pa.array(AGENTS)
    ).cast(pa.string())
    columns = {
        "timestamp": pa.array(stamps, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "source_address": ips,
        "source_ip": ips,
        "user_name": user_names,
        "http_request_method": pa.array(np.full(lines, "GET")),
        "url_original": paths,
        "url_path": paths,
        "http_version": pa.array(np.full(lines, "1.1")),
        "http_response_status_code": pa.array(status),
        "http_response_body_bytes": pa.array(rng.integers(200, 50_000, size=lines)),
        "user_agent_original": agents,
        "event_dataset": pa.array(np.full(lines, "access")),
        "log_file_path": pa.array(np.full(lines, f"/var/log/nginx/access.log-{day:%Y%m%d}")),
        "log_offset": pa.array(np.arange(lines, dtype=np.int64) * 180),
    }
    arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(lines, f.type) for f in ACCESS_EVENT]
    return pa.Table.from_arrays(arrays, schema=ACCESS_EVENT)


def write_month(root: Path, keys, days: int, lines: int, seed: int) -> tuple[int, float, dict]:
    """Write ``days`` partitions as the pipeline does; returns (archive bytes, seconds, probes)."""
    from retention import commit
    from retention.encryption import ArchiveEncryptor
    from retention.parquet_files import ParquetFileWriter
    from schemas import ACCESS_EVENT
    from schemas.config import ArchiveConfig

    config = ArchiveConfig()
    rng = np.random.default_rng(seed)
    ip_pool = _ips(rng, max(1000, days * lines // 75))  # visitors come back: ~1/3 of a day's are returning
    users = np.array([f"user{n:05d}" for n in range(max(100, days * lines // 500))])
    encryptor = ArchiveEncryptor(keys)
    from retention.keyring import default_signing_key_file
    from retention.signing import read_signer

    signer = read_signer(default_signing_key_file(keys.directory))  # made and trusted by init_keyring
    size, seconds = 0, 0.0
    first = dt.date(2026, 1, 1)
    probes = {"path": "/api/v1/1", "status": 500}
    for n in range(days):
        day = first + dt.timedelta(days=n)
        table = day_table(rng, day, lines, ip_pool, users)
        if n == days // 2:
            probes.update(ip=_probe(table, "source_ip"), user=_probe(table, "user_name"))
        started = time.perf_counter()
        writer = ParquetFileWriter(
            commit.staging_path(str(root), "bench"),
            ACCESS_EVENT,
            commit.create,
            encryption=encryptor.for_day(ACCESS_EVENT, day.isoformat()),
            compression=config.compression,
            row_group_rows=config.row_group_rows,
        )
        for batch in table.to_batches(max_chunksize=65_536):
            writer.write(batch)
        written = writer.close()
        commit.commit(str(root), "events", day.isoformat(), "bench", [written], signer=signer)
        seconds += time.perf_counter() - started
        size += written.size
    return size, seconds, probes


def _probe(table: pa.Table, column: str) -> str:
    """A value of a mid-month day with a typical (median) number of requests: what an incident lookup asks for."""
    import pyarrow.compute as pc

    counts = pc.value_counts(table.column(column).drop_null()).to_pylist()
    counts.sort(key=lambda c: (c["counts"], c["values"]))
    return counts[len(counts) // 2]["values"]


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--lines", type=int, default=1_000_000, help="events per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed afterwards)")
    args = parser.parse_args(argv)

    from retention.access.search import EventQuery, SearchStats, build_indexes, search_events
    from retention.archive_reader import query_archive
    from retention.keyring import WriterKeys, init_keyring, reader_keys
    from retention.role_keys import add_role, grant, role_keys

    with tempfile.TemporaryDirectory(prefix="bench-search-", dir=args.dir) as tmp:
        base = Path(tmp)
        init_keyring(base / "keyring", base / "root.key", environ={})
        add_role(base / "keyring", "security", base / "security.key")
        grant(reader_keys(base / "keyring", base / "root.key", environ={}), "security")
        archive = base / "archive"
        size, write_seconds, probes = write_month(
            archive, WriterKeys(base / "keyring"), args.days, args.lines, args.seed
        )
        keys = role_keys(base / "keyring", "security", base / "security.key", environ={})
        rows_total = args.days * args.lines
        print(f"archive: {args.days} days x {args.lines:,} events = {rows_total:,} rows, {size / 2**20:,.0f} MiB "
              f"encrypted, written in {write_seconds:.0f} s ({rows_total / write_seconds:,.0f} rows/s)")  # fmt: skip

        index_seconds, (built, _kept) = _timed(lambda: build_indexes(archive, keys))
        index_bytes = sum(p.stat().st_size for p in archive.rglob("_index-*.lwi"))
        print(f"blind index: {built} files in {index_seconds:.1f} s, {index_bytes / 2**20:.2f} MiB "
              f"= {100 * index_bytes / size:.2f} % of the archive")  # fmt: skip

        month = (dt.date(2026, 1, 1), dt.date(2026, 1, 1) + dt.timedelta(days=args.days - 1))
        ip, user, path, status = probes["ip"], probes["user"], probes["path"], probes["status"]
        questions = [
            ("one IP", EventQuery(*month, ips=(ip,)), f"source_ip = '{ip}'"),
            ("one user", EventQuery(*month, users=(user,)), f"user_name = '{user}'"),
            ("path prefix", EventQuery(*month, path_prefix=path), f"starts_with(url_path, '{path}')"),
            ("status", EventQuery(*month, statuses=(status,)), f"http_response_status_code = {status}"),
        ]
        # One full scan answers all four questions at once: its time is what any one of them costs without an index.
        counts = ", ".join(f"count_if({where}) AS q{n}" for n, (_l, _q, where) in enumerate(questions))
        scan_seconds, scanned = _timed(lambda: query_archive(f"SELECT {counts} FROM events", archive, keys))
        print(f"DuckDB full scan over the decrypted month (all columns, all four counts): {scan_seconds:.1f} s")
        print()
        print(f"| query ({args.days} days) | rows | search s | row groups decrypted whole | full scan s | speed-up |")
        print("|---|---:|---:|---:|---:|---:|")
        for n, (label, query, _where) in enumerate(questions):
            stats = SearchStats()
            seconds, rows = _timed(
                lambda q=query, s=stats: sum(t.num_rows for t in search_events(archive, keys, q, stats=s))
            )
            expected = scanned.column(f"q{n}")[0].as_py()
            check = "" if expected == rows else f" (MISMATCH: DuckDB {expected})"
            print(f"| {label} | {rows:,}{check} | {seconds:.2f} | {stats.row_groups_decrypted}/{stats.row_groups} "
                  f"| {scan_seconds:.1f} | {scan_seconds / seconds:.0f}x |")  # fmt: skip
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS {peak:,.0f} MiB; {os.cpu_count()} cores, shared machine")
    return 0
