"""The streaming job's durable state: one checkpoint, moved forward only together with the files it covers.

Beam keeps nothing durable on a local runner, so exactly-once rests on this
module.  A *cut* publishes the archive files, alert and report parts written
since the last one and, in the same step, the checkpoint that says what they
cover: per followed content, the offset just past the last archived line, and
the detection state (open windows, cool-downs) after those lines.  The step is
a journal:

1. every staged file is complete and fsynced (the writer's job);
2. ``commit-pending`` is written: the renames and manifests to do plus the new
   checkpoint, to a temporary name, fsynced, renamed, directory fsynced.  This
   rename is the commit point;
3. the renames and manifests are applied (each one idempotent), then the journal
   is renamed to ``checkpoint``.

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

JOURNAL = "commit-pending"
CHECKPOINT = "checkpoint"
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
class Cut:
    """What one commit publishes: staged files to rename into place, manifests to write, the checkpoint."""

    seq: int
    renames: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    documents: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)


class StateStore:
    """``<state_dir>``: the checkpoint, the commit journal and the record of delivered alert ids."""

    def __init__(self, state_dir: str | os.PathLike, key: bytes):
        self.dir = Path(state_dir)
        self._aead = AESGCM(key)

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

    def commit(self, cut: Cut, checkpoint: Any) -> None:
        """Publish a cut and its checkpoint as one step (see the module docstring)."""
        record = {
            "seq": cut.seq,
            "renames": cut.renames,
            "documents": [(path, data.hex()) for path, data in cut.documents],
            "checkpoint": self._seal(checkpoint).hex(),
        }
        write_durably(self.dir / JOURNAL, json.dumps(record).encode())
        self._apply(record)

    def _apply(self, record: dict) -> None:
        touched: set[str] = set()
        for staged, final in record["renames"]:
            if os.path.exists(staged):
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(staged, final)
            touched.add(os.path.dirname(final))
        for path, data in record["documents"]:
            write_durably(path, bytes.fromhex(data))
        for directory in touched:
            fsync_dir(directory)
        os.replace(self.dir / JOURNAL, self.dir / CHECKPOINT)
        fsync_dir(self.dir)

    def recover(self) -> Any | None:
        """Finish a commit a crash interrupted, then return the last checkpoint (``None`` on first start)."""
        journal = self.dir / JOURNAL
        if journal.exists():
            try:
                record = json.loads(journal.read_text())
            except ValueError:
                journal.unlink()  # a journal is renamed into place whole; a broken one was never committed
            else:
                self._apply(record)
        path = self.dir / CHECKPOINT
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        return self._open(bytes.fromhex(record["checkpoint"]), CHECKPOINT)

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


def clear_staging(staging_dir: str | os.PathLike) -> None:
    """Files staged for a cut that never committed: the lines they hold are read again."""
    shutil.rmtree(staging_dir, ignore_errors=True)
