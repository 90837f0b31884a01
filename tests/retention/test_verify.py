"""``archive verify``: what it catches (tampering, strays, losses, plaintext) and what it does not call damage."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from retention.keyring import Keyring
from retention.verify import verify_archive
from tests.retention.conftest import access_batch, combined_lines, signer_of, write_partition


@pytest.fixture
def archive(tmp_path, writer):
    root = tmp_path / "out"
    for month, day in (("Jan", "2026-01-05"), ("Feb", "2026-02-05")):
        write_partition(root, writer, day, access_batch(combined_lines(month)), "r")
    return root


def problems(report) -> list[str]:
    return [f"{Path(f.path).name}: {f.message}" for f in report.errors]


def test_a_whole_archive_verifies_quick_and_deep(archive, writer, reader):
    quick = verify_archive(archive, Keyring(writer.directory))
    assert quick.ok and quick.files == 2 and quick.rows == 40 and quick.decrypted_files == 0
    deep = verify_archive(archive, reader=reader)
    assert deep.ok and deep.decrypted_files == 2


def test_a_flipped_byte_fails_the_checksum(archive, writer):
    [path] = archive.glob("events/dt=2026-01-05/*.parquet")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)
    assert problems(verify_archive(archive, Keyring(writer.directory))) == [
        "part-r-00000.parquet: checksum or size differs from the manifest"
    ]


def test_losses_are_errors_and_strays_warnings_that_repair_removes(archive, writer):
    partition = archive / "events" / "dt=2026-02-05"
    (partition / "part-r-00000.parquet").unlink()
    stray = archive / "events" / "dt=2026-01-05" / "part-x-00000.parquet"
    plain = io.BytesIO()
    pq.write_table(pa.table({"a": [1]}), plain)
    stray.write_bytes(plain.getvalue())
    report = verify_archive(archive, Keyring(writer.directory))
    assert problems(report) == ["part-r-00000.parquet: listed in a manifest but missing"]
    assert [(Path(f.path).name, f.level) for f in report.findings if "never read" in f.message] == [
        ("part-x-00000.parquet", "warning")
    ]
    repaired = verify_archive(archive, Keyring(writer.directory), repair=True)
    assert repaired.repaired.orphans == [str(stray)] and not stray.exists()
    assert not [f for f in repaired.findings if "never read" in f.message]


def test_missing_keys_fail_and_shredded_months_do_not(archive, writer, reader):
    for path in (Path(writer.directory) / "keys").glob("personal-2026-02*"):
        path.unlink()  # lost, not destroyed
    Keyring(writer.directory).destroy_period("2026-01")
    report = verify_archive(archive, reader=reader)
    assert problems(report)[0] == "part-r-00000.parquet: key personal-2026-02@v1 is not in the keyring: unreadable"
    assert report.shredded_partitions == 1


def test_the_cli_verifies_and_exits_1_on_damage(archive, archive_config, capsys, monkeypatch):
    monkeypatch.setenv("LOGWARDEN_ROOT_KEY", (Path(archive_config.keys.root_key_file)).read_text().strip())
    ring = ["--keyring", archive_config.keys.keyring]
    assert main(["archive", "verify", str(archive), "--deep", "--role", "custodian", "--reason", "t", *ring]) == 0
    assert "2 files, 40 rows, 2 files decrypted: ok" in capsys.readouterr().out
    [path] = archive.glob("events/dt=2026-02-05/*.parquet")
    path.write_bytes(path.read_bytes()[:-10])
    assert main(["archive", "verify", str(archive), *ring]) == 1
    out = capsys.readouterr().out
    assert "checksum or size differs" in out and "1 problem(s)" in out


def _damage_and_rehash(path: Path, damage, signer) -> None:
    """Damage a file the way a bad write would, then make its manifest agree and sign it again with the
    writer's own key (a writer that wrote garbage): only decrypting can tell."""
    import hashlib
    import json

    data = bytearray(path.read_bytes())
    damage(data)
    path.write_bytes(data)
    [manifest] = path.parent.glob("_manifest-*.json")
    doc = json.loads(manifest.read_text())
    doc.pop("signature", None)
    for entry in doc["files"]:
        if entry["file"] == path.name:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    manifest.write_text(json.dumps(signer.sign(doc)))


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.__setitem__(slice(-8, -4), (2**31 - 1).to_bytes(4, "little")),  # footer length past the file
        lambda d: d.__setitem__(slice(-8, -4), (0).to_bytes(4, "little")),  # footer length zero
        lambda d: d.__setitem__(slice(-40, -20), b"\0" * 20),  # footer bytes zeroed
    ],
    ids=["footer-length-huge", "footer-length-zero", "footer-zeroed"],
)
def test_deep_verify_reports_every_damaged_file_and_goes_on(archive, reader, damage):
    for path in archive.glob("events/dt=*/*.parquet"):
        _damage_and_rehash(path, damage, signer_of(reader))
    write_partition(archive, reader, "2026-03-05", access_batch(combined_lines("Mar")), "r")
    report = verify_archive(archive, reader=reader)
    damaged = sorted(Path(f.path).parent.name for f in report.errors)
    assert damaged == ["dt=2026-01-05", "dt=2026-02-05"], problems(report)
    assert report.decrypted_files == 1 and report.files == 3  # the whole file after the damaged ones was checked
    assert all("cannot decrypt" in f.message for f in report.errors)
