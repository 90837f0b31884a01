"""The aggregate store: where every run leaves its mergeable traffic aggregates, and how they are read back.

File names inside ``retention.layout.aggregates_dir``::

    <output>/reports/aggregates/breakdown-<run>.parquet   written first
    <output>/reports/aggregates/traffic-<run>.parquet     written last: its presence commits the run
    <output>/reports/report-<name>.html|… .parquet|.csv   report files

The store is plain Parquet on purpose: it holds no personal data (visitors are
sketches, paths generalised before they are counted), so a capacity planner
reads it without archive keys.  Files are 0640 and written under a temporary
name, so a crash never leaves half a run.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.reports import hll_coupons
from pipelines.reports.ownership import STREAM_OWNER, Ownership, decide
from pipelines.reports.traffic import GRAIN_UNITS, Key, TrafficPartial, stored_breakdown
from retention import commit
from retention.layout import aggregates_dir, reports_dir
from schemas import BREAKDOWN_STORE, TRAFFIC_STORE

FILE_MODE = 0o640
DIR_MODE = 0o750


def _is_local(path: str) -> bool:
    return "://" not in path


def make_dirs(path: str) -> None:
    if _is_local(path):
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    elif not FileSystems.exists(path):
        FileSystems.mkdirs(path)


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all; local files get mode 0640 whatever the umask."""
    if not _is_local(path):
        staging = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with FileSystems.create(staging) as handle:
            handle.write(data)
        FileSystems.rename([staging], [path])
        return
    staging = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staging, path)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as a zstd Parquet file, only its string columns dictionary-encoded: a dictionary of the
    per-second lists or of visitor sketches (nearly all distinct) made the store's files larger, and cost
    CPU and a hash table per column (~30 MiB at 5M lines) to find that out."""
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", use_dictionary=strings)
    return sink.getvalue().to_pybytes()


def store_rows(
    key: Key, partial: TrafficPartial, run_id: str, grain: str, geoip_configured: bool
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """The store's ``traffic`` row and ``breakdown`` rows of one (bucket, host, source) of a run.

    Built where the key was merged, so that writing a run's store files only concatenates them.  Visitor
    sketches are stored ``hll_coupons.canonical``: their estimates, and so every report's, do not depend on
    the order the partials were merged in, nor on the worker count.
    """
    start, host, source = key
    partial.compact_seconds()
    bucket_start = dt.datetime.fromtimestamp(start, dt.timezone.utc)
    traffic = pa.RecordBatch.from_pylist(
        [
            {
                "run_id": run_id,
                "source": source,
                "bucket_start": bucket_start,
                "bucket": grain,
                "url_domain": host or None,
                "source_first_offset": partial.first_offset,
                "source_last_offset": partial.last_offset,
                "requests": partial.requests,
                "bytes": partial.bytes,
                "bot_requests": partial.bot_requests,
                **{f"status_{c}xx": partial.status_classes.get(f"{c}xx", 0) for c in range(1, 6)},
                "seconds": partial.seconds,
                "second_requests": partial.second_requests,
                "second_bytes": partial.second_bytes,
                "visitors_hll": hll_coupons.canonical(partial.visitors),
                "response_ms_kll": partial.response_ms,
                "geoip_configured": geoip_configured,
            }
        ],
        schema=TRAFFIC_STORE,
    )
    dimensions, values, requests, sizes, sketches = [], [], [], [], []
    for dimension, slots in stored_breakdown(partial.breakdown):
        dimensions += [dimension] * len(slots)
        values += slots
        for count, size, sketch in slots.values():
            requests.append(count)
            sizes.append(size)
            sketches.append(sketch)
    rows = len(values)
    columns = {
        "run_id": pa.array([run_id] * rows, pa.string()),
        "source": pa.array([source] * rows, pa.string()),
        "bucket_start": pa.array([bucket_start] * rows, BREAKDOWN_STORE.field("bucket_start").type),
        "bucket": pa.array([grain] * rows, pa.string()),
        "url_domain": pa.array([host or None] * rows, pa.string()),
        "dimension": pa.array(dimensions, pa.string()),
        "value": pa.array(values, pa.string()),
        "requests": pa.array(requests, pa.int64()),
        "bytes": pa.array(sizes, pa.int64()),
        "visitors_hll": hll_coupons.canonical_array(pa.array(sketches, pa.binary())),
    }
    breakdown = pa.RecordBatch.from_arrays([columns[name] for name in BREAKDOWN_STORE.names], schema=BREAKDOWN_STORE)
    return traffic, breakdown


#: One key's rows as ``store_rows`` makes them: ``(key, traffic row, breakdown rows)``.
KeyRows = tuple[Key, pa.RecordBatch, pa.RecordBatch]


def run_tables(rows: Iterable[KeyRows]) -> tuple[pa.Table, pa.Table]:
    """A run's ``traffic`` and ``breakdown`` tables from the rows of its keys, in key order."""
    ordered = sorted(rows, key=lambda r: r[0])
    return (
        pa.Table.from_batches([traffic for _, traffic, _ in ordered], TRAFFIC_STORE),
        pa.Table.from_batches([breakdown for _, _, breakdown in ordered], BREAKDOWN_STORE),
    )


