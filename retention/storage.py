"""Archive and keyring files through Beam's ``FileSystems``: the one place that knows what a local disk adds.

Every path may be local or a ``scheme://`` URL (``gs://``, ``s3://``, Beam's ``memory://`` in tests).  Local
paths get fsync, creation that never overwrites (a hard link of a complete temporary file) and atomic replace.
On an object store a closed object is durable and whole, so readers never see half a file there either; but
Beam's ``FileSystems`` offers no create-if-absent, so ``write_new`` can only check first: two processes creating
the same name at the same moment can both succeed (the last one wins).  Run one keyring-changing process per
remote keyring (batch runs on many ingest hosts should share a local or exported keyring, see the README).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(str(path)) is None


def normalise(path: str | os.PathLike) -> str:
    """``~`` expanded for local paths; URLs unchanged."""
    path = str(path)
    return os.path.expanduser(path) if is_local(path) else path


def join(base: str, *parts: str) -> str:
    return FileSystems.join(str(base), *parts)


def parent(path: str) -> str:
    return os.path.dirname(path) if is_local(path) else path.rstrip("/").rsplit("/", 1)[0]


def _fsync(path: str, flags: int) -> None:
    if is_local(path):
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_file(path: str) -> None:
    _fsync(path, os.O_RDONLY)


def fsync_dir(path: str) -> None:
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def mkdirs(path: str) -> None:
    if is_local(path):
        os.makedirs(path, exist_ok=True)
    elif not FileSystems.exists(path):
        with contextlib.suppress(OSError):
            FileSystems.mkdirs(path)


def create(path: str):
    """A new file for writing (its folder made first), as ``ParquetFileWriter`` wants its opener."""
    mkdirs(parent(path))
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    """The whole file; ``FileNotFoundError`` when there is none (whatever the filesystem)."""
    if is_local(path):
        with open(path, "rb") as handle:
            return handle.read()
    if not FileSystems.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def file_size(path: str) -> int | None:
    """Size in bytes, or None when there is no such file."""
    if is_local(path):
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None
    matched = FileSystems.match([path])[0].metadata_list
    return matched[0].size_in_bytes if matched else None


def list_paths(pattern: str) -> list[str]:
    """Paths matching a glob (files only), sorted; nothing when its folder does not exist."""
    try:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    except BeamIOError:  # some filesystems refuse a pattern under a folder that does not exist
        return []


def delete(paths: Sequence[str]) -> None:
    """Delete files (a local folder with everything in it); what is already gone is fine."""
    for path in paths:
        if is_local(path):
            with contextlib.suppress(FileNotFoundError):
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        elif FileSystems.exists(path):
            FileSystems.delete([path])


def wipe(path: str) -> None:
    """Delete a file holding key material; locally zeroed first (best effort against undelete: SSDs and
    copy-on-write filesystems keep copies).  An object store's own deletion is all a remote path gets."""
    if not is_local(path):
        delete([path])
        return
    with contextlib.suppress(FileNotFoundError):
        size = os.stat(path).st_size
        with open(path, "r+b") as fh:
            fh.write(b"\0" * size)
            fh.flush()
            os.fsync(fh.fileno())
        os.unlink(path)


def publish(source: str, target: str) -> None:
    """Rename ``source`` to ``target``; ``FileExistsError`` rather than overwrite (checked first on object stores)."""
    if is_local(source):
        try:
            os.link(source, target)  # fails if target exists: a taken name is never overwritten
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "already exists", target) from None
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP):
                raise
            if os.path.exists(target):
                raise FileExistsError(errno.EEXIST, "already exists", target) from None
            os.rename(source, target)
            return
        os.unlink(source)
        return
    if FileSystems.exists(target):
        raise FileExistsError(errno.EEXIST, "already exists", target)
    FileSystems.rename([source], [target])


def _write_temporary(directory: str, data: bytes) -> str:
    """A complete, fsynced file under a temporary name in ``directory`` (mode 0600 where local)."""
    mkdirs(directory)
    if is_local(directory):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp
    tmp = join(directory, f".tmp-{uuid.uuid4().hex}")
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(data)
    return tmp


def write_new(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data``, whole or not at all; False if it already exists (another writer won)."""
    tmp = _write_temporary(parent(path), data)
    try:
        publish(tmp, path)
    except FileExistsError:
        return False
    finally:
        delete([tmp])
    if is_local(path):
        fsync_dir(parent(path))
    return True


def replace(path: str, data: bytes) -> None:
    """Write ``path`` whole or not at all, replacing what was there."""
    if not is_local(path):
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
            fh.write(data)  # an object appears only when closed, complete
        return
    tmp = _write_temporary(parent(path), data)
    try:
        os.replace(tmp, path)
    except BaseException:
        delete([tmp])
        raise
    fsync_dir(parent(path))
