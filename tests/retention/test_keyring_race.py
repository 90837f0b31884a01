"""Keyring initialisation is atomic: processes starting at once never see a half-written root key."""

from __future__ import annotations

import multiprocessing

from retention import sealing, signing
from retention.keyring import (
    Keyring,
    default_signing_key_file,
    init_keyring,
    read_root_key,
    reader_keys,
    write_root_key_file,
)


def _init(directory: str, key_file: str, barrier, results) -> None:
    barrier.wait()
    try:
        init_keyring(directory, key_file, environ={}, exist_ok=True)
        reader_keys(directory, key_file, environ={})  # the root key read back belongs to the keyring
        results.put("ok")
    except Exception as problem:  # reported to the parent, which fails the test with it
        results.put(f"{type(problem).__name__}: {problem}")


def test_processes_initialising_at_once_all_get_one_whole_keyring(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        directory, key_file = str(tmp_path / f"k{attempt}"), str(tmp_path / f"root{attempt}.key")
        barrier, results = context.Barrier(6), context.Queue()
        workers = [context.Process(target=_init, args=(directory, key_file, barrier, results)) for _ in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        outcomes = [results.get(timeout=5) for _ in workers]
        assert outcomes == ["ok"] * 6, outcomes
        assert Keyring(directory).exists() and len(read_root_key(key_file, environ={})) == 32


def test_a_process_that_finds_a_keyring_just_made_finishes_its_signing_key_and_trust(tmp_path):
    """The moment the race test hits now and then: another process has made the root key and the keyring, not yet
    the signing key nor its trust record. ``exist_ok`` must not return a keyring this host cannot write to."""
    directory, key_file = tmp_path / "keyring", tmp_path / "root.key"
    root_key = sealing.new_private_key()
    write_root_key_file(key_file, root_key)
    Keyring(directory).create(sealing.public_key_of(root_key))
    signing_key = default_signing_key_file(directory)
    assert not signing_key.exists()

    init_keyring(directory, key_file, environ={}, exist_ok=True)

    signer = signing.read_signer(signing_key)
    keyring = Keyring(directory)
    assert signer.id in keyring.trusted_signers(keyring.custodian_public())


def test_a_signing_key_made_by_another_process_between_looking_and_making_is_taken(tmp_path, monkeypatch):
    """The race test's rare failure: the key was missing when read, and there when looked for again (another
    process linked it into place): it is read, not reported missing."""
    path = tmp_path / "signing.key"
    made = signing.Signer.generate()
    real = signing.read_signer
    calls = []

    def first_missing(p):
        calls.append(p)
        if len(calls) == 1:
            signing.write_signer(path, made)  # the other process, just after this one looked
            raise signing.SigningError(f"no signing key at {p}")
        return real(p)

    monkeypatch.setattr(signing, "read_signer", first_missing)
    signer, created = signing.load_or_create_signer(path)
    assert not created and signer.public_key == made.public_key
