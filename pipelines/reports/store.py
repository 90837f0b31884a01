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
import hashlib
import io
import os
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from parsers.reader import head_lines
from pipelines.reports.ownership import Ownership, SourceRange, decide_owners
from pipelines.reports.traffic import GRAIN_UNITS, Key, TrafficPartial
from retention.layout import aggregates_dir, reports_dir
from schemas import BREAKDOWN_STORE, TRAFFIC_STORE

FILE_MODE = 0o640
DIR_MODE = 0o750
#: Decompressed bytes of a file's start that identify it across renames, rotation and compression.
FINGERPRINT_BYTES = 4096


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
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def source_fingerprint(path: str) -> str:
    """A file's identity for de-duplication: a hash of its first decompressed bytes (not its name)."""
    from pipelines.read import open_raw  # Beam filesystems, imported late: this module is also used by plain tools

    with open_raw(path) as raw:
        head = "\n".join(head_lines(raw, path, max_lines=1_000_000, max_bytes=FINGERPRINT_BYTES))
    return hashlib.blake2b(head.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def source_fingerprints(paths: Iterable[str]) -> dict[str, str]:
    return {path: source_fingerprint(path) for path in paths}


def store_tables(
    results: Iterable[tuple[Key, TrafficPartial]], run_id: str, grain: str, geoip_configured: bool
) -> tuple[pa.Table, pa.Table]:
    """The store's ``traffic`` and ``breakdown`` rows of one run."""
    traffic, breakdown = [], []
    for (start, host, source), p in sorted(results, key=lambda kv: kv[0]):
        p.compact_seconds()
        key = {
            "run_id": run_id,
            "source": source,
            "bucket_start": dt.datetime.fromtimestamp(start, dt.timezone.utc),
            "bucket": grain,
            "url_domain": host or None,
        }
        traffic.append(
            {
                **key,
                "source_first_offset": p.first_offset,
                "source_last_offset": p.last_offset,
                "requests": p.requests,
                "bytes": p.bytes,
                "bot_requests": p.bot_requests,
                **{f"status_{c}xx": p.status_classes.get(f"{c}xx", 0) for c in range(1, 6)},
                "seconds": p.seconds.tolist(),
                "second_requests": p.second_requests.tolist(),
                "second_bytes": p.second_bytes.tolist(),
                "visitors_hll": p.visitors,
                "response_ms_kll": p.response_ms,
                "geoip_configured": geoip_configured,
            }
        )
        for dimension, values in sorted(p.breakdown.items()):
            for value, (requests, size, sketch) in values.items():
                breakdown.append(
                    {
                        **key,
                        "dimension": dimension,
                        "value": value,
                        "requests": requests,
                        "bytes": size,
                        "visitors_hll": sketch,
                    }
                )
    return (
        pa.Table.from_pylist(traffic, schema=TRAFFIC_STORE),
        pa.Table.from_pylist(breakdown, schema=BREAKDOWN_STORE),
    )


#: The run id of every stream part: a stream counts each line once through its own checkpoint (parts are
#: published with it), and its parts hold disjoint windows, so they never supersede one another.
STREAM_RUN = "stream"


def store_documents(
    results: Iterable[tuple[Key, TrafficPartial]],
    output: str,
    file_id: str,
    grain: str,
    geoip_configured: bool,
    run_id: str | None = None,
) -> list[tuple[str, bytes]]:
    """``(path, bytes)`` of one run's (or one stream cut's) store files, breakdown first, traffic last."""
    traffic, breakdown = store_tables(results, run_id or file_id, grain, geoip_configured)
    directory = aggregates_dir(output)
    return [
        (FileSystems.join(directory, f"breakdown-{file_id}.parquet"), parquet_bytes(breakdown)),
        (FileSystems.join(directory, f"traffic-{file_id}.parquet"), parquet_bytes(traffic)),
    ]


def write_run_aggregates(
    results: Iterable[tuple[Key, TrafficPartial]], output: str, run_id: str, grain: str, geoip_configured: bool
) -> list[str]:
    """Store one run's aggregates (breakdown first, traffic last: the traffic file commits the run)."""
    make_dirs(reports_dir(output))
    make_dirs(aggregates_dir(output))
    documents = store_documents(results, output, run_id, grain, geoip_configured)
    for path, data in documents:
        write_file(path, data)
    return [path for path, _ in documents]


class StoreError(Exception):
    """The aggregate store cannot answer (missing, or asked for something it does not hold)."""


def _committed_runs(output: str) -> dict[str, tuple[str, str]]:
    directory = aggregates_dir(output)
    if not FileSystems.exists(directory):
        raise StoreError(f"{output}: no aggregates here (expected {directory}; does a batch run write to it?)")
    runs = {}
    for meta in FileSystems.match([FileSystems.join(directory, "traffic-*.parquet")])[0].metadata_list:
        name = meta.path.rsplit("/", 1)[-1]
        run_id = name[len("traffic-") : -len(".parquet")]
        runs[run_id] = (meta.path, FileSystems.join(directory, f"breakdown-{run_id}.parquet"))
    return runs


def _dataset(paths: list[str], schema: pa.Schema) -> ds.Dataset:
    if all(_is_local(p) for p in paths):
        return ds.dataset(paths, schema=schema, format="parquet")
    tables = []
    for path in paths:
        with FileSystems.open(path) as handle:
            tables.append(pq.read_table(handle, schema=schema))
    return ds.InMemoryDataset(pa.concat_tables(tables))


def ownership(output: str, runs: dict[str, tuple[str, str]] | None = None) -> Ownership:
    runs = runs if runs is not None else _committed_runs(output)
    if not runs:
        return decide_owners([])
    table = (
        _dataset([t for t, _ in runs.values()], TRAFFIC_STORE)
        .to_table(columns=["run_id", "source", "source_first_offset", "source_last_offset"])
        .group_by(["run_id", "source"])
        .aggregate([("source_first_offset", "min"), ("source_last_offset", "max")])
    )
    return decide_owners(
        SourceRange(r, s, f, last)
        for r, s, f, last in zip(
            *(
                table.column(c).to_pylist()
                for c in ("run_id", "source", "source_first_offset_min", "source_last_offset_max")
            )
        )
    )


def read_store(
    output: str, start=None, end=None, host: str | None = None, run_ids: set[str] | None = None
) -> tuple[pa.Table, pa.Table, Ownership]:
    """The owned traffic and breakdown rows with ``start <= bucket_start < end`` (and of one host if given)."""
    runs = _committed_runs(output)
    decided = ownership(output, runs)
    if run_ids is not None:
        runs = {r: paths for r, paths in runs.items() if r in run_ids}
    if not runs:
        return TRAFFIC_STORE.empty_table(), BREAKDOWN_STORE.empty_table(), decided
    condition = pc.field("bucket_start").is_valid()
    if start is not None:
        condition &= pc.field("bucket_start") >= pa.scalar(start, TRAFFIC_STORE.field("bucket_start").type)
    if end is not None:
        condition &= pc.field("bucket_start") < pa.scalar(end, TRAFFIC_STORE.field("bucket_start").type)
    if host is not None:
        condition &= pc.field("url_domain") == host
    owned = pa.array(sorted(f"{r}\x00{s}" for r, s in decided.owners), pa.string())

    def owned_rows(table: pa.Table) -> pa.Table:
        if not decided.superseded:
            return table  # every (run, source) owns its rows: nothing to filter
        pair = pc.binary_join_element_wise(table["run_id"], table["source"], "\x00")
        return table.filter(pc.is_in(pair, owned))

    traffic = owned_rows(_dataset([t for t, _ in runs.values()], TRAFFIC_STORE).to_table(filter=condition))
    breakdown = owned_rows(_dataset([b for _, b in runs.values()], BREAKDOWN_STORE).to_table(filter=condition))
    return traffic, breakdown, decided


def run_span(output: str, run_id: str):
    """``(first bucket start, last bucket end)`` of one run's aggregates, or None when it stored none."""
    runs = _committed_runs(output) if FileSystems.exists(aggregates_dir(output)) else {}
    if run_id not in runs:
        return None
    table = _dataset([runs[run_id][0]], TRAFFIC_STORE).to_table(columns=["bucket_start", "bucket"])
    if table.num_rows == 0:
        return None
    low, high = (v.as_py() for v in pc.min_max(table["bucket_start"]).values())
    return low, high + dt.timedelta(seconds=GRAIN_UNITS[table["bucket"][0].as_py()])
