"""The keyring as its owner and the ingest host see it: root key handling, roles, rotation, destruction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from retention import sealing
from retention.keyring import (
    KeyAccessError,
    Keyring,
    KeyringError,
    WriterKeys,
    init_keyring,
    read_root_key,
    reader_keys,
)


def test_sealed_values_open_only_with_the_private_half_and_the_same_context():
    private = sealing.new_private_key()
    public = sealing.public_key_of(private)
    sealed = sealing.seal(public, b"kek bytes", "personal-2026-01@v1")
    assert sealing.unseal(private, sealed, "personal-2026-01@v1") == b"kek bytes"
    with pytest.raises(sealing.SealError, match="wrong key"):
        sealing.unseal(sealing.new_private_key(), sealed, "personal-2026-01@v1")
    with pytest.raises(sealing.SealError, match="wrong key"):
        sealing.unseal(private, sealed, "data-2026-01@v1")  # replayed under another key id
    head, tail = sealed.rsplit(".", 1)
    flipped = head + "." + ("A" if tail[0] != "A" else "B") + tail[1:]
    with pytest.raises(sealing.SealError):
        sealing.unseal(private, flipped, "personal-2026-01@v1")


def test_init_writes_an_owner_only_root_key_and_a_keyring_without_secrets(tmp_path):
    result = init_keyring(tmp_path / "ring", tmp_path / "root.key", ["2026-01"], environ={})
    assert result.created_root_key and result.periods == ("2026-01",)
    assert oct(os.stat(tmp_path / "root.key").st_mode & 0o777) == "0o600"
    root = read_root_key(tmp_path / "root.key", environ={})
    for path in (tmp_path / "ring").rglob("*.json"):
        assert sealing.encode_key(root) not in path.read_text()
    ids = [r.key_id for r in Keyring(tmp_path / "ring").records()]
    assert ids == ["data-2026-01@v1", "personal-2026-01@v1"]
    with pytest.raises(KeyringError, match="already exists"):
        init_keyring(tmp_path / "ring", tmp_path / "root.key", environ={})


def test_root_key_from_environment_wins_and_a_loose_key_file_is_refused(tmp_path):
    root = sealing.new_private_key()
    env = {"LOGWARDEN_ROOT_KEY": sealing.encode_key(root)}
    result = init_keyring(tmp_path / "ring", tmp_path / "absent.key", environ=env)
    assert result.root_key_file is None and not (tmp_path / "absent.key").exists()
    assert reader_keys(tmp_path / "ring", None, environ=env).role == "reader"

    loose = tmp_path / "loose.key"
    loose.write_text(sealing.encode_key(root))
    loose.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        read_root_key(loose, environ={})
    with pytest.raises(KeyringError, match="not valid"):
        read_root_key(None, environ={"LOGWARDEN_ROOT_KEY": "short"})
    with pytest.raises(KeyringError, match="does not belong"):
        reader_keys(tmp_path / "ring", None, environ={"LOGWARDEN_ROOT_KEY": sealing.encode_key(os.urandom(32))})


def test_writer_creates_a_months_keys_but_cannot_open_them(archive_config, reader):
    writer = WriterKeys(archive_config.keys.keyring)
    ids = writer.current_ids("2026-03")
    assert ids == {"personal": "personal-2026-03@v1", "data": "data-2026-03@v1"}
    assert writer.current_ids("2026-03") == ids  # created once
    with pytest.raises(KeyAccessError, match="writer role holds public keys only"):
        writer.private_key("personal-2026-03@v1")
    private = reader.private_key("personal-2026-03@v1")
    assert sealing.public_key_of(private) == writer.public_key("personal-2026-03@v1")


def test_rotation_adds_versions_and_destruction_leaves_only_a_tombstone(archive_config):
    keyring = Keyring(archive_config.keys.keyring)
    keyring.ensure_period("2026-01")
    keyring.ensure_period("2026-02")
    assert keyring.add_version("personal", "2026-01").key_id == "personal-2026-01@v2"
    assert WriterKeys(keyring.directory).current_ids("2026-01")["personal"] == "personal-2026-01@v2"

    destroyed = keyring.destroy_period("2026-01")
    assert sorted(destroyed) == ["data-2026-01@v1", "personal-2026-01@v1", "personal-2026-01@v2"]
    assert {r.period for r in keyring.records()} == {"2026-02"}
    assert not list((Path(keyring.directory) / "keys").glob("*2026-01*"))
    with pytest.raises(KeyAccessError, match=r"destroyed on .*crypto-shredded"):
        keyring.record("personal-2026-01@v1")
    with pytest.raises(KeyAccessError, match="refusing to write new 2026-01 data"):
        WriterKeys(keyring.directory).current_ids("2026-01")


def test_export_public_holds_no_private_half_at_all(archive_config, tmp_path):
    keyring = Keyring(archive_config.keys.keyring)
    keyring.ensure_period("2026-01")
    assert keyring.export_public(tmp_path / "ingest") == 2
    for path in (tmp_path / "ingest" / "keys").glob("*.json"):
        assert "sealed_private_key" not in json.loads(path.read_text())
    exported = WriterKeys(tmp_path / "ingest")
    assert exported.current_ids("2026-01")["data"] == "data-2026-01@v1"


def test_bad_periods_and_key_ids_are_refused_clearly(archive_config):
    keyring = Keyring(archive_config.keys.keyring)
    with pytest.raises(KeyringError, match="expected a month as YYYY-MM"):
        keyring.ensure_period("2026-13")
    with pytest.raises(KeyAccessError, match="not a logwarden master key id"):
        keyring.record("personal-2026-01")
    with pytest.raises(KeyringError, match="no keyring in"):
        Keyring(archive_config.keys.keyring + "-missing").records()


def test_workers_meeting_a_new_month_at_once_create_exactly_one_version(archive_config):
    from concurrent.futures import ThreadPoolExecutor

    def first_use(_):
        return WriterKeys(archive_config.keys.keyring).current_ids("2026-04")

    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(first_use, range(16)))
    assert all(ids == {"personal": "personal-2026-04@v1", "data": "data-2026-04@v1"} for ids in seen)
    assert [r.key_id for r in Keyring(archive_config.keys.keyring).records()] == [
        "data-2026-04@v1",
        "personal-2026-04@v1",
    ]
