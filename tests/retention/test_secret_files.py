"""Key files appear whole or not at all, owner-only, and are never replaced."""

from __future__ import annotations

import os
import stat

import pytest

from retention import secret_files
from retention.secret_files import create_secret_file


def test_a_key_file_is_owner_only_and_never_replaced(tmp_path):
    path = create_secret_file(tmp_path / "keys" / "audit.key", b"first\n")
    assert path.read_bytes() == b"first\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_secret_file(path, b"second\n")
    assert path.read_bytes() == b"first\n"
    assert os.listdir(path.parent) == ["audit.key"]  # no temporary file left behind


def test_a_reader_never_sees_a_key_file_before_its_bytes_are_written(tmp_path, monkeypatch):
    """What a process starting at the same moment would see while the key is being written: no file at all."""
    path = tmp_path / "signing.key"
    seen = []
    real_fsync = os.fsync

    def fsync_and_look(fd):
        seen.append(path.exists())
        real_fsync(fd)

    monkeypatch.setattr(secret_files.os, "fsync", fsync_and_look)
    create_secret_file(path, b"seed\n")
    assert seen == [False] and path.read_bytes() == b"seed\n"
