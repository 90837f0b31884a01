"""Allocators for a logwarden process that hand freed memory back instead of keeping it for later.

A batch job's peak memory was mostly memory it had already freed.  Arrow's default mimalloc pool keeps
freed pages until it next allocates, so what the batches of the big fused stage used stayed resident while
the aggregates were merged and written; jemalloc returns it after a second, whatever happens next.  glibc
raises its mmap threshold each time a large block is freed, so later large blocks (compression contexts,
numpy temporaries, big Python lists) come from its heap, whose holes it cannot return; a fixed threshold
keeps them in mappings of their own.  Measured on the 1M-line bench log (``python -m bench stages``):
each setting takes about 40 MiB off the peak; purging mimalloc at once or a 1 MiB threshold took as much
again but tripled the page faults (more than 10% of the job's CPU time).

Arrow's C++ code that is given no pool (the Parquet writer of the archive and the aggregate store, Acero's
group-by) allocates from the default pool libarrow chose from ``ARROW_DEFAULT_MEMORY_POOL`` when it was
loaded, not from the pool ``pyarrow.set_memory_pool`` sets; so the variable is set before pyarrow is imported
(then mimalloc kept up to 58 MiB of the 1M-line peak for the archive's encoders).

The environment it sets is inherited by the worker processes a runner starts; a setting already in the
environment wins.

glibc gives back on its own only the free memory at the top of its heap; what is freed below a block still in use
stays resident.  ``trim_heap`` hands those pages back at the moments a batch job's memory peaks: when a stage
starts after another's DoFns were torn down (42 MiB of the heap was free at the aggregate write, the job's peak
then) and before each observing of held rows (20-30 MiB free at the main stage's peak).  About a dozen calls per
million lines, each a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import sys
from pathlib import Path

#: glibc's ``mallopt`` parameter for the size from which a block gets its own mapping.
M_MMAP_THRESHOLD = -3
#: Blocks from this size are mapped on their own and unmapped when freed.
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def _pyarrow_has_jemalloc() -> bool:
    """Whether the installed pyarrow was built with jemalloc, known without importing it (its build config)."""
    spec = importlib.util.find_spec("pyarrow")
    for location in (spec.submodule_search_locations or []) if spec else []:
        try:
            config = (Path(location) / "include" / "arrow" / "util" / "config.h").read_text()
        except OSError:
            continue
        return "#define ARROW_JEMALLOC\n" in config
    return False


def _libc():
    libc_name = ctypes.util.find_library("c")
    return ctypes.CDLL(libc_name) if libc_name else None


def trim_heap() -> None:
    """glibc's free heap pages handed back to the system now (``malloc_trim``); nothing elsewhere."""
    if _TRIM is not None:
        _TRIM(0)


def hand_back_freed_memory() -> None:
    """Arrow's jemalloc pool (when pyarrow has it) and a fixed glibc mmap threshold, here and in workers.

    Call it before pyarrow is imported, or libarrow's own default pool stays what it was.
    """
    if POOL_ENV not in os.environ:
        if "pyarrow" not in sys.modules and _pyarrow_has_jemalloc():
            os.environ[POOL_ENV] = "jemalloc"  # libarrow reads it once, when its default pool is first used
        else:  # libarrow may have chosen already: at least what pyarrow allocates
            import pyarrow as pa

            try:
                pa.set_memory_pool(pa.jemalloc_memory_pool())
                os.environ[POOL_ENV] = "jemalloc"
            except NotImplementedError:  # a pyarrow built without jemalloc keeps its default pool
                pass
    os.environ.setdefault(MMAP_ENV, str(MMAP_THRESHOLD_BYTES))
    libc = _LIBC
    if libc is not None and hasattr(libc, "mallopt"):  # glibc: this process read its environment at start
        libc.mallopt(M_MMAP_THRESHOLD, int(os.environ[MMAP_ENV]))


_LIBC = _libc()
#: glibc's ``malloc_trim``, None where the C library has none (musl, macOS).
_TRIM = getattr(_LIBC, "malloc_trim", None) if _LIBC is not None else None
