"""What a running job has done so far, told by its workers through a side channel the command reads.

Beam's local runners report metrics only once the job is over, so a long run
would be silent.  Instead every parse step appends one JSON line per chunk
(file, format, bytes, lines, dead letters and their reasons, event time range)
to a file of its own in ``$LOGWARDEN_PROGRESS_DIR``; the command polls those
files in a thread, draws a progress display on a terminal (``rich``), and sums
them into the end-of-run summary.  Worker processes of ``multi_processing``
inherit the variable; on a remote runner it is unset and nothing is written.
Any command running the shared graph (``batch``, ``stream``) can use it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc

PROGRESS_ENV = "LOGWARDEN_PROGRESS_DIR"
_LOCK = threading.Lock()
_HANDLES: dict[str, object] = {}


def _reason_kind(reason: str) -> str:
    """``expected status code (%>s) at column 78, found 'abc'`` -> ``expected status code (%>s)``: reasons grouped."""
    return re.split(r" at column | found |: '|, got ", reason, maxsplit=1)[0][:120]


def record_chunk(path: str, format_spec: str, nbytes: int, result) -> None:
    """From a worker: one parsed chunk (a ``ParseResult``); a no-op unless the command asked for progress."""
    directory = os.environ.get(PROGRESS_ENV)
    if not directory:
        return
    doc = {"file": path, "format": format_spec.split(":", 1)[0], "bytes": nbytes, "lines": result.lines_read}
    doc["dead"] = result.dead_letters.num_rows
    doc["skipped"] = result.lines_skipped
    doc["expired"] = result.lines_expired
    if doc["dead"]:
        reasons = collections.Counter(_reason_kind(r) for r in result.dead_letters.column("reason").to_pylist())
        doc["reasons"] = dict(reasons.most_common(5))
    if result.events.num_rows and "timestamp" in result.events.schema.names:
        span = pc.min_max(result.events.column("timestamp"))
        low, high = span["min"].as_py(), span["max"].as_py()
        if low is not None:
            doc["first"], doc["last"] = low.isoformat(), high.isoformat()
    _append(directory, doc)


def record_alerts(count: int) -> None:
    directory = os.environ.get(PROGRESS_ENV)
    if directory and count:
        _append(directory, {"alerts": count})


def _append(directory: str, doc: dict) -> None:
    key = f"{os.getpid()}-{threading.get_ident()}"
    with _LOCK:
        handle = _HANDLES.get(key)
        if handle is None or os.path.dirname(handle.name) != directory:
            path = os.path.join(directory, f"{key}.jsonl")
            # kept open for the worker's life (one line per chunk); closed by _close_handles or at exit
            handle = _HANDLES[key] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        handle.write(json.dumps(doc, separators=(",", ":")) + "\n")


@dataclasses.dataclass
class FileTotals:
    format: str = ""
    lines: int = 0
    dead: int = 0
    skipped: int = 0
    expired: int = 0


@dataclasses.dataclass
class Totals:
    """Everything the workers reported so far."""

    bytes: int = 0
    lines: int = 0
    dead: int = 0
    alerts: int = 0
    first: str | None = None
    last: str | None = None
    files: dict[str, FileTotals] = dataclasses.field(default_factory=dict)
    reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, doc: dict) -> None:
        if "alerts" in doc:
            self.alerts += doc["alerts"]
            return
        self.bytes += doc.get("bytes", 0)
        self.lines += doc.get("lines", 0)
        self.dead += doc.get("dead", 0)
        one = self.files.setdefault(doc["file"], FileTotals(doc.get("format", "")))
        one.lines += doc.get("lines", 0)
        one.dead += doc.get("dead", 0)
        one.skipped += doc.get("skipped", 0)
        one.expired += doc.get("expired", 0)
        self.reasons.update(doc.get("reasons", {}))
        if doc.get("first"):
            self.first = min(filter(None, (self.first, doc["first"])))
            self.last = max(filter(None, (self.last, doc["last"])))


class Collector:
    """Reads the workers' files incrementally (only whole lines) into ``totals``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.totals = Totals()
        self._offsets: dict[Path, int] = {}
        self._lock = threading.Lock()

    def poll(self) -> Totals:
        with self._lock:
            for path in sorted(self.directory.glob("*.jsonl")):
                offset = self._offsets.get(path, 0)
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
                end = data.rfind(b"\n") + 1
                for line in data[:end].splitlines():
                    with contextlib.suppress(ValueError):
                        self.totals.add(json.loads(line))
                self._offsets[path] = offset + end
            return self.totals


def _input_bytes(files: list[str]) -> int | None:
    """Total size when every input is plain (compressed ones grow when read, so no honest ETA exists)."""
    if any(f.endswith((".gz", ".bz2", ".zst", ".xz")) for f in files):
        return None
    total = 0
    for path in files:
        try:
            total += os.path.getsize(path)
        except OSError:
            return None
    return total


class _Display:
    """A ``rich`` progress line on stderr: files, bytes, lines, lines/s, ETA and alerts so far."""

    def __init__(self, files: list[str], stream):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._started = time.monotonic()
        self._files = len(files)
        self._progress = Progress(
            BarColumn(bar_width=6),  # short, so an 80-column terminal shows every number whole (and the unit)
            DownloadColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self._task = self._progress.add_task("read", total=_input_bytes(files), detail="starting")

    def __enter__(self):
        self._progress.start()
        return self

    def update(self, totals: Totals) -> None:
        seconds = max(time.monotonic() - self._started, 1e-6)
        detail = (  # compact, so an 80-column terminal shows it whole
            f"files {len(totals.files)}/{self._files} {totals.lines:,} lines {totals.lines / seconds:,.0f} lines/s"
            f" {totals.alerts} alerts"
        )
        self._progress.update(self._task, completed=totals.bytes, detail=detail)

    def __exit__(self, *exc):
        self._progress.stop()


@contextlib.contextmanager
def watch(files: list[str], stream=None, show: bool | None = None, interval: float = 0.25) -> Iterator[Collector]:
    """Around running a job: workers report into a fresh folder; on a terminal a display follows them.

    Yields the ``Collector`` whose ``totals`` feed the end-of-run summary.
    """
    import sys

    stream = stream or sys.stderr
    show = stream.isatty() if show is None else show
    previous = os.environ.get(PROGRESS_ENV)
    with tempfile.TemporaryDirectory(prefix="logwarden-progress-") as directory:
        os.environ[PROGRESS_ENV] = directory
        collector = Collector(directory)
        stop = threading.Event()
        display = _Display(files, stream) if show else None

        def follow() -> None:
            while not stop.wait(interval):
                totals = collector.poll()
                if display is not None:
                    display.update(totals)

        thread = threading.Thread(target=follow, name="logwarden-progress", daemon=True)
        try:
            if display is not None:
                display.__enter__()
            thread.start()
            yield collector
        finally:
            stop.set()
            thread.join()
            if display is not None:
                display.__exit__(None, None, None)
            collector.poll()
            _close_handles()
            if previous is None:
                os.environ.pop(PROGRESS_ENV, None)
            else:
                os.environ[PROGRESS_ENV] = previous


def _close_handles() -> None:
    with _LOCK:
        for handle in _HANDLES.values():
            with contextlib.suppress(OSError):
                handle.close()
        _HANDLES.clear()


def time_range(totals: Totals) -> str | None:
    if not totals.first:
        return None
    first, last = (dt.datetime.fromisoformat(t).strftime("%Y-%m-%d %H:%M:%S") for t in (totals.first, totals.last))
    return f"{first} .. {last} UTC"
