"""``python -m bench latency``: append-to-alert latency of ``logwarden stream`` at set line rates.

For each rate a writer appends combined-log lines to a followed file for
``--seconds``, with an attack line (caught by the ``http-sqli`` signature, one
per new address) every second.  The stream runs as its own process with the
full job: parse, enrich (the example GeoIP databases), detect, encrypted
archive, reports.  The table gives, per rate:

- p50/p95/p99/max of append -> alert line in the JSON-lines sink (the sink file
  is watched every 2 ms, so figures carry up to ~2 ms of watching error);
- archive lag: append of the newest line in a published file -> that file's
  manifest appearing (event times have whole-second resolution, so +-1 s), with
  cuts every ``--cut-seconds`` (the service default is 300 s);
- CPU of the stream process (100 % = one core), CPU per line, and peak RSS;

and a last row with the batch job's CPU per line over the same lines.  Timings
come from a shared machine: the load average at start and end is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.live_writer import ATTACK_RULE, LiveWriter

ROOT = Path(__file__).resolve().parent.parent
GEOIP = ROOT / "examples" / "geoip"
TICKS = os.sysconf("SC_CLK_TCK")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _config(work: Path, cut_seconds: float, sink: bool = True) -> Path:
    path = work / ("stream.yaml" if sink else "batch.yaml")
    path.write_text(
        f"keys: {{keyring: {work / 'keys' / 'keyring'}, root_key_file: {work / 'keys' / 'root.key'}}}\n"
        f"stream: {{state_key_file: {work / 'keys' / 'state.key'}, cut_seconds: {cut_seconds}, progress_seconds: 10}}\n"
        + (f"alerts: {{sinks: {{jsonl: {work / 'sink.jsonl'}}}}}\n" if sink else "")
        + f"enrich: {{geoip_databases: [{GEOIP / 'GeoLite2-City-Test.mmdb'}, {GEOIP / 'GeoLite2-ASN-Test.mmdb'}]}}\n"
    )
    return path


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class SinkWatcher(threading.Thread):
    """Notes when each alert line appears in the sink file."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[str, float] = {}  # source_ip of an attack alert -> time its line appeared
        self.halt = threading.Event()

    def run(self) -> None:
        offset, partial = 0, b""
        while not self.halt.is_set():
            with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
                now = time.time()
                offset += len(data)
                lines = (partial + data).split(b"\n")
                partial = lines.pop()
                for line in lines:
                    alert = json.loads(line)
                    if alert["rule_id"] == ATTACK_RULE:
                        self.seen.setdefault(alert["source_ip"], now)
            time.sleep(0.002)


class ManifestWatcher(threading.Thread):
    """Notes when each archive manifest appears and the newest event time it covers."""

    def __init__(self, out: Path):
        super().__init__(daemon=True)
        self.out = out
        self.lags: list[float] = []
        self._known: set[Path] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        from datetime import datetime

        while not self.halt.is_set():
            for manifest in (self.out / "events").glob("dt=*/_manifest-*.json"):
                if manifest not in self._known:
                    now = time.time()
                    self._known.add(manifest)
                    with contextlib.suppress(ValueError, OSError):
                        doc = json.loads(manifest.read_text())
                        newest = max(f["max_timestamp"] for f in doc["files"] if f["max_timestamp"])
                        self.lags.append(now - datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp())
            time.sleep(0.05)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _pinned(cpus: set[int] | None):
    """A ``preexec_fn`` that pins the child to ``cpus`` (``taskset``), or None."""
    return None if not cpus else (lambda: os.sched_setaffinity(0, cpus))


