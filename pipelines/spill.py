"""Detection hits of a bounded run, spilled to files so that only their names cross the shuffle.

A local runner holds whatever crosses a GroupByKey in memory until the next stage runs: a
run's hits (a few rows per event and rule) grew its memory with the input.  Instead each
worker appends every batch's hits for a shard, pickled, to one file per shard and bundle
in the run's staging folder (``retention.commit.staging_path``: cleared when the run ends,
removed with the rest of a killed run's staging by ``recover``), and hands on a
``SpilledHits``: the file's name and, per record, where it is and the event times it covers.

Hits carry personal data (addresses, users, evidence lines), so every record is sealed with
AES-GCM under a key made for the run in memory (``new_key``) and never written anywhere: what
a killed run leaves in staging cannot be read by anyone.  A shard's files are deleted once it
is folded.

The fold of a shard reads the records in order of their earliest event time and folds
everything older than the next record's earliest time as it goes, so it holds the hits of
roughly one stretch of event time, not of the whole run (for a log written in time order).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from retention import commit

#: One record of a spill file: (byte offset, length, earliest event time in µs, latest event time in µs).
Record = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class SpilledHits:
    """One spill file: its path and its records (each a pickled list of ``alerts.observe.Hits``)."""

    path: str
    records: tuple[Record, ...]

    @property
    def size(self) -> int:
        return sum(length for _, length, _, _ in self.records)


NONCE_BYTES = 12


def new_key() -> bytes:
    """A run's spill key: random, held in memory by the job only."""
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def unseal(key: bytes, data: bytes) -> bytes:
    return AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)


class SpillWriter:
    """Appends sealed records to one new file in the run's staging folder."""

    def __init__(self, output: str, run_id: str, key: bytes):
        self._key = key
        self.path = commit.staging_path(output, run_id, ".hits")
        self._handle = commit.create(self.path)
        self._records: list[Record] = []
        self._at = 0

    def append(self, data: bytes, earliest_us: int, latest_us: int) -> None:
        data = seal(self._key, data)
        self._handle.write(data)
        self._records.append((self._at, len(data), earliest_us, latest_us))
        self._at += len(data)

    def close(self) -> SpilledHits:
        self._handle.close()
        return SpilledHits(self.path, tuple(self._records))


def dumps(value) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def ordered_records(spills: Iterable[SpilledHits]) -> list[tuple[int, str, int, int]]:
    """Every record as ``(earliest µs, path, offset, length)``, oldest first (ties by file and place: any fixed order
    folds the same, as the fold orders rows itself; a fixed one keeps runs reproducible)."""
    return sorted((earliest, s.path, offset, length) for s in spills for offset, length, earliest, _ in s.records)


def read_records(records: list[tuple[int, str, int, int]], key: bytes) -> Iterator[tuple[int, bytes]]:
    """Each record's earliest time and (unsealed) bytes, in the given order; one open file at a time."""
    handle, open_path = None, None
    try:
        for earliest, path, offset, length in records:
            if path != open_path:
                if handle is not None:
                    handle.close()
                handle = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
                open_path = path
            handle.seek(offset)
            yield earliest, unseal(key, handle.read(length))
    finally:
        if handle is not None:
            handle.close()


def fold_order(records: list[tuple[int, str, int, int]], key: bytes) -> Iterator[tuple[bytes, int | None]]:
    """Each record's bytes (``records`` as ``ordered_records`` gives them) with the next record's earliest event
    time (``None`` after the last): once a record is read, every row older than that has been read."""
    following = [earliest for earliest, *_ in records[1:]] + [None]
    for (_, data), next_earliest in zip(read_records(records, key), following, strict=True):
        yield data, next_earliest


def delete(spills: Iterable[SpilledHits]) -> None:
    """A folded shard's files (what is left of a killed run goes with its staging folder)."""
    paths = [s.path for s in spills]
    if paths:
        FileSystems.delete(paths)
