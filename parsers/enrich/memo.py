"""Look each distinct value up once, keep the answers as Arrow columns, map every batch through them.

A million log lines carry a few hundred distinct user agents and thousands of
client addresses.  ``ColumnMemo`` keeps a Python dict from each value seen to
its position in Arrow columns holding the answers.  A batch costs one
``dictionary_encode`` (its distinct values and each row's index into them, in
C), one dict probe per distinct value of the batch, the lookup for values never
seen, and one ``take`` per answer column: no Python object is built per row,
and none per known value.  The memo is bounded: past ``max_values`` values it
starts again from the current batch, so memory stays flat on a stream of
ever-new addresses; the current batch's known answers are kept, not looked up again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def python_values(values: pa.Array) -> list[str]:
    """Arrow strings to Python; bytes that are not UTF-8 (a lax upstream) are read with replacement characters."""
    try:
        return values.to_pylist()
    except UnicodeDecodeError:
        return [value.decode("utf-8", "replace") for value in values.cast(pa.binary()).to_pylist()]


@dataclasses.dataclass
class MemoStats:
    """``rows`` mapped (non-null), ``computed``: values that went through the lookup (misses), ``resets``."""

    rows: int = 0
    computed: int = 0
    resets: int = 0

    @property
    def hit_rate(self) -> float:
        """Share of rows answered from the memo without a lookup."""
        return 1 - self.computed / self.rows if self.rows else 0.0


class ColumnMemo:
    """Answers of ``lookup(value) -> tuple`` for the values seen so far, one Arrow column per answer field."""

    def __init__(self, lookup: Callable[[str], Sequence[Any]], types: Sequence[pa.DataType], max_values: int):
        self._lookup = lookup
        self._types = list(types)
        self.max_values = max_values
        self.stats = MemoStats()
        self._clear()

    def _clear(self) -> None:
        self._positions: dict[str, int] = {}
        self._answers = [pa.array([], kind) for kind in self._types]

    def _keep_only(self, known: list[tuple[str, int]]) -> None:
        """Forget every value but ``known`` (value, position) pairs: the current batch's, still answered."""
        self.stats.resets += 1
        kept = pa.array([position for _, position in known], pa.int64())
        self._answers = [answers.take(kept) for answers in self._answers]
        self._positions = {value: index for index, (value, _) in enumerate(known)}

    def _learn(self, values: list[str]) -> None:
        answers = [self._lookup(value) for value in values]
        fields = zip(*answers) if answers else [()] * len(self._types)
        self._answers = [
            pa.concat_arrays([known, pa.array(list(field), kind)])
            for known, field, kind in zip(self._answers, fields, self._types)
        ]
        start = len(self._positions)
        self._positions.update(zip(values, range(start, start + len(values))))
        self.stats.computed += len(values)

    def map(self, column: pa.Array) -> list[pa.Array]:
        """One array per answer field, aligned with ``column``; null rows get null answers."""
        self.stats.rows += len(column) - column.null_count
        encoded = pc.dictionary_encode(column)
        values = python_values(encoded.dictionary)
        positions = list(map(self._positions.get, values))
        if None in positions:
            new = [value for value, position in zip(values, positions) if position is None]
            if len(self._positions) + len(new) > self.max_values:
                self._keep_only([(v, p) for v, p in zip(values, positions) if p is not None])
            self._learn(new)
            positions = list(map(self._positions.__getitem__, values))
        rows = pa.array(positions, pa.int64()).take(encoded.indices)
        return [answers.take(rows) for answers in self._answers]
