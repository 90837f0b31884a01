"""A batch job's finished stages give their memory back when the next stage starts.

Beam's SDK worker keeps the bundle processor of every fused stage it ran, for a next bundle of the same stage:
its DoFns with all they hold (the enricher's compiled User-Agent matchers, ~22 MiB; detection and archive
state) and an output buffer per output (up to 16 MiB each: a buffer keeps the size it grew to).  A batch job
on the local runner runs each stage once per worker, one after the other, so that memory was kept for a
reuse that never came while the later stages ran (the job's peak was in its last stage).  While
``free_finished_stages()`` lasts, a worker that starts a bundle first shuts down (``teardown``) the kept
processors of every other stage, and hands the heap pages they freed back (``pipelines.allocators.trim_heap``);
a stage that runs again builds its processor again.

Streaming jobs run every stage again and again, so only batch uses this.  Internals of apache-beam 2.77
(pinned in ``setup.py``); ``tests/pipelines/test_stage_memory.py`` guards them.  Install it before local
workers are forked: they inherit it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from apache_beam.runners.worker.sdk_worker import BundleProcessorCache

from pipelines.allocators import trim_heap


def _shut_down_other_stages(cache: BundleProcessorCache, bundle_descriptor_id: str) -> None:
    with cache._lock:
        finished = [kept for stage, kept in cache.cached_bundle_processors.items() if stage != bundle_descriptor_id]
    if not any(finished):  # (a stage's list stays, empty, once shut down)
        return
    for kept in finished:
        BundleProcessorCache._shutdown_cached_bundle_processors(kept)
    trim_heap()  # what they held, back to the system before this stage builds its own


@contextlib.contextmanager
def free_finished_stages() -> Iterator[None]:
    """While this lasts, starting a bundle shuts down the processors kept for other stages."""
    original = BundleProcessorCache.get

    def get(cache, instruction_id, bundle_descriptor_id):
        _shut_down_other_stages(cache, bundle_descriptor_id)
        return original(cache, instruction_id, bundle_descriptor_id)

    BundleProcessorCache.get = get
    try:
        yield
    finally:
        BundleProcessorCache.get = original
