"""Running a command in a child process and measuring its wall time and peak memory."""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclasses.dataclass
class Measurement:
    name: str
    seconds: float | None
    peak_rss_mib: float | None
    lines: int
    note: str = ""
    #: The command's standard output and error (``run_measured(..., keep_stdout=True)``).
    stdout: str = ""

    @property
    def lines_per_second(self) -> float | None:
        return self.lines / self.seconds if self.seconds else None


def _children() -> dict[int, list[int]]:
    """Every process's children, from ``/proc/*/stat`` (the parent pid is the 4th field after the name)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_bytes(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, summed (worker processes count too)."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(tree.get(current, ()))
    return total


class TreeSampler:
    """Samples the summed RSS of a process tree in a thread; ``peak`` is the largest sum seen."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """``argv`` run on the CPUs ``cpus`` (``"0"``, ``"0,1"``) with taskset; unchanged for None."""
    return argv if cpus is None else ["taskset", "-c", cpus, *argv]


def run_measured(
    name: str,
    argv: list[str],
    lines: int,
    env: dict | None = None,
    *,
    cpus: str | None = None,
    keep_stdout: bool = False,
) -> Measurement:
    """Run ``argv`` to completion (on ``cpus`` if given); wall seconds and peak RSS.

    Peak RSS is the larger of the child's own maximum (wait4) and the largest sampled sum over the
    whole process tree, so local runner worker processes are counted with their parent.
    """
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return Measurement(name, None, None, lines, f"{argv[0]} not installed")
    if cpus is not None and shutil.which("taskset") is None:
        return Measurement(name, None, None, lines, "taskset not installed")
    started = time.perf_counter()
    process = subprocess.Popen(
        pinned(argv, cpus),
        stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    sampler = TreeSampler(process.pid)
    # Read the pipes in threads, so a chatty child never blocks on a full pipe while we wait.
    captured: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda s=stream, k=key: captured.__setitem__(k, s.read()), daemon=True)
        for key, stream in (("out", process.stdout), ("err", process.stderr))
        if stream is not None
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    tree_peak = sampler.stop()
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = captured.get("err", b"").decode(errors="replace")
    stdout = captured.get("out", b"").decode(errors="replace")
    if process.returncode != 0:
        return Measurement(name, None, None, lines, f"failed ({process.returncode}): {stderr.strip()[-200:]}", stdout)
    peak = max(usage.ru_maxrss * 1024, tree_peak)
    return Measurement(name, seconds, peak / 2**20, lines, stdout=stdout + stderr if keep_stdout else "")


def count_lines(path: str) -> int:
    count = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count


def print_table(rows: list[Measurement], baseline: str) -> None:
    """lines, seconds, lines/s, peak RSS, and the ratio against the baseline row's lines/s."""
    base = next((r for r in rows if r.name == baseline and r.lines_per_second), None)
    header = f"{'run':34} {'lines':>10} {'seconds':>8} {'lines/s':>10} {'peak MiB':>9} {'vs ' + baseline:>14}"
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.seconds is None:
            print(f"{r.name:34} {r.lines:>10} {'-':>8} {'-':>10} {'-':>9} {'-':>14}  {r.note}")
            continue
        ratio = f"{r.lines_per_second / base.lines_per_second:.2f}x" if base else "-"
        print(
            f"{r.name:34} {r.lines:>10} {r.seconds:>8.2f} {r.lines_per_second:>10,.0f} "
            f"{r.peak_rss_mib:>9.0f} {ratio:>14}  {r.note}"
        )


def batch_job_cost(log: str, config_text: str, cpu: int | None = None) -> tuple[float, float]:
    """``(wall s, CPU s)`` of one ``logwarden batch`` run over ``log`` with this config, start-up included; pinned
    to core ``cpu`` when given, so runs compared with each other ran on the same core."""
    with tempfile.TemporaryDirectory() as out:
        config = Path(out) / "config.yaml"
        config.write_text(config_text)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        command = [sys.executable, "-m", "pipelines.cli", "batch", "--input", log, "--output", f"{out}/run"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [*command, "-c", str(config)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
