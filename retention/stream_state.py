"""The streaming job's durable state: one checkpoint, moved forward only together with the files it covers.

Beam keeps nothing durable on a local runner, so exactly-once rests on this
module.  A *cut* publishes the archive files (events, errors, dead letters,
alerts) and report parts written since the last one and, in the same step, the
checkpoint that says what they cover: per followed content, the offset just past
the last archived line, and the detection state (open windows, cool-downs)
after those lines.  A cut is one transaction of ``retention.commit``:

1. ``begin_transaction``; every partition is committed under the transaction's
   id, out of readers' sight (a run holding its lease keeps them safe from any
   other run's recovery);
2. ``commit-pending`` is written: the transaction id, the report parts to write
   and the new checkpoint, to a temporary name, fsynced, renamed;
3. ``complete_transaction`` with the cut's ledger record (``retention.ledger``:
   byte ranges archived, alert ids raised).  This is THE commit point;
4. the report parts are written and the journal is renamed to ``checkpoint``.

A crash before (3) leaves an open transaction, which the next start (or any
other run's recovery) withdraws, and a journal whose transaction never completed,
which is dropped; after (3) the next start finishes (4).  Either way the archive,
the ledger and the checkpoint agree, so the lines after the checkpoint are read
again exactly once.

The checkpoint holds client addresses and evidence lines (detection state), so
it is encrypted (AES-GCM) with the job's own state key, a 32-byte file readable
only by its owner, like the keyring's root key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from retention import commit, layout
from retention.parquet_files import WrittenFile
from retention.secret_files import create_secret_file
from retention.signing import Signer

JOURNAL = "commit-pending"
CHECKPOINT = "checkpoint"
CONTEXT = b"logwarden stream checkpoint v1"


class CheckpointError(RuntimeError):
    """The state directory holds something this job cannot use (wrong key, damaged file)."""


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_durably(path: str | os.PathLike, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync the directory: after a crash the old or the new bytes, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    # 0640 whatever the umask: report parts published here must not be world-readable (hardening).
    with os.fdopen(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "wb") as fh:
        os.fchmod(fh.fileno(), 0o640)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(staging, path)
    fsync_dir(path.parent)


def load_state_key(path: str | os.PathLike) -> bytes:
    """The job's state key, created (mode 0600) on first use."""
    path = Path(path)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it a moment ago: use that one
            create_secret_file(path, AESGCM.generate_key(bit_length=256))
            fsync_dir(path.parent)
    key = path.read_bytes()
    if len(key) != 32:
        raise CheckpointError(f"{path}: not a stream state key (expected 32 bytes, found {len(key)})")
    return key


@dataclasses.dataclass
class PartitionCommit:
    """One partition's share of a cut: staged files committed under ``commit_id``."""

    dataset: str
    day: str
    commit_id: str
    files: list[WrittenFile]


@dataclasses.dataclass
class Cut:
    """What one transaction publishes: partition commits, documents (report parts), its ledger record."""

    seq: int
    txn: str
    partitions: list[PartitionCommit] = dataclasses.field(default_factory=list)
    documents: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)
    #: Kept by ``complete_transaction``: what the ingest ledger and later runs read of this cut.
    record: dict = dataclasses.field(default_factory=dict)