def store_tables(
    results: Iterable[tuple[Key, TrafficPartial]], run_id: str, grain: str, geoip_configured: bool
) -> tuple[pa.Table, pa.Table]:
    """The store's ``traffic`` and ``breakdown`` rows of one run."""
    return run_tables((key, *store_rows(key, p, run_id, grain, geoip_configured)) for key, p in results)


#: The run id of every stream part (its owner in ``ownership``): report windows span cuts and restarts.
STREAM_RUN = STREAM_OWNER


def store_documents(
    results: Iterable[tuple[Key, TrafficPartial]],
    output: str,
    file_id: str,
    grain: str,
    geoip_configured: bool,
    run_id: str | None = None,
) -> list[tuple[str, bytes]]:
    """``(path, bytes)`` of one run's (or one stream cut's) store files, breakdown first, traffic last."""
    return table_documents(*store_tables(results, run_id or file_id, grain, geoip_configured), output, file_id)


def table_documents(traffic: pa.Table, breakdown: pa.Table, output: str, file_id: str) -> list[tuple[str, bytes]]:
    directory = aggregates_dir(output)
    return [
        (FileSystems.join(directory, f"breakdown-{file_id}.parquet"), parquet_bytes(breakdown)),
        (FileSystems.join(directory, f"traffic-{file_id}.parquet"), parquet_bytes(traffic)),
    ]


def write_documents(output: str, documents: list[tuple[str, bytes]]) -> list[str]:
    """Write store files in order (breakdown first, traffic last: the traffic file commits the run)."""
    make_dirs(reports_dir(output))
    make_dirs(aggregates_dir(output))
    for path, data in documents:
        write_file(path, data)
    return [path for path, _ in documents]


def write_run_aggregates(
    results: Iterable[tuple[Key, TrafficPartial]], output: str, run_id: str, grain: str, geoip_configured: bool
) -> list[str]:
    """Store one run's aggregates."""
    return write_documents(output, store_documents(results, output, run_id, grain, geoip_configured))


def write_run_rows(rows: Iterable[KeyRows], output: str, run_id: str) -> list[str]:
    """Store one run's aggregates from the ``store_rows`` of its keys."""
    return write_documents(output, table_documents(*run_tables(rows), output, run_id))


class StoreError(Exception):
    """The aggregate store cannot answer (missing, or asked for something it does not hold)."""


def _stored_runs(output: str) -> dict[str, tuple[str, str]]:
    """``{file id: (traffic path, breakdown path)}``; the id is the transaction that stored them."""
    directory = aggregates_dir(output)
    if not FileSystems.exists(directory):
        raise StoreError(f"{output}: no aggregates here (expected {directory}; does a batch run write to it?)")
    runs = {}
    for meta in FileSystems.match([FileSystems.join(directory, "traffic-*.parquet")])[0].metadata_list:
        name = meta.path.rsplit("/", 1)[-1]
        run_id = name[len("traffic-") : -len(".parquet")]
        runs[run_id] = (meta.path, FileSystems.join(directory, f"breakdown-{run_id}.parquet"))
    return runs


def _read(path: str, schema: pa.Schema, condition=None) -> pa.Table:
    import pyarrow.dataset as ds  # for reports only: the job that writes the store never loads it (~15 MiB)

    if _is_local(path):
        return ds.dataset(path, schema=schema, format="parquet").to_table(filter=condition)
    with FileSystems.open(path) as handle:
        return pq.read_table(handle, schema=schema, filters=condition)


