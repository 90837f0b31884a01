"""A percentile sketch for health rules: counts of values in logarithmic buckets (the DDSketch idea).

A value ``v >= 1`` falls in bucket ``ceil(log(v) / log(GAMMA))``, whose every
member is within ``ACCURACY`` (1 %) of the bucket's representative value, so a
percentile read from the counts is within 1 % of the true one (values below 1,
e.g. ``0`` µs, share bucket 0).  Unlike KLL (``datasketches``, used by the
reports), merging is plain addition and has no random compaction: a replay and
the stream, folding the same events in different pieces, read the same p95 and
so raise the same alerts; and a trailing window can *subtract* the bucket that
leaves it.
"""

from __future__ import annotations

import numpy as np

ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = float(np.log(GAMMA))
#: Buckets up to 10**12 (11.6 days in microseconds); larger values share the last bucket.
BUCKETS = int(np.ceil(np.log(1e12) / _LOG_GAMMA)) + 1
#: The value each bucket stands for: the point with the same relative distance to both of its edges.
_VALUES = np.concatenate([[0.0], 2 * GAMMA ** np.arange(1, BUCKETS) / (GAMMA + 1)])


def bucket_of(values: np.ndarray) -> np.ndarray:
    """Each value's bucket (int32); values below 1 (and NaN) go to bucket 0."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        buckets = np.ceil(np.log(values) / _LOG_GAMMA)
    buckets = np.where(values >= 1, buckets, 0)
    return np.clip(buckets, 0, BUCKETS - 1).astype(np.int32)


def sparse_counts(buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(buckets, counts)`` of the distinct buckets: what a cell keeps (a few dozen pairs, not 1,400 counts)."""
    found, counts = np.unique(buckets, return_counts=True)
    return found.astype(np.int32), counts.astype(np.int64)


def dense() -> np.ndarray:
    return np.zeros(BUCKETS, np.int64)


def add(into: np.ndarray, sparse: tuple[np.ndarray, np.ndarray], sign: int = 1) -> None:
    """``into += sparse`` (or ``-=`` with ``sign=-1``), in place."""
    buckets, counts = sparse
    np.add.at(into, buckets, counts * sign)


def quantile(counts: np.ndarray, q: float) -> float | None:
    """The ``q`` quantile (0..1) of the values counted in a dense array; None when it counts nothing."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1]) if len(cumulative) else 0
    if total <= 0:
        return None
    rank = max(1, int(np.ceil(q * total)))  # the rank-th smallest value, as a sorted list would give it
    return float(_VALUES[int(np.searchsorted(cumulative, rank))])