class StateStore:
    """``<state_dir>``: the checkpoint and the commit journal."""

    def __init__(self, state_dir: str | os.PathLike, key: bytes, signer: Signer | None = None):
        self.dir = Path(state_dir)
        self._aead = AESGCM(key)
        self._signer = signer  # signs each cut's manifests: readers believe only signed additions

    def _seal(self, value: Any) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), CONTEXT)

    def _open(self, data: bytes, name: str) -> Any:
        try:
            return pickle.loads(self._aead.decrypt(data[:12], data[12:], CONTEXT))
        except Exception as problem:
            raise CheckpointError(
                f"{self.dir / name}: cannot be read with this state key ({type(problem).__name__})"
            ) from None

    # ------------------------------------------------------------ commit

    def seal(self, checkpoint: Any) -> bytes:
        """The checkpoint encrypted, taken at once (the running state it comes from moves on)."""
        return self._seal(checkpoint)

    def commit(self, root: str, cut: Cut, sealed_checkpoint: bytes) -> None:
        """Publish a cut and its (``seal``-ed) checkpoint as one transaction (see the module docstring)."""
        commit.begin_transaction(root, cut.txn, {"kind": "stream"})
        for part in cut.partitions:
            commit.commit(root, part.dataset, part.day, part.commit_id, part.files, signer=self._signer)
        write_durably(self.dir / JOURNAL, _encode_journal(cut, sealed_checkpoint))
        commit.complete_transaction(root, cut.txn, {"kind": "stream", **cut.record})
        self._finish(_decode_journal((self.dir / JOURNAL).read_bytes()))

    def _finish(self, record: dict) -> None:
        for path, data in record["documents"]:
            write_durably(path, data)
        os.replace(self.dir / JOURNAL, self.dir / CHECKPOINT)
        fsync_dir(self.dir)

    def _journal(self, root: str) -> dict | None:
        """The journal, when its transaction completed (a journal whose transaction did not counts for nothing)."""
        journal = self.dir / JOURNAL
        if not journal.exists():
            return None
        record = _decode_journal(journal.read_bytes(), journal)
        if commit.transaction_completed(root, record["txn"]):
            return record
        return None

    def recover(self, root: str) -> Any | None:
        """Finish a cut a crash interrupted after its commit point, then return the last checkpoint (``None`` on
        first start).  A cut interrupted before it is withdrawn by ``retention.commit.recover``."""
        record = self._journal(root)
        if record is not None:
            self._finish(record)
        elif (self.dir / JOURNAL).exists():
            os.unlink(self.dir / JOURNAL)
        return self.read_checkpoint(root)

    def read_checkpoint(self, root: str) -> Any | None:
        """The last checkpoint without touching the archive (for the source, which may start before ``recover``)."""
        record = self._journal(root)
        if record is not None:
            return self._open(record["checkpoint"], JOURNAL)
        path = self.dir / CHECKPOINT
        if not path.exists():
            return None
        return self._open(_decode_journal(path.read_bytes(), path)["checkpoint"], CHECKPOINT)


_MAGIC = b"LWJ1"


def _encode_journal(cut: Cut, sealed_checkpoint: bytes) -> bytes:
    """A JSON header (partition commits, document paths and sizes) then the raw bytes: no pickle outside the seal."""
    header = {
        "seq": cut.seq,
        "txn": cut.txn,
        "partitions": [
            {
                "dataset": p.dataset,
                "day": p.day,
                "commit_id": p.commit_id,
                "files": [dataclasses.asdict(f) for f in p.files],
            }
            for p in cut.partitions
        ],
        "documents": [[path, len(data)] for path, data in cut.documents],
        "checkpoint": len(sealed_checkpoint),
    }
    head = json.dumps(header).encode()
    return b"".join([_MAGIC, len(head).to_bytes(8, "big"), head, *(d for _, d in cut.documents), sealed_checkpoint])


def _decode_journal(data: bytes, path: Path | None = None) -> dict:
    if data[:4] != _MAGIC:
        raise CheckpointError(f"{path}: not a logwarden stream journal")
    size = int.from_bytes(data[4:12], "big")
    header = json.loads(data[12 : 12 + size])
    at = 12 + size
    documents = []
    for doc_path, length in header["documents"]:
        documents.append((doc_path, data[at : at + length]))
        at += length
    partitions = [
        PartitionCommit(
            p["dataset"], p["day"], p["commit_id"],
            [WrittenFile(**{**f, "key_ids": tuple(f["key_ids"])}) for f in p["files"]],
        )
        for p in header["partitions"]
    ]  # fmt: skip
    return {"seq": header["seq"], "txn": header.get("txn", ""), "partitions": partitions, "documents": documents,
            "checkpoint": data[at : at + header["checkpoint"]]}  # fmt: skip


def stream_state_dir(root: str) -> str:
    """``<output>/_state/stream``: the checkpoint and the journal (never touched by other runs)."""
    return layout.state_dir(root, "stream")
