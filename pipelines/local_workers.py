"""The local runner's worker processes, forked from the command already initialised instead of started afresh.

Beam's ``multi_processing`` mode starts every worker as ``python -m apache_beam.runners.worker.sdk_worker_main``:
a new interpreter that imports Beam, pyarrow and logwarden again, about 1.5 s of CPU each on the job's
critical path.  ``forked_workers(n)`` forks ``n`` children from the command while it still has one thread and
no gRPC channel (forking the runner later, with its gRPC server and threads live, is not safe); each waits
on a pipe until the runner asks for a worker and then runs Beam's SDK harness against the runner's control
address, as ``sdk_worker_main`` would.

The hook is Beam's own registry of worker handlers by environment urn: while the pool is open, the
``multi_processing`` environment's handler is ``ForkedSdkWorkerHandler``, which takes a waiting child (or,
when none is left, starts a fresh interpreter as Beam does).  Internals of apache-beam 2.77, pinned in
``setup.py``; ``tests/pipelines/test_local_workers.py`` runs them.  Linux only (``fork``, and
``PR_SET_PDEATHSIG`` so that no child outlives a killed command); elsewhere the pool stays empty.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from apache_beam.portability import python_urns
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import sdk_worker

_LOG = logging.getLogger("logwarden")
_PR_SET_PDEATHSIG = 1
#: How long a closing pool waits for a child to end before killing it.
EXIT_SECONDS = 30.0


def can_fork() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def die_with_parent() -> None:
    """Linux: this process is killed when the one that started it dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Child:
    """A forked process waiting on a pipe for the runner's control address."""

    def __init__(self, pid: int, pipe: int):
        self.pid, self._pipe = pid, pipe

    def start(self, control_address: str, worker_id: str) -> None:
        request = {"control_address": control_address, "worker_id": worker_id, "environ": dict(os.environ)}
        with os.fdopen(self._pipe, "w") as pipe:
            self._pipe = -1
            pipe.write(json.dumps(request) + "\n")

    def close_pipe(self) -> None:
        """Our end of the pipe: closed unused, the child reads end of file and exits."""
        if self._pipe >= 0:
            os.close(self._pipe)
            self._pipe = -1

    def wait(self, timeout: float | None = EXIT_SECONDS) -> int:
        """The child's exit status (0 if already reaped); killed if it has not ended within ``timeout`` seconds."""
        killer = threading.Timer(timeout, _kill, (self.pid,)) if timeout is not None else None
        if killer is not None:
            killer.daemon = True
            killer.start()
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return 0
        finally:
            if killer is not None:
                killer.cancel()
        return os.waitstatus_to_exitcode(status)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _serve(pipe: int, parent: int, prepare: Callable[[], None] | None = None) -> int:
    """In the child: ``prepare``, wait for the runner's request, then be its SDK worker until the runner closes
    the connection."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle; it then closes its workers
    die_with_parent()
    if os.getppid() != parent:  # the command died before the death signal was armed
        return 0
    if prepare is not None:
        try:
            prepare()
        except Exception:  # only ahead of time: the stage that needs it does it again, and says what is wrong
            _LOG.debug("local worker process %d could not prepare", os.getpid(), exc_info=True)
    with os.fdopen(pipe, "r") as reader:
        line = reader.readline()
    if not line:  # the runner did not need this worker
        return 0
    request = json.loads(line)
    os.environ.clear()
    os.environ.update(request["environ"])  # what the command set since the fork (the progress folder)
    sdk_worker.SdkHarness(
        request["control_address"],
        worker_id=request["worker_id"],
        # what sdk_worker_main gives a worker of this runner, which provisions it no pipeline options
        state_cache_size=0,
        data_buffer_time_limit_ms=0,
        runner_capabilities=worker_handlers.FNAPI_RUNNER_CAPABILITIES,
    ).run()
    return 0


def _fork(siblings: list[_Child], prepare: Callable[[], None] | None = None) -> _Child:
    read_end, write_end = os.pipe()
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(read_end)
        return _Child(pid, write_end)
    status = 1  # the child, which never returns from here
    try:
        os.close(write_end)
        for sibling in siblings:  # the copies of earlier children's pipes, or they would never see end of file
            sibling.close_pipe()
        status = _serve(read_end, parent, prepare)
    except BaseException:
        _LOG.exception("local worker process %d failed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # never the command's exit handlers: they would remove its temporary folders


class WorkerPool:
    """Forked children waiting to become the runner's workers."""

    def __init__(self, children: list[_Child]):
        self.pids = [c.pid for c in children]
        self._waiting = list(children)
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def take(self) -> _Child | None:
        with self._lock:
            return self._waiting.pop(0) if self._waiting else None

    def close(self) -> None:
        """Dismiss the children nobody took; every child has ended when this returns."""
        with self._lock:
            unused, self._waiting = self._waiting, []
        for child in unused:
            child.close_pipe()
            child.wait()


