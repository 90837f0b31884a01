"""Expanding ``--input`` arguments (files, globs, directories) and refusing ones that match nothing.

Only regular files are read: a FIFO would block the job forever, a device
(``/dev/zero``) never ends, a socket is not a log.  Symbolic links are not
followed unless asked for (``--follow-symlinks``): a link planted in a log
directory must not make logwarden ingest ``/etc/shadow``.
"""

from __future__ import annotations

import os
import stat

from apache_beam.io.filesystems import FileSystems


class InputError(ValueError):
    """An input pattern that names nothing readable."""


_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def _kind(mode: int) -> str:
    if stat.S_ISSOCK(mode):
        return "a socket"
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_regular_file(path: str, follow_symlinks: bool = False) -> None:
    """Refuse, with a message saying why, a local path that is not a regular file (or is a link, unless followed)."""
    if "://" in path:
        return
    try:
        link = os.lstat(path)
        mode = os.stat(path).st_mode if stat.S_ISLNK(link.st_mode) and follow_symlinks else link.st_mode
    except OSError as problem:
        raise InputError(f"cannot read input file {path!r}: {problem.strerror}") from None
    if stat.S_ISLNK(mode):
        raise InputError(
            f"input {path!r} is a symbolic link (to {os.readlink(path)!r}); links are not followed "
            "unless --follow-symlinks is given"
        )
    if not stat.S_ISREG(mode):
        raise InputError(f"input {path!r} is {_kind(mode)}; only regular files are read")


def open_local(path: str, follow_symlinks: bool = False):
    """Open a local file for reading only if it is a regular file, checked on the open descriptor itself
    (so a file swapped for a FIFO or a link after listing is still refused, without blocking)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as problem:
        if problem.errno == 40:  # ELOOP: the last component is a link and O_NOFOLLOW refused it
            check_regular_file(path, follow_symlinks)
        raise InputError(f"cannot read input file {path!r}: {problem.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"input {path!r} is {_kind(mode)}; only regular files are read")
    return os.fdopen(fd, "rb")


def expand_inputs(patterns: list[str], follow_symlinks: bool = False) -> list[str]:
    """Patterns for the pipeline: a directory becomes every file in it; each must match something."""
    expanded = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*")
        try:
            matches = FileSystems.match([pattern])[0].metadata_list
        except Exception as problem:  # Beam raises BeamIOError with the cause inside
            raise InputError(f"cannot list input {pattern!r}: {problem}") from None
        files = [m for m in matches if not os.path.isdir(m.path)]
        if not files:
            raise InputError(f"input {pattern!r} matches no file")
        for m in files:
            check_regular_file(m.path, follow_symlinks)
            if "://" not in m.path and not os.access(m.path, os.R_OK):
                raise InputError(f"input file {m.path!r} is not readable (permission denied)")
        expanded.append(pattern)
    return expanded


def list_files(patterns: list[str], follow_symlinks: bool = False) -> list[str]:
    """Every file the patterns match, sorted, for commands that read files one by one."""
    files = []
    for pattern in expand_inputs(patterns, follow_symlinks):
        paths = (m.path for m in FileSystems.match([pattern])[0].metadata_list if not os.path.isdir(m.path))
        # Local paths are made absolute so every event's log_file_path says exactly where it came from.
        files += sorted(p if "://" in p else os.path.abspath(p) for p in paths)
    return files
