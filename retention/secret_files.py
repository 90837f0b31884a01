"""Key files on disk: created owner-only and never overwritten (root, signing, role, audit, state and outbox keys)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def create_secret_file(path: str | os.PathLike, data: bytes) -> Path:
    """A new mode-0600 file holding ``data``, fsynced; ``FileExistsError`` if there is one (a key is never replaced).

    Written whole under a temporary name and hard-linked into place, so a process starting at the same
    moment finds no key file or a complete one, never an empty or half-written key.
    """
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # FileExistsError when another process (or an earlier run) made it first
    finally:
        os.unlink(tmp)
    return path
