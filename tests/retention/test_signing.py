"""An archive only its own writers can add to: manifests signed by keys the custodian trusts, key records checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.cli import main
from retention.archive_reader import open_archive
from retention.keyring import KeyAccessError, Keyring, reader_keys
from retention.signing import Signer, read_signer, verify
from retention.verify import verify_archive
from tests.retention.conftest import combined_lines

EVIL = b'198.51.100.66 - - [05/Jan/2026:11:00:00 +0000] "GET /planted-by-someone-else HTTP/1.1" 200 1 "-" "x"\n'


def _config(path: Path, **keys: str) -> Path:
    path.write_text("keys:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()))
    return path


@pytest.fixture
def real_archive(tmp_path, archive_config):
    log = tmp_path / "jan.log"
    log.write_bytes(combined_lines())
    config = _config(tmp_path / "real.yaml", keyring=archive_config.keys.keyring, root_key_file=tmp_path / "root.key")
    assert main(["batch", "-i", str(log), "-o", str(tmp_path / "real"), "-f", "combined", "-c", str(config)]) == 0
    return tmp_path / "real"


def test_a_file_from_the_public_keyring_and_an_untrusted_key_is_reported_and_never_read(
    tmp_path, archive_config, real_archive, reader, capsys
):
    public_ring = tmp_path / "exported"
    Keyring(archive_config.keys.keyring).export_public(public_ring)  # all an outsider needs to encrypt for us
    outsider = _config(
        tmp_path / "outsider.yaml",
        keyring=public_ring,
        root_key_file=tmp_path / "no-root.key",
        auto_init="false",
        signing_key_file=tmp_path / "outsider-signing.key",
    )
    (tmp_path / "evil.log").write_bytes(EVIL)
    fake = tmp_path / "fake"
    assert (
        main(["batch", "-i", str(tmp_path / "evil.log"), "-o", str(fake), "-f", "combined", "-c", str(outsider)]) == 0
    )
    partition = real_archive / "events" / "dt=2026-01-05"
    for path in (fake / "events" / "dt=2026-01-05").iterdir():  # the file and its manifest, copied in
        shutil.copy(path, partition / path.name)
    copied = [p for p in partition.glob("_manifest-*.json") if json.loads(p.read_text())["rows"] == 1]
    assert len(copied) == 1 and json.loads(copied[0].read_text())["signature"]["signer"]  # signed, by its own key

    deep = verify_archive(real_archive, reader=reader)
    assert not deep.ok
    assert [(Path(f.path).name, f.message) for f in deep.errors] == [
        (copied[0].name, "not signed by a trusted writer: its files are never read")
    ]
    quick = verify_archive(real_archive, Keyring(archive_config.keys.keyring))
    assert [f.message for f in quick.errors] == ["not signed by a trusted writer: its files are never read"]
    ring = ["--keyring", archive_config.keys.keyring]
    assert main(["archive", "verify", str(real_archive), *ring]) == 1
    assert "not signed by a trusted writer" in capsys.readouterr().out

    events = open_archive(real_archive, reader).to_table()
    assert events.num_rows == 20 and "/planted-by-someone-else" not in events["url_path"].to_pylist()


def test_a_trusted_ingest_key_registered_by_the_custodian_is_believed(tmp_path, archive_config, reader):
    ring = Keyring(archive_config.keys.keyring)
    newcomer = Signer.generate()
    doc = newcomer.sign({"files": [], "partition": "dt=2026-01-05"})
    assert verify(doc, reader.trusted_signers()) is None
    root_key = (tmp_path / "root.key").read_text().strip()
    from retention.sealing import decode_key

    ring.trust_signer(newcomer.public_key, "ingest-2", decode_key(root_key))
    assert verify(doc, reader.trusted_signers()) == newcomer.id
    ingest = read_signer(tmp_path / "signing.key")  # the key init_keyring made and trusted
    assert verify(ingest.sign({"a": 1}), reader.trusted_signers()) == ingest.id


def test_a_signer_registration_forged_without_the_root_key_is_not_trusted(tmp_path, archive_config, reader):
    ring = Keyring(archive_config.keys.keyring)
    outsider, fake_custodian = Signer.generate(), Signer.generate()
    from retention.signing import encode_public

    forged = fake_custodian.sign({"signer": outsider.id, "name": "x", "public_key": encode_public(outsider.public_key)})
    (Path(ring.directory) / "signers" / f"{outsider.id}.json").write_text(json.dumps(forged))
    assert outsider.id not in reader.trusted_signers()


def test_a_key_record_whose_public_half_was_swapped_is_refused(tmp_path, archive_config, reader, writer):
    writer.current_ids("2026-01")
    ring = Keyring(archive_config.keys.keyring)
    [path] = (Path(ring.directory) / "keys").glob("personal-2026-01@v1.json")
    doc = json.loads(path.read_text())
    other = Keyring(tmp_path / "attacker-ring")
    from retention.sealing import new_private_key, public_key_of

    other.create(public_key_of(new_private_key()))
    doc["public_key"] = other.ensure_period("2026-01")[0].to_json()["public_key"]  # someone else's public half
    path.write_text(json.dumps(doc))
    fresh = reader_keys(archive_config.keys.keyring, archive_config.keys.root_key_file, environ={})
    assert fresh.check_key_records() == ["personal-2026-01@v1"]
    with pytest.raises(KeyAccessError, match="public half does not match its sealed private half"):
        fresh.private_key("personal-2026-01@v1")