def _read_all(files: dict[str, str], schema: pa.Schema, condition) -> pa.Table:
    """Rows of every file, each with a ``publisher`` column: the id of the transaction that stored it."""
    import pyarrow.dataset as ds  # as in _read

    by_path = {path: publisher for publisher, path in files.items()}
    if by_path and all(_is_local(p) for p in by_path):
        dataset = ds.dataset(sorted(by_path), schema=schema, format="parquet")
        parts = [(by_path[f.path], f.to_table(filter=condition, schema=schema)) for f in dataset.get_fragments()]
    else:
        parts = [(publisher, _read(path, schema, condition)) for path, publisher in sorted(by_path.items())]
    tables = [t.append_column("publisher", pa.array([p] * t.num_rows, pa.string())) for p, t in parts]
    return pa.concat_tables(tables) if tables else schema.append(pa.field("publisher", pa.string())).empty_table()


def _row_keys(table: pa.Table) -> pa.Array:
    """What ties a breakdown row to its traffic row: store file, source, bucket and host."""
    bucket = pc.cast(pc.cast(table["bucket_start"], pa.int64()), pa.string())
    return pc.binary_join_element_wise(
        table["publisher"], table["source"], bucket, pc.fill_null(table["url_domain"], ""), "\x00"
    )


def read_store(output: str, start=None, end=None, host: str | None = None) -> tuple[pa.Table, pa.Table, Ownership]:
    """The counted traffic and breakdown rows with ``start <= bucket_start < end`` (and of one host if given).

    Which rows count is the ingest ledger's to say (``ownership.decide``): the records of completed
    transactions are read once here.
    """
    runs = _stored_runs(output)
    records = commit.completed_transactions(output)
    condition = pc.field("bucket_start").is_valid()
    if start is not None:
        condition &= pc.field("bucket_start") >= pa.scalar(start, TRAFFIC_STORE.field("bucket_start").type)
    if end is not None:
        condition &= pc.field("bucket_start") < pa.scalar(end, TRAFFIC_STORE.field("bucket_start").type)
    if host is not None:
        condition &= pc.field("url_domain") == host
    traffic = _read_all({r: t for r, (t, _) in runs.items()}, TRAFFIC_STORE, condition)
    decided = decide(
        traffic["publisher"].to_pylist(),
        traffic["run_id"].to_pylist(),
        traffic["source"].to_pylist(),
        traffic["source_first_offset"].to_numpy(zero_copy_only=False),
        traffic["source_last_offset"].to_numpy(zero_copy_only=False),
        records,
    )
    left_out = traffic.filter(pc.invert(pa.array(decided.counted))) if not decided.counted.all() else None
    if left_out is not None:
        traffic = traffic.filter(pa.array(decided.counted))
    publishers = set(traffic["publisher"].to_pylist())
    breakdown = _read_all({r: b for r, (_, b) in runs.items() if r in publishers}, BREAKDOWN_STORE, condition)
    if left_out is not None and left_out.num_rows and breakdown.num_rows:  # rows of a store file kept in part
        breakdown = breakdown.filter(pc.invert(pc.is_in(_row_keys(breakdown), _row_keys(left_out))))
    return traffic.drop_columns(["publisher"]), breakdown.drop_columns(["publisher"]), decided


def stored_hosts(output: str, start=None, end=None) -> list[str]:
    """Virtual hosts with counted traffic in ``[start, end)`` ("(no host)" for logs without one), for hints."""
    traffic, _, _ = read_store(output, start, end)
    return sorted({h or "(no host)" for h in traffic["url_domain"].to_pylist()})


def run_span(output: str, run_id: str):
    """``(first bucket start, last bucket end)`` of one run's aggregates, or None when it stored none."""
    runs = _stored_runs(output) if FileSystems.exists(aggregates_dir(output)) else {}
    if run_id not in runs:
        return None
    table = _read(runs[run_id][0], TRAFFIC_STORE, None).select(["bucket_start", "bucket"])
    if table.num_rows == 0:
        return None
    low, high = (v.as_py() for v in pc.min_max(table["bucket_start"]).values())
    return low, high + dt.timedelta(seconds=GRAIN_UNITS[table["bucket"][0].as_py()])
