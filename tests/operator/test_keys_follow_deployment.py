"""Issue 16 §4: keys that follow a deployment, not the working directory."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil

from retention.keyring import Keyring, WriterKeys, months_from, reader_keys
from tests.operator.helpers import ACCESS_LOG, ROOT, logwarden


def test_batch_started_in_two_folders_uses_one_keyring_at_the_documented_path(tmp_path):
    home = tmp_path / "home"
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        done = logwarden("batch", "--input", ACCESS_LOG, "--output", tmp_path / "out", cwd=folder,
                         extra_env={"LOGWARDEN_HOME": str(home), "LOGWARDEN_AUDIT_KEY": ""})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert not (folder / ".logwarden").exists()
    assert Keyring(home / "keyring").exists() and (home / "root.key").is_file()
    assert (home / "audit.key").is_file()  # the first run's audited key creation
    # keyring, root key, role keys, audit key, stream state key: all under the one documented folder
    assert logwarden("config", "show", extra_env={"LOGWARDEN_HOME": str(home)}).stdout.count(str(home)) == 5


def test_the_default_without_logwarden_home_is_per_user(tmp_path):
    env = {"LOGWARDEN_HOME": "", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    shown = logwarden("config", "show", extra_env=env).stdout
    assert f"keyring: {tmp_path / 'xdg' / 'logwarden' / 'keyring'}" in shown


def test_keys_init_months_ahead_on_an_existing_keyring_so_ingest_hosts_never_mint(tmp_path):
    keyring, root = tmp_path / "keyring", tmp_path / "root.key"
    assert (
        logwarden(
            "keys", "init", "--archive", tmp_path / "archive", "--keyring", keyring, "--root-key-file", root
        ).returncode
        == 0
    )
    done = logwarden(
        "keys",
        "init",
        "--archive",
        tmp_path / "archive",
        "--months-ahead",
        "3",
        "--keyring",
        keyring,
        "--root-key-file",
        root,
    )
    assert done.returncode == 0, done.stderr
    months = months_from(dt.datetime.now(dt.timezone.utc).date(), 3)
    assert {r.period for r in Keyring(keyring).records()} == set(months)
    ingest = tmp_path / "ingest"
    assert (
        logwarden("keys", "export-public", "--archive", tmp_path / "archive", ingest, "--keyring", keyring).returncode
        == 0
    )
    before = sorted(os.listdir(ingest / "keys"))
    for month in months:
        WriterKeys(ingest).current_ids(month)  # what the ingest pipeline does when it meets a month
    assert sorted(os.listdir(ingest / "keys")) == before  # nothing minted on the ingest host
    again = logwarden("keys", "init", "--archive", tmp_path / "archive", "--months-ahead", "3", "--keyring", keyring)
    assert again.returncode == 0 and "keys already present" in again.stdout


def test_keys_import_brings_ingest_minted_keys_back_to_the_readers(tmp_path):
    keyring, root = tmp_path / "keyring", tmp_path / "root.key"
    logwarden(
        "keys",
        "init",
        "--archive",
        tmp_path / "archive",
        "--keyring",
        keyring,
        "--root-key-file",
        root,
        "--period",
        "2026-01",
    )
    ingest = tmp_path / "ingest"
    logwarden("keys", "export-public", "--archive", tmp_path / "archive", ingest, "--keyring", keyring)
    minted = WriterKeys(ingest).current_ids("2026-05")["personal"]  # a month the custodian did not make ahead
    done = logwarden("keys", "import", "--archive", tmp_path / "archive", ingest, "--keyring", keyring)
    assert done.returncode == 0, done.stderr
    assert f"imported {minted}" in done.stdout and "2 key version(s) imported" in done.stdout
    reader = reader_keys(keyring, root, environ={})
    assert reader.private_key(minted)  # the readers can now open what the ingest host wrote
    assert (
        "0 key version(s) imported, 4 already present"
        in logwarden("keys", "import", "--archive", tmp_path / "archive", ingest, "--keyring", keyring).stdout
    )


def test_keys_import_refuses_another_root_and_reports_clashes(tmp_path):
    logwarden(
        "keys",
        "init",
        "--archive",
        tmp_path / "archive",
        "--keyring",
        tmp_path / "a",
        "--root-key-file",
        tmp_path / "a.key",
    )
    logwarden(
        "keys",
        "init",
        "--archive",
        tmp_path / "archive",
        "--keyring",
        tmp_path / "b",
        "--root-key-file",
        tmp_path / "b.key",
    )
    done = logwarden("keys", "import", "--archive", tmp_path / "archive", tmp_path / "b", "--keyring", tmp_path / "a")
    assert done.returncode == 2 and "another root key" in done.stderr


def test_keys_destroy_refuses_a_month_with_no_keys_and_writes_no_tombstone(tmp_path):
    keyring, root = tmp_path / "keyring", tmp_path / "root.key"
    logwarden(
        "keys",
        "init",
        "--archive",
        tmp_path / "archive",
        "--keyring",
        keyring,
        "--root-key-file",
        root,
        "--period",
        "2026-01",
    )
    done = logwarden(
        "keys", "destroy", "--archive", tmp_path / "archive", "--period", "2030-01", "--yes", "--keyring", keyring
    )
    assert done.returncode == 2 and "no keys of 2030-01" in done.stderr and "2026-01" in done.stderr
    assert "unreadable" not in done.stdout
    assert Keyring(keyring).destroyed() == {}
    WriterKeys(keyring).current_ids("2030-01")  # the future month can still be written
    real = logwarden(
        "keys", "destroy", "--archive", tmp_path / "archive", "--period", "2026-01", "--yes", "--keyring", keyring
    )
    assert (
        real.returncode == 0
        and "destroyed 2 key version(s) of 2026-01: data-2026-01@v1, personal-2026-01@v1" in real.stdout
    )
    twice = logwarden(
        "keys", "destroy", "--archive", tmp_path / "archive", "--period", "2026-01", "--yes", "--keyring", keyring
    )
    assert twice.returncode == 2 and "already destroyed" in twice.stderr


#: Deep verification with the root key is the custodian's (it holds that key); audited like any read.
CUSTODIAN = ("--role", "custodian", "--reason", "restore test")


def test_archive_verify_names_the_root_key_file_and_says_each_problem_once(tmp_path):
    home = {"LOGWARDEN_HOME": str(tmp_path / "home")}
    out = tmp_path / "out"
    assert logwarden("batch", "--input", ACCESS_LOG, "--output", out, extra_env=home).returncode == 0
    moved = tmp_path / "custodian.key"
    (tmp_path / "home" / "root.key").rename(moved)
    keyring = tmp_path / "home" / "keyring"
    deep = logwarden(
        "archive", "verify", out, "--deep", *CUSTODIAN, "--keyring", keyring, "--root-key-file", moved, extra_env=home
    )
    assert deep.returncode == 0, deep.stdout + deep.stderr
    assert "2 files decrypted" in deep.stdout  # the events and the alert the log raises (alerts are archived)
    other = tmp_path / "other"
    logwarden(
        "keys", "init", "--archive", tmp_path / "archive", "--keyring", other, "--root-key-file", tmp_path / "other.key"
    )
    wrong = logwarden(
        "archive", "verify", out, "--deep", *CUSTODIAN, "--keyring", other, "--root-key-file", tmp_path / "other.key"
    )
    errors = [line for line in wrong.stdout.splitlines() if line.startswith("error:")]
    # another keyring trusts none of this archive's writers: that one problem is what it says (signed manifests),
    # once per file (events, alerts), not three times each
    assert wrong.returncode == 1 and len(errors) == 2
    assert all("not signed by a trusted writer" in e for e in errors)


def test_the_audit_key_follows_the_deployment_not_the_working_directory(tmp_path):
    """keys init in one folder, audit verify in another: one audit key under $LOGWARDEN_HOME, HMACs checked."""
    home, archive = tmp_path / "home", tmp_path / "archive"
    env = {"LOGWARDEN_HOME": str(home), "LOGWARDEN_AUDIT_KEY": ""}  # the key file, as an operator has it
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    done = logwarden("keys", "init", "--archive", archive, cwd=first, extra_env=env)
    assert done.returncode == 0, done.stderr
    assert not (first / ".logwarden").exists()
    assert (home / "audit.key").is_file()
    checked = logwarden("audit", "verify", "--archive", archive, cwd=second, extra_env=env)
    assert checked.returncode == 0, checked.stderr
    assert "HMACs and chain: ok" in checked.stdout
    shown = logwarden("config", "show", extra_env=env).stdout
    for key, name in (("key_file", "audit.key"), ("role_keys_dir", "roles"), ("state_key_file", "stream-state.key")):
        assert f"{key}: {home / name}" in shown, shown


def test_every_key_command_the_readme_shows_names_the_archive():
    """Key commands are audited in the archive's trail: an example without --archive fails as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"`(logwarden keys [^`]+)`", text) + re.findall(r"^logwarden keys .*$", text, re.M)
    audited = [cmd for cmd in shown if cmd.split()[2] not in ("list", "roles", "signer")]  # the unaudited ones
    assert len(audited) >= 10
    assert [cmd for cmd in audited if "--archive" not in cmd] == []


