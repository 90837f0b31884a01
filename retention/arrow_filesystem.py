"""Beam's ``FileSystems`` as a pyarrow filesystem, so the dataset reader opens ``gs://``, ``s3://``… archives.

The writer, the commit protocol, the ledger and ``archive verify`` already go
through Beam's ``FileSystems``; the reader is a ``pyarrow.dataset``, which needs
a ``pyarrow.fs`` filesystem.  This adapter gives it one backed by the very same
Beam filesystems (whatever schemes are registered, e.g. ``apache-beam[gcp]``),
so an archive is read wherever it can be written.  Reading is all it is for:
the archive is changed only through ``retention.commit``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def is_remote(path: str) -> bool:
    """A path with a scheme (``gs://bucket/…``): read through Beam, not the local filesystem."""
    return "://" in str(path)


class BeamFileSystemHandler(pafs.FileSystemHandler):
    """Read-only ``pyarrow.fs`` handler over ``apache_beam.io.filesystems.FileSystems``."""

    def get_type_name(self) -> str:
        return "beam"

    def normalize_path(self, path: str) -> str:
        return path

    def equals(self, other) -> bool:
        return isinstance(other, BeamFileSystemHandler)

    def _info(self, path: str) -> pafs.FileInfo:
        match = FileSystems.match([path])[0].metadata_list
        exact = [m for m in match if m.path == path]
        if exact:
            return pafs.FileInfo(path, pafs.FileType.File, size=exact[0].size_in_bytes)
        if FileSystems.match([path.rstrip("/") + "/*"])[0].metadata_list:
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.NotFound)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return [self._info(p) for p in paths]

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        pattern = selector.base_dir.rstrip("/") + ("/**" if selector.recursive else "/*")
        found = FileSystems.match([pattern])[0].metadata_list
        return [pafs.FileInfo(m.path, pafs.FileType.File, size=m.size_in_bytes) for m in found]

    def open_input_file(self, path: str) -> pa.NativeFile:
        return pa.PythonFile(FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED), mode="r")

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def _read_only(self, *args, **kwargs):
        raise OSError("the archive is changed only through retention.commit, not through its reader")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _read_only
    delete_file = move = copy_file = open_output_stream = open_append_stream = _read_only


def arrow_filesystem_for(path: str) -> pafs.FileSystem | None:
    """The pyarrow filesystem that reads ``path``: Beam's for a remote path, None (pyarrow's local) otherwise."""
    return pafs.PyFileSystem(BeamFileSystemHandler()) if is_remote(path) else None
