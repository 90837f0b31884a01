"""Values staged between stages of a bounded run: in its staging folder, sealed, read back as they were."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from pipelines.spill import new_key
from pipelines.staged import Stager
from retention.layout import staging_dir


def test_a_staged_value_is_read_back_from_the_run_s_staging_folder_and_is_sealed_there(tmp_path):
    stager = Stager(str(tmp_path), "r1", new_key())
    value = {"path": "/account/jane.doe@example.org", "requests": 3}
    staged = stager.put(value)
    assert staged.path.startswith(staging_dir(str(tmp_path), "r1"))
    assert stager.get(staged) == value
    at_rest = Path(staged.path).read_bytes()
    assert b"jane.doe" not in at_rest and pickle.dumps(value) not in at_rest
    assert stager.get(pickle.loads(pickle.dumps(staged))) == value  # the name crosses the shuffle, not the value


def test_another_run_s_key_cannot_read_a_staged_value(tmp_path):
    staged = Stager(str(tmp_path), "r1", new_key()).put([1, 2, 3])
    with pytest.raises(InvalidTag):
        Stager(str(tmp_path), "r1", new_key()).get(staged)
