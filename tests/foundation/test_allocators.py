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
