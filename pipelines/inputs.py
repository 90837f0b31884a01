"""Expanding ``--input`` arguments (files, globs, directories) and refusing ones that match nothing."""

from __future__ import annotations

import os

from apache_beam.io.filesystems import FileSystems


class InputError(ValueError):
    """An input pattern that names nothing readable."""


def expand_inputs(patterns: list[str]) -> list[str]:
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
            if "://" not in m.path and not os.access(m.path, os.R_OK):
                raise InputError(f"input file {m.path!r} is not readable (permission denied)")
        expanded.append(pattern)
    return expanded


def list_files(patterns: list[str]) -> list[str]:
    """Every file the patterns match, sorted, for commands that read files one by one."""
    files = []
    for pattern in expand_inputs(patterns):
        paths = (m.path for m in FileSystems.match([pattern])[0].metadata_list if not os.path.isdir(m.path))
        # Local paths are made absolute so every event's log_file_path says exactly where it came from.
        files += sorted(p if "://" in p else os.path.abspath(p) for p in paths)
    return files