_POOL: WorkerPool | None = None


class ForkedSdkWorkerHandler(worker_handlers.SubprocessSdkWorkerHandler):
    """Beam's handler of ``multi_processing`` workers, running them in the open pool's forked children.

    A child that dies while the runner waits for it fails the job instead of leaving it waiting forever.
    """

    _child: _Child | None = None
    _stopping = False

    def start_worker(self) -> None:
        child = _POOL.take() if _POOL is not None else None
        if child is not None:
            try:
                child.start(self.control_address, self.worker_id)
            except OSError:  # it died waiting
                child.wait()
                child = None
        if child is None:
            super().start_worker()
            return
        self._child = child
        self._watcher = threading.Thread(target=self._watch, name=f"logwarden-{self.worker_id}", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        status = self._child.wait(timeout=None)
        if self._stopping and not status:
            return
        how = f"it was killed by signal {-status}" if status < 0 else f"its exit status was {status}"
        problem = RuntimeError(f"local worker process {self._child.pid} ended before the job did: {how}")
        if not self._stopping:
            self._fail(problem)
        _LOG.warning("%s", problem)

    def _fail(self, problem: Exception) -> None:
        """Make whatever the runner waits for from this worker raise ``problem``, now and from now on.

        Aborting the pending control futures is not enough: the runner also blocks reading the worker's data.
        """
        self.data_conn._exception = problem  # what a broken data stream sets: its readers raise it within 1 s
        control, push = self.control_conn, self.control_conn.push

        def push_failed(request):
            future = push(request)
            if future is not None:
                future.abort(problem)
            return future

        control.push = push_failed
        control.abort(problem)

    def stop_worker(self) -> None:
        if self._child is None:
            super().stop_worker()
            return
        self._stopping = True
        self._watcher.join(EXIT_SECONDS)
        if self._watcher.is_alive():
            _kill(self._child.pid)
            self._watcher.join()


@contextlib.contextmanager
def forked_workers(count: int, prepare: Callable[[], None] | None = None) -> Iterator[WorkerPool]:
    """Fork ``count`` workers now, for the local runner's ``multi_processing`` mode while this lasts.

    Call it while the command has no other thread and no gRPC channel (before the progress display, the
    runner or any sink start); otherwise, or off Linux, it forks nothing and Beam starts its workers itself.
    Each child first calls ``prepare`` (what the job's stages would otherwise build in every worker at the
    start of a stage, on the job's critical path), while the command still builds the job on the other core.
    Children the runner did not take exit when this ends.
    """
    global _POOL
    if _POOL is not None:
        raise RuntimeError("forked_workers is already open")
    if count and threading.active_count() > 1:
        _LOG.warning("not forking local workers: %d threads are running", threading.active_count())
        count = 0
    children: list[_Child] = []
    for _ in range(count if can_fork() else 0):
        children.append(_fork(children, prepare))
    pool = WorkerPool(children)
    registry = worker_handlers.WorkerHandler._registered_environments
    previous = registry[python_urns.SUBPROCESS_SDK]
    registry[python_urns.SUBPROCESS_SDK] = (ForkedSdkWorkerHandler, bytes)
    _POOL = pool
    try:
        yield pool
    finally:
        _POOL = None
        registry[python_urns.SUBPROCESS_SDK] = previous
        pool.close()
