"""``logwarden batch`` that first prints its forked worker pool's pids (one JSON line on stdout).

Used by ``tests/pipelines/test_local_workers.py``, which runs it as a subprocess: the pool forks only from
a process with a single thread, which a pytest worker is not.
"""

from __future__ import annotations

import contextlib
import json
import sys

from pipelines import local_workers

_forked_workers = local_workers.forked_workers


@contextlib.contextmanager
def _announced(count: int, prepare=None):
    with _forked_workers(count, prepare) as pool:
        print(json.dumps({"pids": pool.pids}), flush=True)
        yield pool


local_workers.forked_workers = _announced  # before the batch command imports it

if __name__ == "__main__":
    from pipelines.cli import main

    sys.exit(main())