def test_an_ingest_host_is_told_its_files_stay_unread_until_the_custodian_trusts_it(tmp_path):
    """The cluster recipe end to end: export, ingest, the printed trust command, then the readers read it."""
    keyring, root, archive = tmp_path / "keyring", tmp_path / "root.key", tmp_path / "archive"
    ring = ["--keyring", keyring, "--root-key-file", root]
    assert logwarden("keys", "init", "--archive", archive, *ring).returncode == 0
    ingest = tmp_path / "ingest" / "keyring"
    assert logwarden("keys", "export-public", "--archive", archive, ingest, "--keyring", keyring).returncode == 0
    config = tmp_path / "ingest.yaml"
    config.write_text(f"keys:\n  keyring: {ingest}\n  root_key_file: {tmp_path / 'no-root.key'}\n")
    done = logwarden("batch", "-c", config, "--input", ACCESS_LOG, "--output", archive)
    assert done.returncode == 0, done.stderr
    hint = [line for line in done.stderr.splitlines() if "is not trusted by the keyring's custodian" in line]
    assert len(hint) == 1, done.stderr
    untrusted = logwarden("archive", "verify", archive, "--deep", *CUSTODIAN, *ring)
    assert untrusted.returncode == 1 and "not signed by a trusted writer" in untrusted.stdout
    trust = hint[0].split("until the custodian runs: logwarden ", 1)[1].split()
    assert logwarden(*trust, *ring).returncode == 0  # the command exactly as printed, where the root key is
    assert logwarden("keys", "import", "--archive", archive, ingest, "--keyring", keyring).returncode == 0  # 2026-11
    shutil.copytree(keyring / "signers", ingest / "signers", dirs_exist_ok=True)  # the custodian ships the trust
    verified = logwarden("archive", "verify", archive, "--deep", *CUSTODIAN, *ring)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    again = logwarden("batch", "-c", config, "--input", ACCESS_LOG, "--output", archive, "--reprocess")
    assert again.returncode == 0 and "not trusted" not in again.stderr, again.stderr


def test_the_printed_trust_command_parses_when_the_public_key_begins_with_a_dash(tmp_path):
    """A public key is URL-safe base64, so 1 in 64 begins with '-': printed as '--public-key KEY', argparse then took
    it for an option and the custodian's copy of the command failed."""
    from types import SimpleNamespace

    from pipelines.cli import build_parser
    from pipelines.commands.batch import untrusted_writer_hint
    from retention import signing

    keyring, root = tmp_path / "keyring", tmp_path / "root.key"
    ring = ["--keyring", keyring, "--root-key-file", root]
    assert logwarden("keys", "init", "--archive", tmp_path / "archive", *ring).returncode == 0
    signer = next(s for s in iter(signing.Signer.generate, None) if signing.encode_public(s.public_key)[0] == "-")
    key_file = tmp_path / "dash-signing.key"
    signing.write_signer(key_file, signer)
    hint = untrusted_writer_hint(SimpleNamespace(keyring=str(keyring), signing_key_file=str(key_file)), "/srv/archive")
    command = hint.split("until the custodian runs: logwarden ", 1)[1].split()
    args = build_parser(command).parse_args(command)
    assert signing.decode_public(args.public_key) == signer.public_key