def measure(
    rate: int, seconds: float, cut_seconds: float, work: Path, memory_every: float = 0.0, cpus: set[int] | None = None
) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    log = work / "access.log"
    log.touch()
    config = _config(work, cut_seconds)
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "stream", "-i", str(log), "-o", str(work / "out"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stream.err", "wb"),  # noqa: SIM115 - the child owns it
        env=_env(),
        start_new_session=True,
        preexec_fn=_pinned(cpus),
    )
    time.sleep(8)  # start-up (imports, keyring, rules) before the clock starts
    sink, manifests = SinkWatcher(work / "sink.jsonl"), ManifestWatcher(work / "out")
    sink.start()
    manifests.start()
    writer = LiveWriter(log, rate, attack_every=1.0, seed=rate)
    cpu_before, started = _cpu_seconds(job.pid), time.monotonic()
    writer.start()
    memory: list[tuple[float, float]] = []
    while time.monotonic() - started < seconds:
        time.sleep(min(1.0, memory_every or 1.0))
        if memory_every and (not memory or time.monotonic() - started - memory[-1][0] >= memory_every):
            memory.append((time.monotonic() - started, _rss_mib(job.pid)))
    writer.stop()
    elapsed = time.monotonic() - started
    time.sleep(3)  # the last attacks' alerts
    cpu = _cpu_seconds(job.pid) - cpu_before
    peak = _peak_rss_mib(job.pid)
    job.send_signal(signal.SIGTERM)
    job.wait(120)
    time.sleep(0.5)
    sink.halt.set()
    manifests.halt.set()
    sink.join()
    manifests.join()
    latencies = [sink.seen[ip] - at for ip, at in writer.written.attacks.items() if ip in sink.seen]
    return {
        "rate": rate,
        "lines": writer.written.lines,
        "attacks": len(writer.written.attacks),
        "alerted": len(latencies),
        "p50_ms": _pct(latencies, 0.50) * 1000,
        "p95_ms": _pct(latencies, 0.95) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "archive_lag_p50_s": statistics.median(manifests.lags) if manifests.lags else float("nan"),
        "archive_lag_max_s": max(manifests.lags, default=float("nan")),
        "cpu_pct": 100 * cpu / elapsed,
        "cpu_us_per_line": 1e6 * cpu / max(writer.written.lines, 1),
        "peak_rss_mib": peak,
        "exit_code": job.returncode,
        "memory": memory,
        "log": str(log),
    }


def batch_cost(log: Path, work: Path, cpus: set[int] | None = None) -> dict:
    """CPU per line of ``logwarden batch`` over the same lines (its own process, same config)."""
    config = _config(work, 300, sink=False)
    job = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "batch", "-i", str(log), "-o", str(work / "batch"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        preexec_fn=_pinned(cpus),
    )
    _, status, usage = os.wait4(job.pid, 0)
    with open(log, "rb") as fh:
        lines = sum(1 for _ in fh)
    return {"lines": lines, "cpu_us_per_line": 1e6 * (usage.ru_utime + usage.ru_stime) / lines,
            "peak_rss_mib": usage.ru_maxrss / 1024, "exit_code": os.waitstatus_to_exitcode(status)}  # fmt: skip


def table(rows: list[dict], batch: dict | None) -> str:
    out = [
        "| lines/s | lines | alerts/attacks | p50 ms | p95 ms | p99 ms | max ms | archive lag p50 / max s |"
        " CPU % | CPU µs/line | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['rate']:,} | {r['lines']:,} | {r['alerted']}/{r['attacks']} | {r['p50_ms']:.0f}"
            f" | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f}"
            f" | {r['archive_lag_p50_s']:.1f} / {r['archive_lag_max_s']:.1f} |"
            f" {r['cpu_pct']:.0f} | {r['cpu_us_per_line']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    if batch:
        out.append(
            f"| batch replay | {batch['lines']:,} | | | | | | | | {batch['cpu_us_per_line']:.0f} |"
            f" {batch['peak_rss_mib']:.0f} |"
        )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--cut-seconds", type=float, default=10)
    parser.add_argument("--memory-every", type=float, default=0.0, help="sample the stream's RSS every N s")
    parser.add_argument("--no-batch", action="store_true")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--stream-cpus", type=int, nargs="+", help="pin the stream (and batch) job to these CPUs")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="logwarden-latency-"))
    cpus = set(args.stream_cpus) if args.stream_cpus else None
    print(f"load average before: {os.getloadavg()}  ({os.cpu_count()} cores, shared machine)", file=sys.stderr)
    if cpus:
        print(f"stream and batch jobs pinned to CPU(s) {sorted(cpus)}", file=sys.stderr)
    rows = [
        measure(rate, args.seconds, args.cut_seconds, work / f"rate-{rate}", args.memory_every, cpus)
        for rate in args.rates
    ]
    last = rows[-1]
    batch = None if args.no_batch else batch_cost(Path(last["log"]), work / f"rate-{last['rate']}", cpus)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    print(table(rows, batch))
    for r in rows:
        if r["memory"]:
            print(f"RSS MiB at {r['rate']} lines/s: " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in r["memory"]))
    return 0
