"""Running a command in a child process and measuring its wall time and peak memory."""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


@dataclasses.dataclass
class Measurement:
    name: str
    seconds: float | None
    peak_rss_mib: float | None
    lines: int
    note: str = ""

    @property
    def lines_per_second(self) -> float | None:
        return self.lines / self.seconds if self.seconds else None


def run_measured(name: str, argv: list[str], lines: int, env: dict | None = None) -> Measurement:
    """Run ``argv`` to completion; wall seconds and the child's peak RSS (from wait4)."""
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return Measurement(name, None, None, lines, f"{argv[0]} not installed")
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        return Measurement(name, None, None, lines, f"failed ({process.returncode}): {stderr.strip()[-200:]}")
    return Measurement(name, seconds, usage.ru_maxrss / 1024, lines)


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


def batch_job_cost(log: str, config_text: str) -> tuple[float, float]:
    """``(wall s, CPU s)`` of one ``logwarden batch`` run over ``log`` with this config, start-up included."""
    with tempfile.TemporaryDirectory() as out:
        config = Path(out) / "config.yaml"
        config.write_text(config_text)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        command = [sys.executable, "-m", "pipelines.cli", "batch", "--input", log, "--output", f"{out}/run"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [*command, "-c", str(config)], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
