"""The allocators a logwarden command gives itself and its workers, and a user's own choice that wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest

from pipelines.allocators import MMAP_ENV, POOL_ENV, hand_back_freed_memory

WORKER = "import os, pyarrow as pa; print(pa.default_memory_pool().backend_name, os.environ['MALLOC_MMAP_THRESHOLD_'])"


@pytest.fixture
def restore_pool():
    pool = pa.default_memory_pool()
    yield
    pa.set_memory_pool(pool)


def test_the_process_and_its_workers_allocate_from_jemalloc(monkeypatch, restore_pool):
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow is built without jemalloc")
    for name in (POOL_ENV, MMAP_ENV):  # set first, so that what the call sets is undone after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    hand_back_freed_memory()
    assert pa.default_memory_pool().backend_name == "jemalloc"
    worker = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, check=True)
    assert worker.stdout.split() == ["jemalloc", str(4 * 1024 * 1024)]


def test_a_pool_and_threshold_the_user_chose_are_kept(monkeypatch, restore_pool):
    monkeypatch.setenv(POOL_ENV, "system")
    monkeypatch.setenv(MMAP_ENV, "131072")
    before = pa.default_memory_pool().backend_name
    hand_back_freed_memory()
    assert pa.default_memory_pool().backend_name == before
    assert (os.environ[POOL_ENV], os.environ[MMAP_ENV]) == ("system", "131072")
    worker = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True, check=True)
    assert worker.stdout.split() == ["system", "131072"]


FRESH_COMMAND = """
import io, os
os.environ.pop('ARROW_DEFAULT_MEMORY_POOL', None)
from pipelines.allocators import hand_back_freed_memory
hand_back_freed_memory()
import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({'n': list(range(100_000))}), io.BytesIO())
print(pa.mimalloc_memory_pool().max_memory(), pa.jemalloc_memory_pool().max_memory())
"""


def test_parquet_a_command_writes_allocates_from_jemalloc_too():
    """The Parquet writer takes libarrow's own default pool, not pyarrow's: it must be jemalloc as well."""
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow is built without jemalloc")
    command = subprocess.run([sys.executable, "-c", FRESH_COMMAND], capture_output=True, text=True, check=True)
    mimalloc, jemalloc = (int(n) for n in command.stdout.split())
    assert mimalloc == 0 and jemalloc > 0


HOLES = """
import sys
from pipelines.allocators import trim_heap

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

blocks = [b"x" * 65536 for _ in range(800)]  # 50 MiB in blocks glibc keeps on its heap, all touched
pinned = blocks[::16]  # a block still in use every 1 MiB: the heap's top cannot shrink past them
del blocks
before = rss_mib()
trim_heap()
print(before - rss_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_trimming_hands_back_the_heap_memory_freed_below_blocks_still_in_use():
    """What ``trim_heap`` is for: glibc keeps free pages resident when a block in use lies above them (the batch
    job's heap had 20-40 MiB of them at its peaks); trimmed, they are the system's again."""
    from pipelines import allocators

    if allocators._TRIM is None:
        pytest.skip("a C library without malloc_trim")
    freed = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, check=True)
    assert float(freed.stdout) > 30  # of the ~47 MiB freed between the pinned blocks
