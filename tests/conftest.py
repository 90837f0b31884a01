"""Shared fixtures: where the public corpora are, and the project's own sample logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def corpora_root() -> Path | None:
    """``../shared/corpora`` beside the checkout (or $LOGWARDEN_CORPORA), if it is there."""
    candidates = [os.environ.get("LOGWARDEN_CORPORA"), ROOT.parent / "shared" / "corpora"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def corpora() -> Path:
    root = corpora_root()
    if root is None:
        pytest.skip("public corpora not found: ../shared/corpora is absent and LOGWARDEN_CORPORA is unset")
    return root


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def archive_config(tmp_path):
    """The default config with a fresh keyring and root key under ``tmp_path`` (never ``./.logwarden``)."""
    import dataclasses

    from retention.keyring import init_keyring
    from schemas.config import Config, KeysConfig

    keys = KeysConfig(keyring=str(tmp_path / "keyring"), root_key_file=str(tmp_path / "root.key"))
    init_keyring(keys.keyring, keys.root_key_file, environ={})
    return dataclasses.replace(Config(), keys=keys)


@pytest.fixture
def reader(archive_config):
    """The reader role (root key loaded) of ``archive_config``'s keyring."""
    from retention.keyring import reader_keys

    return reader_keys(archive_config.keys.keyring, archive_config.keys.root_key_file, environ={})


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch):
    """Every test's audited commands use one audit key from the environment, never a key file in the working dir."""
    monkeypatch.setenv("LOGWARDEN_AUDIT_KEY", "dGVzdC1hdWRpdC1rZXktMzItYnl0ZXMtbG9uZy4uLi4")


@pytest.fixture(autouse=True)
def _own_logwarden_home(tmp_path, monkeypatch):
    """Default keyring and root key inside the test's folder (``$LOGWARDEN_HOME``), never in the user's home."""
    monkeypatch.setenv("LOGWARDEN_HOME", str(tmp_path / ".logwarden"))
