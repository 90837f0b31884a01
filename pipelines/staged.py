"""Values handed from one stage of a bounded run to the next as sealed files in its staging folder: only their
names cross the shuffle.

The local runner moves whatever crosses a GroupByKey through the process that drives the job: in from the worker
that made it, decoded and encoded again, out to the worker that needs it, over gRPC on one core.  A run's aggregate
partials and store rows are ~10 and ~14 MB at 1M lines; with two workers, moving them took ~0.25 s of that
process's CPU while the workers waited for their next stage.  As files they are written and read by the workers
themselves, in parallel.

Sealed under a key made for the run in memory (``pipelines.spill.new_key``), so the staging folder holds nothing
readable; files are left for the end of the run (``retention.commit.clear_staging``), so a retried bundle reads
them again, and what a killed run leaves goes with its staging folder (``retention.commit.recover``).
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from pipelines.spill import seal, unseal
from retention import commit
from retention.storage import create, read_bytes


@dataclasses.dataclass(frozen=True)
class Staged:
    """Where one staged value is."""

    path: str


@dataclasses.dataclass(frozen=True)
class Stager:
    """Writes values to, and reads them from, one run's staging folder (carried by the DoFns that do)."""

    output: str
    run_id: str
    key: bytes

    def put(self, value: Any) -> Staged:
        path = commit.staging_path(self.output, self.run_id, ".staged")
        with create(path) as handle:
            handle.write(seal(self.key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))
        return Staged(path)

    def get(self, staged: Staged) -> Any:
        return pickle.loads(unseal(self.key, read_bytes(staged.path)))
