"""Roles are enforced by keys: called straight through the library, a role opens exactly what was sealed to it."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from retention.access.catalog import published_files
from retention.access.search import EventQuery, search_events
from retention.encryption import ArchiveDecryptor
from retention.keyring import KeyAccessError, Keyring, WriterKeys
from retention.role_keys import RoleKeys, add_role, grant, revoke, role_keys
from retention.roles import RoleRegistry, role_key_env
from retention.sealing import encode_key, new_private_key

JANUARY = EventQuery(dt.date(2026, 1, 1), dt.date(2026, 1, 31))


def _first_file(archive):
    return next(published_files(archive.root, "events"))


def _read(archive, keys):
    return pq.ParquetFile(_first_file(archive).path, decryption_properties=ArchiveDecryptor(keys).file_properties())


def test_a_granted_role_reads_every_column_with_its_own_key_only(archive):
    table = _read(archive, archive.keys("security")).read()
    assert table.num_rows > 0 and "source_ip" in table.column_names


@pytest.mark.parametrize("role", ["planner"])
def test_a_role_without_personal_read_holds_nothing_that_opens_a_file(archive, role):
    keys = archive.keys(role)
    with pytest.raises(KeyAccessError, match="holds no key"):
        _read(archive, keys).read(columns=["url_path"])  # not even a non-personal column: no partial access
    with pytest.raises(KeyAccessError, match="holds no key"):
        list(search_events(archive.root, keys, JANUARY))
    assert RoleRegistry(archive.config.keys.keyring).granted_ids(role) == []


def test_the_writer_role_and_a_wrong_secret_open_nothing(archive):
    with pytest.raises(KeyAccessError, match="public keys only"):
        _read(archive, WriterKeys(archive.config.keys.keyring)).read()
    with pytest.raises(KeyAccessError, match="does not belong to role 'security'"):
        RoleKeys(archive.config.keys.keyring, "security", new_private_key())


def test_a_seal_copied_from_another_role_does_not_open_with_this_roles_secret(archive):
    ring = archive.config.keys.keyring
    grants = Path(RoleRegistry(ring).directory) / "grants"
    for path in (grants / "security").glob("*.json"):
        target = grants / "planner" / path.name
        target.parent.mkdir(exist_ok=True)
        target.write_text(path.read_text())
    with pytest.raises(KeyAccessError, match="does not open"):
        _read(archive, archive.keys("planner")).read()


def test_revoke_deletes_the_seals_and_new_months_are_no_longer_sealed_to_the_role(archive):
    ring = archive.config.keys.keyring
    assert revoke(ring, "security") > 0
    with pytest.raises(KeyAccessError, match="never granted or was revoked"):
        _read(archive, archive.keys("security")).read()
    WriterKeys(ring).current_ids("2026-02")  # the ingest host meets a new month
    privacy = RoleRegistry(ring).granted_ids("privacy")
    assert "personal-2026-02@v1" in privacy and "data-2026-02@v1" in privacy
    assert not any("2026-02" in key_id for key_id in RoleRegistry(ring).granted_ids("security"))


def test_grant_seals_existing_months_and_rotation_seals_the_new_versions(archive):
    ring = archive.config.keys.keyring
    custodian = archive.keys("custodian")
    add_role(ring, "auditor", archive.root.parent / "roles" / "auditor.key")
    assert grant(custodian, "auditor") == [r.key_id for r in Keyring(ring).records()]
    auditor = archive.keys("auditor")
    assert _read(archive, auditor).read().num_rows > 0
    rotated = Keyring(ring).add_version("personal", "2026-01")
    assert rotated.key_id in RoleRegistry(ring).granted_ids("auditor")


def test_an_exported_writer_keyring_seals_new_months_to_the_roles(archive, tmp_path):
    ring = Keyring(archive.config.keys.keyring)
    ring.export_public(tmp_path / "ingest-ring")
    WriterKeys(tmp_path / "ingest-ring").current_ids("2026-03")
    assert "personal-2026-03@v1" in RoleRegistry(tmp_path / "ingest-ring").granted_ids("security")
    assert not list((tmp_path / "ingest-ring" / "grants").glob("*/*2026-01*"))  # no old seals copied


def test_destroying_a_month_wipes_every_roles_seals_of_it(archive):
    ring = archive.config.keys.keyring
    Keyring(ring).destroy_period("2026-01")
    for role in ("security", "privacy", "ops"):
        assert not [k for k in RoleRegistry(ring).granted_ids(role) if "2026-01" in k]


def test_a_role_secret_comes_from_its_environment_variable(archive):
    secret_file = archive.root.parent / "roles" / "security.key"
    env = {role_key_env("security"): secret_file.read_text().strip()}
    keys = role_keys(archive.config.keys.keyring, "security", None, env)
    assert _read(archive, keys).metadata.num_rows > 0
    with pytest.raises(KeyAccessError, match="not valid"):
        role_keys(archive.config.keys.keyring, "security", None, {role_key_env("security"): "short"})
    assert encode_key(new_private_key()) != env[role_key_env("security")]


def test_deep_verify_decrypts_with_the_roles_own_keys_and_refusals_are_audited(archive):
    from retention.audit import AuditLog
    from tests.access.test_search import _cli

    verify = ["archive", "verify", str(archive.root), "--deep"]
    ok = _cli(archive, *verify, "--role", "ops", "--reason", "weekly check")
    assert ok.returncode == 0 and "files decrypted: ok" in ok.stdout, ok.stdout + ok.stderr
    os.remove(archive.config.keys.root_key_file)
    again = _cli(archive, *verify, "--role", "ops", "--reason", "without the root key on this host")
    assert again.returncode == 0, again.stdout + again.stderr  # ops never needed it: its keys are sealed to it

    refused = _cli(archive, *verify, "--role", "planner", "--reason", "curious")
    assert refused.returncode == 2 and "role 'planner' may not verify" in refused.stderr
    no_reason = _cli(archive, *verify, "--role", "ops")
    assert no_reason.returncode == 2 and "--reason is required" in no_reason.stderr
    trail = [
        (e["command"], e["role"], e["result"])
        for e in AuditLog(archive.root / "_audit" / "audit.jsonl", None).entries()
    ]
    assert ("archive verify", "ops", "ok") in trail and ("archive verify", "planner", "refused") in trail
