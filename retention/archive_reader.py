"""Opening the encrypted archive: one function for search, reports and retention, and a DuckDB helper over it.

``open_archive`` gives a ``pyarrow.dataset.Dataset`` whose files decrypt with
one role's keys; filters on ``dt`` (the partition day) prune whole partitions
before any file is opened.  Its files are those the partitions' manifests list
(``retention.commit.live_files``), never a directory listing: a file a killed
writer left behind is not read, nor one whose manifest no trusted writer signed
(``retention.signing``).  Months whose keys were destroyed are left out (they
are crypto-shredded: nobody can read them) unless asked for, so a scan over
the rest still works.  Archives on any Beam filesystem (``gs://``, ``s3://``) are
read through it (``retention.arrow_filesystem``).  The schema comes from ``schemas``, not from a file's
footer, so opening never needs a key; reading does.

Read with ``to_table()``, ``to_batches()`` or ``scanner(...).to_batches()``;
avoid ``scanner(...).to_reader()``: pyarrow 25 holds the GIL in it while its IO
threads wait to call the (Python) KMS client, and the process deadlocks.
``query_archive`` therefore hands DuckDB streams made with ``to_batches``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from retention import commit, layout
from retention.arrow_filesystem import arrow_filesystem_for, is_remote
from retention.encryption import ArchiveDecryptor
from retention.keyring import ArchiveKeys
from retention.layout import ACCESS_DIR, DATASETS
from retention.tiers import ONLINE, tier_files, tier_root

PARTITION_FIELD = pa.field("dt", pa.string())


class ArchiveReadError(Exception):
    """The archive cannot be opened as asked (no keys, not an archive, unknown dataset)."""


def dataset_directory(path: str | os.PathLike, dataset: str | None = None) -> tuple[str, str, str]:
    """``path`` is an archive root (with ``events/``…) or one dataset directory; returns (root, dataset, directory).

    Paths stay strings, so ``gs://bucket/archive`` keeps its scheme."""
    path = str(path).rstrip("/") if is_remote(str(path)) else os.fspath(Path(path))
    root, _, base = path.rpartition("/")
    if dataset is None and base in DATASETS:
        return root or ".", base, path
    dataset = dataset or ACCESS_DIR
    if dataset not in DATASETS:
        raise ArchiveReadError(f"unknown archive dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return path, dataset, layout.dataset_dir(path, dataset)


def open_archive(
    path: str | os.PathLike,
    keys: ArchiveKeys | None,
    dataset: str | None = None,
    include_shredded: bool = False,
    tiers: tuple[str, ...] = (ONLINE,),
) -> ds.Dataset:
    """The archive's ``dataset`` (``events``, ``errors``, ``dead_letters`` or ``alerts``) readable with ``keys``.

    ``tiers=("online", "archive")`` adds the archive tier (``retention.tiers``), each row once.  There ``dt``
    is the first day of a row's segment (an ISO week cut at month ends), so filter archived rows by time.
    """
    if keys is None:
        raise ArchiveReadError(
            "the archive is encrypted: reading it needs the reader role's keys "
            "(the keyring plus the root key from $LOGWARDEN_ROOT_KEY or keys.root_key_file)"
        )
    root, name, directory = dataset_directory(path, dataset)
    if not (commit.dataset_exists(root, name) if is_remote(root) else os.path.isdir(directory)):
        raise ArchiveReadError(f"{directory} is not an archive dataset directory (no such directory)")
    by_tier = {tier: [] for tier in tiers}
    for found in tier_files(root, name, tuple(tiers), keys.trusted_signers()):
        by_tier[found.tier].append(found.live)
    destroyed = set() if include_shredded else set(keys.keyring.destroyed())
    scan = ds.ParquetFragmentScanOptions(decryption_config=ArchiveDecryptor(keys).dataset_config())
    parts = [
        ds.dataset(
            [f.path for f in files if layout.month_of_day(f.day) not in destroyed],
            schema=DATASETS[name].append(PARTITION_FIELD),
            format=ds.ParquetFileFormat(default_fragment_scan_options=scan),
            partitioning=ds.partitioning(pa.schema([PARTITION_FIELD]), flavor="hive"),
            partition_base_dir=layout.dataset_dir(tier_root(root, tier), name),
            filesystem=arrow_filesystem_for(root),
        )
        for tier, files in by_tier.items()
    ]
    return parts[0] if len(parts) == 1 else ds.dataset(parts)


def _stream(dataset: ds.Dataset, where: ds.Expression | None) -> pa.RecordBatchReader:
    # Scanner.to_batches releases the GIL while it waits; Scanner.to_reader, which DuckDB would call on a
    # registered dataset, does not (see the module docstring).  Without threads: when DuckDB stops reading
    # early (LIMIT), a threaded scan keeps decrypting ahead in Arrow's pool, and at exit the interpreter
    # waited forever for those threads (4 of 4 runs over 14 partitions).
    return pa.RecordBatchReader.from_batches(dataset.schema, dataset.to_batches(filter=where, use_threads=False))


def query_archive(sql: str, path: str | os.PathLike, keys: ArchiveKeys, where: ds.Expression | None = None) -> pa.Table:
    """Run DuckDB ``sql`` over the archive; each dataset present (``events``, ``errors``…) is a table of that name.

    ``where`` (a pyarrow expression such as ``ds.field("dt") >= "2026-01-01"``)
    is applied before decryption and prunes partitions; DuckDB itself gets
    streams without projection pushdown, so a narrow ``where`` is what keeps a
    query over a large archive quick.
    """
    import duckdb  # imported here: only queries need it

    connection = duckdb.connect()
    try:
        for name in DATASETS:
            if commit.dataset_exists(str(path), name):
                connection.register(name, _stream(open_archive(path, keys, name), where))
        return connection.sql(sql).to_arrow_table()
    finally:
        connection.close()
