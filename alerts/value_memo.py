"""Every text test's answer per distinct value, remembered across batches on the Arrow side.

URLs, user agents and referrers repeat from one batch to the next far more than
within one.  ``ValueMemo`` keeps the values of one field seen so far as an Arrow
array (and, once asked, their normalised texts beside it); each test keeps one
answer per known value.  A batch is mapped onto the known values with
``index_in``, so a test's regex (or normalisation) only ever runs on values no
earlier batch carried; rows then read their answer with one numpy index.  Like
``parsers.enrich.memo.ColumnMemo``, the memo is bounded: past ``max_values`` it
forgets everything and starts again from the current batch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Distinct values of one field remembered at most (with their normalised text and every test's answers).
MAX_REMEMBERED = 200_000

#: ``compute(values, start)``: the test's answer for each of ``values[start:]``.
Compute = Callable[[pa.Array, int], np.ndarray]


class ValueMemo:
    """One text field's known values, their normalised texts and each test's answers for them."""

    def __init__(self, max_values: int = MAX_REMEMBERED):
        self.max_values = max_values
        self.resets = 0
        self._clear()

    def _clear(self) -> None:
        self.keys = pa.array([], pa.string())
        self._normalized = pa.array([], pa.string())
        self._answers: dict[Hashable, np.ndarray] = {}

    def positions(self, column: pa.Array) -> np.ndarray:
        """Each row's position among the known values (-1 for null), learning the values never seen before."""
        return self.positions_and_present(column)[0]

    def positions_and_present(self, column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """``(per row, its position among the known values (-1 for null); the positions the column holds)``,
        learning the values never seen before.

        One hash pass over the rows (``dictionary_encode``); the batch's few distinct values are then looked up
        among the known ones."""
        encoded = pc.dictionary_encode(column)
        distinct = encoded.dictionary
        found = pc.index_in(distinct, value_set=self.keys).fill_null(-1).to_numpy(zero_copy_only=False)
        found = found.astype(np.int64)
        missing = np.flatnonzero(found < 0)
        if len(missing):
            if len(self.keys) + len(missing) > self.max_values:
                self.resets += 1
                self._clear()
                self.keys, found = distinct, np.arange(len(distinct), dtype=np.int64)
            else:  # the new values go at the end: answers already known keep their positions
                found[missing] = len(self.keys) + np.arange(len(missing), dtype=np.int64)
                self.keys = pa.concat_arrays([self.keys, distinct.take(pa.array(missing))])
        rows = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
        present = np.append(found, -1)  # -1: null rows (answered False by every test)
        return present[rows], present

    def normalized(self, normalizer: Callable[[str], str]) -> pa.Array:
        """The known values' normalised texts, normalising only the values learnt since the last call."""
        done = len(self._normalized)
        if done < len(self.keys):
            fresh = pa.array([normalizer(v) for v in self.keys.slice(done).to_pylist()], pa.string())
            self._normalized = pa.concat_arrays([self._normalized, fresh])
        return self._normalized

    def answers(self, test: Hashable, values: pa.Array, compute: Compute) -> np.ndarray:
        """``test``'s answer per known value (``values``: the keys or their normalised texts), then False for null
        rows at position -1; ``compute`` runs only on the values the test has not answered yet."""
        known = self._answers.get(test)
        done = 0 if known is None else len(known) - 1
        if known is None or done < len(values):
            answered = known[:-1] if known is not None else np.zeros(0, dtype=bool)
            known = np.concatenate([answered, compute(values, done), [False]])
            self._answers[test] = known
        return known
