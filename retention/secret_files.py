"""Key files on disk: created owner-only and never overwritten (signing, role, audit, state and outbox keys)."""

from __future__ import annotations

import os
from pathlib import Path


def create_secret_file(path: str | os.PathLike, data: bytes) -> Path:
    """A new mode-0600 file holding ``data``, fsynced; ``FileExistsError`` if there is one (a key is never replaced)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path
