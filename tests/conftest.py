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
