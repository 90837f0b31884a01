"""Answers remembered across batches are the answers a fresh computation gives, and only new values are computed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alerts.value_memo import ValueMemo


def answers_for(memo: ValueMemo, column: pa.Array, computed: list[str]) -> list[bool]:
    def contains_admin(values: pa.Array, start: int) -> np.ndarray:
        fresh = values.slice(start)
        computed.extend(fresh.to_pylist())
        return pc.match_substring(fresh, "admin").to_numpy(zero_copy_only=False)

    positions = memo.positions(column)
    return memo.answers("admin", memo.keys, contains_admin)[positions].tolist()


def test_each_value_is_computed_once_across_batches():
    memo, computed = ValueMemo(), []
    first = pa.array(["/", "/admin", None, "/"])
    assert answers_for(memo, first, computed) == [False, True, False, False]
    second = pa.array(["/admin/x", "/", "/admin", None])
    assert answers_for(memo, second, computed) == [True, False, True, False]
    assert sorted(computed) == ["/", "/admin", "/admin/x"]


def test_the_memo_is_bounded_and_still_answers_right_after_forgetting():
    memo, computed = ValueMemo(max_values=3), []
    assert answers_for(memo, pa.array(["/a", "/b", "/admin"]), computed) == [False, False, True]
    assert answers_for(memo, pa.array(["/c", "/admin"]), computed) == [False, True]
    assert memo.resets == 1 and len(memo.keys) == 2
    assert computed == ["/a", "/b", "/admin", "/c", "/admin"]


def test_normalised_texts_follow_the_keys():
    memo = ValueMemo()
    memo.positions(pa.array(["/A", "/B"]))
    assert memo.normalized(str.lower).to_pylist() == ["/a", "/b"]
    memo.positions(pa.array(["/C", "/A"]))
    assert memo.normalized(str.lower).to_pylist() == ["/a", "/b", "/c"]
