"""Commits, recovery, manifests, the ledger, the reader and ``archive verify --deep`` on a non-local Beam filesystem.

The archive lives in ``memlw://`` (``tests/retention/memory_filesystem.py``: object-store semantics, no folders,
no fsync, no locks); the keyring stays local.
"""

from __future__ import annotations

import pytest
from apache_beam.io.filesystems import FileSystems

from retention import commit, layout
from retention.archive_reader import open_archive, query_archive
from retention.encryption import ArchiveEncryptor
from retention.ledger import FileIdentity, FileOutcome, FilePlan, Ledger
from retention.parquet_files import ParquetFileWriter
from retention.verify import verify_archive
from tests.retention import memory_filesystem
from tests.retention.conftest import access_batch, combined_lines, signer_of

ROOT = f"{memory_filesystem.SCHEME}://bucket/archive"
DAY = "2026-01-05"


@pytest.fixture(autouse=True)
def memory():
    memory_filesystem.reset()
    yield
    memory_filesystem.reset()


def _stage(writer, run_id: str):
    batch = access_batch(combined_lines())
    out = ParquetFileWriter(
        commit.staging_path(ROOT, run_id),
        batch.schema,
        commit.create,
        encryption=ArchiveEncryptor(writer).for_day(batch.schema, DAY),
    )
    out.write(batch)
    return out.close()


def test_commit_recover_and_deep_verify_go_through_filesystems(writer, reader):
    with commit.RunLease(ROOT, "r1"):
        assert commit.run_is_live(ROOT, "r1")
        manifest = commit.commit(ROOT, "events", DAY, "r1", [_stage(writer, "r1")], signer=signer_of(writer))
        commit.clear_staging(ROOT, "r1")
    [live] = commit.live_files(ROOT, "events", reader.trusted_signers())
    assert live.path == f"{ROOT}/events/dt={DAY}/{manifest.names[0]}" and FileSystems.exists(live.path)

    staged = _stage(writer, "killed")  # a run that died after publishing a file, before its manifest
    orphan = f"{ROOT}/events/dt={DAY}/{layout.data_file_name('killed', 0)}"
    FileSystems.rename([staged.path], [orphan])
    report = verify_archive(ROOT, reader=reader)
    assert report.ok and report.files == 1 and report.decrypted_files == 1 and report.rows == 20
    assert any("in no manifest" in f.message for f in report.findings)
    recovered = commit.recover(ROOT)
    assert recovered.orphans == [orphan], recovered
    assert not FileSystems.exists(orphan)
    assert not [f for f in verify_archive(ROOT, reader=reader).findings if f.level != "info"]


def test_transactions_replace_commits_and_the_ledger_on_filesystems(writer, reader):
    signer = signer_of(writer)
    commit.commit(ROOT, "events", DAY, "r1", [_stage(writer, "r1")], signer=signer)
    commit.begin_transaction(ROOT, "r2")
    added = commit.commit(ROOT, "events", DAY, "r2", [_stage(writer, "r2")], signer=signer)
    names = lambda: sorted(layout.base_name(f.path) for f in commit.live_files(ROOT, "events"))  # noqa: E731
    assert names() == ["part-r1-00000.parquet"]  # the transaction is still open
    plan = FilePlan("/logs/access.log", FileIdentity("ab" * 32, 4096), end=1000)
    commit.complete_transaction(ROOT, "r2", Ledger.record([FileOutcome(plan, 1000, 20)]))
    assert names() == ["part-r1-00000.parquet", *added.names]
    compacted = commit.commit(
        ROOT, "events", DAY, "r3", [_stage(writer, "r3")], remove=["part-r1-00000.parquet"], signer=signer
    )
    assert names() == sorted([*added.names, *compacted.names])
    history = next(iter(Ledger.load(ROOT).histories.values()))
    assert history.archived() == (1000, 20) and history.runs == ["r2"]
    assert verify_archive(ROOT, reader=reader).rows == 40


def test_the_reader_decrypts_an_archive_on_a_beam_filesystem_and_skips_what_no_manifest_lists(writer, reader):
    signer = signer_of(writer)
    commit.commit(ROOT, "events", DAY, "r1", [_stage(writer, "r1")], signer=signer)
    staged = _stage(writer, "killed")  # an orphan a killed run left: never read
    FileSystems.rename([staged.path], [f"{ROOT}/events/dt={DAY}/{layout.data_file_name('killed', 0)}"])
    table = open_archive(ROOT, reader, "events").to_table()
    assert table.num_rows == 20 and set(table.column("dt").to_pylist()) == {DAY}
    assert open_archive(f"{ROOT}/events", reader).count_rows() == 20  # a dataset directory works too
    counted = query_archive("SELECT count(*) AS n FROM events", ROOT, reader)
    assert counted.column("n").to_pylist() == [20]


KEYRING = f"{memory_filesystem.SCHEME}://bucket/keyring"


def test_a_keyring_on_an_object_store_serves_writers_readers_roles_and_shredding(tmp_path):
    """The keyring itself in ``memlw://`` (as on gs://): init, write, deep verify with the root key and with a
    granted role, revoke, export and import, and crypto-shredding of a month, all through FileSystems."""
    from retention.keyring import Keyring, WriterKeys, import_public_keys, init_keyring, reader_keys
    from retention.role_keys import add_role, grant, revoke, role_keys

    root_key = tmp_path / "root.key"
    result = init_keyring(KEYRING, root_key, periods=["2026-01"], environ={})
    assert result.keyring == KEYRING and result.created_root_key
    assert FileSystems.exists(f"{KEYRING}/root.json") and FileSystems.exists(f"{KEYRING}/keys/personal-2026-01@v1.json")
    # the host's own secrets never go to the shared store: the signing key lands in $LOGWARDEN_HOME
    assert not commit.list_paths(f"{KEYRING}/*.key") and (tmp_path / ".logwarden" / "signing.key").is_file()

    writer = WriterKeys(KEYRING)
    reader = reader_keys(KEYRING, root_key, environ={})
    manifest = commit.commit(ROOT, "events", DAY, "r1", [_stage(writer, "r1")], signer=signer_of(writer))
    assert manifest.rows == 20
    report = verify_archive(ROOT, reader=reader)
    assert report.ok and report.decrypted_files == 1 and report.rows == 20

    add_role(KEYRING, "security", tmp_path / "security.key")
    assert grant(reader, "security") == ["data-2026-01@v1", "personal-2026-01@v1"]
    security = role_keys(KEYRING, "security", tmp_path / "security.key", environ={})
    assert verify_archive(ROOT, reader=security).decrypted_files == 1
    assert revoke(KEYRING, "security") == 2
    assert not commit.list_paths(f"{KEYRING}/grants/security/*.json")

    exported = f"{memory_filesystem.SCHEME}://other/writer-keyring"
    assert Keyring(KEYRING).export_public(exported) == 2
    WriterKeys(exported).current_ids("2026-02")  # a month first met on an ingest host using the exported copy
    assert import_public_keys(Keyring(KEYRING), exported).imported == ["data-2026-02@v1", "personal-2026-02@v1"]

    assert sorted(Keyring(KEYRING).destroy_period("2026-01")) == ["data-2026-01@v1", "personal-2026-01@v1"]
    assert not commit.list_paths(f"{KEYRING}/keys/*2026-01*")
    shredded = verify_archive(ROOT, reader=reader_keys(KEYRING, root_key, environ={}))
    assert any("crypto-shredded" in f.message for f in shredded.findings)
