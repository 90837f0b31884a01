"""The streaming job's durable state: one checkpoint, moved forward only together with the files it covers.

Beam keeps nothing durable on a local runner, so exactly-once rests on this
module.  A *cut* publishes the archive files, alert and report parts written
since the last one and, in the same step, the checkpoint that says what they
cover: per followed content, the offset just past the last archived line, and
the detection state (open windows, cool-downs) after those lines.  A cut spans
several partitions, and ``retention.commit`` commits one partition at a time,
so the cut is a journal around those commits:

1. every staged file is complete and fsynced (the writer's job), and hard-linked
   under ``keep/`` so that nothing another run's recovery deletes can lose it;
2. ``commit-pending`` is written: the partition commits to make, the documents
   to write and the new checkpoint, to a temporary name, fsynced, renamed,
   directory fsynced.  This rename is the commit point;
3. each partition is committed through ``retention.commit.commit`` (a partition
   whose manifest is already there is done; a file already moved into its
   partition, or deleted there by a recovery, is put back from ``keep/``), the
   documents are written, and the journal is renamed to ``checkpoint``.

A crash before (2) leaves only staged files, which the next start deletes; after
(2) the next start applies the journal again.  Either way the archive and the
checkpoint agree, so the lines after the checkpoint are read again exactly once.

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
import shutil
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from retention import commit, layout
from retention.parquet_files import WrittenFile
from retention.signing import Signer

JOURNAL = "commit-pending"
CHECKPOINT = "checkpoint"
KEEP = "keep"
STAGING = "staging"
DELIVERED = "alerts-delivered.jsonl"
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
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(AESGCM.generate_key(bit_length=256))
            fh.flush()
            os.fsync(fh.fileno())
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
    """What one commit publishes: partition commits, documents (alert and report parts), the checkpoint."""

    seq: int
    partitions: list[PartitionCommit] = dataclasses.field(default_factory=list)
    documents: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)


class StateStore:
    """``<state_dir>``: the checkpoint, the commit journal and the record of delivered alert ids."""

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

    def commit(self, root: str, cut: Cut, checkpoint: Any) -> None:
        """Publish a cut and its checkpoint as one step (see the module docstring)."""
        keep = self.dir / KEEP
        keep.mkdir(parents=True, exist_ok=True)
        for part in cut.partitions:
            for written in part.files:
                link = keep / os.path.basename(written.path)
                if not link.exists():
                    os.link(written.path, link)
        fsync_dir(keep)
        record = _encode_journal(cut, self._seal(checkpoint))
        write_durably(self.dir / JOURNAL, record)
        self._apply(root, _decode_journal(record))

    def _apply(self, root: str, record: dict) -> None:
        for part in record["partitions"]:
            directory = layout.partition_dir(root, part.dataset, part.day)
            if os.path.exists(os.path.join(directory, layout.manifest_file_name(part.commit_id))):
                continue
            for index, written in enumerate(part.files):
                if os.path.exists(written.path):
                    continue
                os.makedirs(os.path.dirname(written.path), exist_ok=True)
                published = os.path.join(directory, layout.data_file_name(part.commit_id, index))
                if os.path.exists(published):  # moved in by the interrupted commit, not yet listed
                    os.replace(published, written.path)
                else:  # or deleted there as an orphan by a recovery meanwhile: the kept link has it
                    os.link(self.dir / KEEP / os.path.basename(written.path), written.path)
            commit.commit(root, part.dataset, part.day, part.commit_id, part.files, signer=self._signer)
        for path, data in record["documents"]:
            write_durably(path, data)
        os.replace(self.dir / JOURNAL, self.dir / CHECKPOINT)
        fsync_dir(self.dir)
        for part in record["partitions"]:
            for written in part.files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.dir / KEEP / os.path.basename(written.path))

    def recover(self, root: str) -> Any | None:
        """Finish a commit a crash interrupted, then return the last checkpoint (``None`` on first start)."""
        journal = self.dir / JOURNAL
        if journal.exists():
            self._apply(root, _decode_journal(journal.read_bytes(), journal))
        shutil.rmtree(self.dir / KEEP, ignore_errors=True)  # links of cuts that never reached their commit point
        path = self.dir / CHECKPOINT
        if not path.exists():
            return None
        return self._open(_decode_journal(path.read_bytes(), path)["checkpoint"], CHECKPOINT)

    def read_checkpoint(self) -> Any | None:
        """The last checkpoint without touching the archive (for the source, which starts after ``recover``)."""
        path = self.dir / CHECKPOINT
        if (self.dir / JOURNAL).exists():
            path = self.dir / JOURNAL
        if not path.exists():
            return None
        return self._open(_decode_journal(path.read_bytes(), path)["checkpoint"], path.name)

    # ------------------------------------------------------------ delivered alerts

    def delivered_ids(self) -> set[str]:
        path = self.dir / DELIVERED
        if not path.exists():
            return set()
        ids = set()
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                ids.add(json.loads(line)["alert_id"])
        return ids

    def record_delivered(self, alert_ids: list[str]) -> None:
        """Appended and fsynced right after delivery: a restart does not send these ids again."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / DELIVERED, "a") as fh:
            for alert_id in alert_ids:
                fh.write(json.dumps({"alert_id": alert_id}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


_MAGIC = b"LWJ1"


def _encode_journal(cut: Cut, sealed_checkpoint: bytes) -> bytes:
    """A JSON header (partition commits, document paths and sizes) then the raw bytes: no pickle outside the seal."""
    header = {
        "seq": cut.seq,
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
    return {"seq": header["seq"], "partitions": partitions, "documents": documents,
            "checkpoint": data[at : at + header["checkpoint"]]}  # fmt: skip


def clear_staging(staging_dir: str | os.PathLike) -> None:
    """Files staged for a cut that never committed: the lines they hold are read again."""
    shutil.rmtree(staging_dir, ignore_errors=True)


def stream_state_dir(root: str) -> str:
    """``<output>/_state/stream``: the checkpoint, the journal, staged files (never touched by other runs)."""
    return layout.state_dir(root, "stream")
