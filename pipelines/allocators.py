"""Allocators for a logwarden process that hand freed memory back instead of keeping it for later.

A batch job's peak memory was mostly memory it had already freed.  Arrow's default mimalloc pool keeps
freed pages until it next allocates, so what the batches of the big fused stage used stayed resident while
the aggregates were merged and written; jemalloc returns it after a second, whatever happens next.  glibc
raises its mmap threshold each time a large block is freed, so later large blocks (compression contexts,
numpy temporaries, big Python lists) come from its heap, whose holes it cannot return; a fixed threshold
keeps them in mappings of their own.  Measured on the 1M-line bench log (``python -m bench stages``):
each setting takes about 40 MiB off the peak; purging mimalloc at once or a 1 MiB threshold took as much
again but tripled the page faults (more than 10% of the job's CPU time).

The environment it sets is inherited by the worker processes a runner starts; a setting already in the
environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: glibc's ``mallopt`` parameter for the size from which a block gets its own mapping.
M_MMAP_THRESHOLD = -3
#: Blocks from this size are mapped on their own and unmapped when freed.
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def hand_back_freed_memory() -> None:
    """Arrow's jemalloc pool (when pyarrow has it) and a fixed glibc mmap threshold, here and in workers."""
    import pyarrow as pa

    if POOL_ENV not in os.environ:
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
            os.environ[POOL_ENV] = "jemalloc"
        except NotImplementedError:  # a pyarrow built without jemalloc keeps its default pool
            pass
    os.environ.setdefault(MMAP_ENV, str(MMAP_THRESHOLD_BYTES))
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "mallopt"):  # glibc: this process read its environment at start
        libc.mallopt(M_MMAP_THRESHOLD, int(os.environ[MMAP_ENV]))
