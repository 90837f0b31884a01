"""``logwarden keys …`` and the first ``logwarden batch`` as an operator meets them."""

from __future__ import annotations

import os

from pipelines.cli import main
from retention.audit import AuditLog
from retention.keyring import Keyring


def keys(tmp_path, *args) -> int:
    ring = ["--keyring", str(tmp_path / "ring"), "--root-key-file", str(tmp_path / "root.key")]
    if args[0] != "list":
        ring += ["--archive", str(tmp_path / "out")]  # key operations are audited in the archive's trail
    return main(["keys", args[0], *ring, *args[1:]])


def test_init_list_rotate_destroy_and_export(tmp_path, capsys):
    assert keys(tmp_path, "init", "--period", "2026-01", "2026-02") == 0
    err = capsys.readouterr().err
    assert "NEW KEYRING" in err and "NEW ROOT KEY" in err and str(tmp_path / "root.key") in err
    assert oct(os.stat(tmp_path / "root.key").st_mode & 0o777) == "0o600"

    assert keys(tmp_path, "rotate", "--period", "2026-01", "--purpose", "personal") == 0
    assert keys(tmp_path, "list") == 0
    listing = capsys.readouterr().out
    assert "personal-2026-01@v1" in listing and "personal-2026-01@v2" in listing
    assert "older" in listing and "current" in listing

    assert keys(tmp_path, "destroy", "--period", "2026-01") == 2
    assert "Re-run with --yes" in capsys.readouterr().err
    assert {r.period for r in Keyring(tmp_path / "ring").records()} == {"2026-01", "2026-02"}
    assert keys(tmp_path, "destroy", "--period", "2026-01", "--yes") == 0
    assert "3 key version(s) of 2026-01" in capsys.readouterr().out
    assert keys(tmp_path, "list") == 0
    assert "DESTROYED" in capsys.readouterr().out

    assert keys(tmp_path, "export-public", str(tmp_path / "ingest")) == 0
    assert "2 public key versions" in capsys.readouterr().out
    assert keys(tmp_path, "rotate", "--period", "2026-01") == 2
    assert "refusing to write new 2026-01 data" in capsys.readouterr().err


def test_keys_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert keys(tmp_path, "list") == 2
    assert "no keyring in" in capsys.readouterr().err
    assert keys(tmp_path, "init") == 0
    assert keys(tmp_path, "init") == 2
    assert "already exists" in capsys.readouterr().err
    assert keys(tmp_path, "rotate", "--period", "2026-1") == 2
    assert "expected a month as YYYY-MM" in capsys.readouterr().err


def test_first_batch_creates_a_keyring_loudly_and_writes_an_encrypted_archive(tmp_path, examples, capsys):
    config = tmp_path / "lw.yaml"
    config.write_text(f"keys:\n  keyring: {tmp_path / 'ring'}\n  root_key_file: {tmp_path / 'root.key'}\n")
    args = ["batch", "--input", str(examples / "logs"), "--output", str(tmp_path / "out"), "--config", str(config)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"NEW KEYRING created in {tmp_path / 'ring'}" in err and "encrypted" in err
    assert main(args) == 0
    assert "NEW KEYRING" not in capsys.readouterr().err  # only the first run creates one
    trail = [
        (e["command"], e["result"], e["role"])
        for e in AuditLog(tmp_path / "out" / "_audit" / "audit.jsonl", None).entries()
    ]
    assert trail == [("keys init", "started", "ops"), ("keys init", "ok", "ops")]  # the automatic init is audited
    deep = ["archive", "verify", str(tmp_path / "out"), "--deep", "--config", str(config)]
    assert main([*deep, "--role", "custodian", "--reason", "first look"]) == 0


def test_batch_without_a_keyring_and_auto_init_off_says_what_to_do(tmp_path, examples, capsys):
    config = tmp_path / "lw.yaml"
    config.write_text(f"keys:\n  keyring: {tmp_path / 'ring'}\n  auto_init: false\n")
    assert main(["batch", "--input", str(examples / "logs"), "--output", str(tmp_path / "o"), "-c", str(config)]) == 2
    assert "logwarden keys init" in capsys.readouterr().err
