"""A Beam ``FileSystem`` kept in memory (``memlw://``), with object-store semantics: no folders, no locks, no fsync.

Beam 2.77 ships no in-memory filesystem, so this stands in for ``gs://`` and ``s3://`` in tests: whatever works
through ``FileSystems`` here works without a local disk.
"""

from __future__ import annotations

import io
import time

from apache_beam.io.filesystem import BeamIOError, FileMetadata, FileSystem

SCHEME = "memlw"
_FILES: dict[str, tuple[bytes, float]] = {}


def reset() -> None:
    _FILES.clear()


class _Writer(io.BytesIO):
    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def close(self) -> None:
        if not self.closed:
            _FILES[self._path] = (self.getvalue(), time.time())
        super().close()


class MemoryFileSystem(FileSystem):
    @classmethod
    def scheme(cls):
        return SCHEME

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *[p.strip("/") for p in paths]])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path, (data, updated) in sorted(_FILES.items()):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data), updated)

    def create(self, path, mime_type="application/octet-stream", compression_type=None):
        return _Writer(path)

    def open(self, path, mime_type="application/octet-stream", compression_type=None):
        if path not in _FILES:
            raise BeamIOError("open failed", {path: FileNotFoundError(path)})
        return io.BytesIO(_FILES[path][0])

    def copy(self, source_file_names, destination_file_names):
        for source, target in zip(source_file_names, destination_file_names, strict=True):
            _FILES[target] = _FILES[source]

    def rename(self, source_file_names, destination_file_names):
        for source, target in zip(source_file_names, destination_file_names, strict=True):
            _FILES[target] = _FILES.pop(source)

    def exists(self, path):
        return path in _FILES or any(p.startswith(path.rstrip("/") + "/") for p in _FILES)

    def size(self, path):
        return len(_FILES[path][0])

    def last_updated(self, path):
        return _FILES[path][1]

    def metadata(self, path):
        data, updated = _FILES[path]
        return FileMetadata(path, len(data), updated)

    def checksum(self, path):
        return str(hash(_FILES[path][0]))

    def delete(self, paths):
        for path in paths:
            for name in [p for p in _FILES if p == path or p.startswith(path.rstrip("/") + "/")]:
                del _FILES[name]

    def report_lineage(self, path, unused_lineage):
        pass
