"""``python -m bench stages [FILE] [--lines N]``: where ``logwarden batch``'s time and memory go, per stage.

Runs the batch job in this process on the local runner with one in-process worker and times
the functions each stage spends its time in (exclusive time: a timed call inside another is
counted once, for the inner stage):

- read: cutting ranges into chunks of whole lines (``parsers.splits.read_range``)
- parse: chunks to typed event batches, expiry, event-time stamps
- enrich: user agents, GeoIP, proxies (``parsers.enrich.enrich_batch``)
- detect: observe (every rule's conditions on a batch, hits split by shard and handed on)
  and fold (hits folded per key in event-time order)
- aggregate: traffic partials per batch and their merges
- archive: day split, encrypted Parquet writing, commits (events and dead letters)
- Beam overhead: the rest of ``pipeline.run`` (the runner, coders, buffers, bundle plumbing)
- startup: from the process start to ``pipeline.run`` (imports, config, keys, ledger plan, graph)
- after the job: the run's alerts archived and delivered, the report, the transaction completed

A second table lists each fused stage the runner executed with its wall time, the process RSS at
its end and its peak during it, and what the runner holds in memory for later stages when it
ends (data buffered for the next stages and user state), which is what grows with the input.

The numbers come from wrapping functions in this process: use them for shares, and
``python -m bench throughput`` for speed.  The bench prints; it never asserts.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.measure import PAGE_BYTES, count_lines


def process_started() -> float:
    """This process's start, as ``time.time()``, from ``/proc/self/stat`` (field 22, in clock ticks after boot)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[1]) * PAGE_BYTES


class Timers:
    """Exclusive seconds per stage of wrapped functions and generators (per thread call stacks)."""

    def __init__(self):
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        self._local = threading.local()

    def __reduce__(self):
        # Wrapped functions are pickled into the graph (in this process): they refer to the one instance.
        return _timers, ()

    def _stack(self) -> list[float]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _timed(self, stage: str, call):
        stack = self._stack()
        stack.append(0.0)
        started = time.perf_counter()
        try:
            return call()
        finally:
            elapsed = time.perf_counter() - started
            children = stack.pop()
            self.seconds[stage] += elapsed - children
            self.calls[stage] += 1
            if stack:
                stack[-1] += elapsed

    def function(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            return self._timed(stage, lambda: fn(*args, **kwargs))

        return timed

    def generator(self, stage: str, fn):
        """A generator function whose own work (between resumes and yields) is timed, not its consumers'."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            inner = self._timed(stage, lambda: fn(*args, **kwargs))
            while True:
                try:
                    item = self._timed(stage, lambda: next(inner))
                except StopIteration:
                    return
                yield item

        return timed


TIMERS = Timers()


def _timers() -> Timers:
    return TIMERS


#: (stage, module, attribute path, generator?): what is timed as each stage.
TIMED = [
    ("read", "pipelines.read", "read_range", True),
    ("parse", "pipelines.parse", "parse_chunk", False),
    ("parse", "pipelines.parse", "drop_expired", False),
    ("parse", "pipelines.parse", "with_event_time", False),
    ("enrich", "pipelines.enrich", "enrich_batch", False),
    ("detect: observe", "alerts.observe", "Observer.observe", False),
    ("detect: observe", "alerts.observe", "Hits.by_shard", False),
    ("detect: observe", "pipelines.detect", "hits_by_shard", False),
    ("detect: observe", "pipelines.detect", "_dumps", False),
    ("detect: observe", "pipelines.spill", "SpillWriter.append", False),
    ("detect: fold", "pipelines.detect", "fold_spilled", False),
    ("detect: fold", "alerts.engine", "Detector.add", False),
    ("detect: fold", "alerts.engine", "Detector.flush", False),
    ("aggregate", "pipelines.aggregate", "partials_from_batch", False),
    ("aggregate", "pipelines.reports.traffic", "TrafficPartial.merge", False),
    ("aggregate", "pipelines.reports.traffic", "TrafficPartial.compact_seconds", False),
    ("aggregate", "pipelines.aggregate", "write_run_aggregates", False),
    ("aggregate", "pipelines.aggregate", "store_rows", False),
    ("aggregate", "pipelines.aggregate", "write_run_rows", False),
    ("archive", "pipelines.archive", "split_by_day", False),
    ("archive", "retention.parquet_files", "ParquetFileWriter.__init__", False),
    ("archive", "retention.parquet_files", "ParquetFileWriter.write", False),
    ("archive", "retention.parquet_files", "ParquetFileWriter.close", False),
    ("archive", "retention.commit", "commit", False),
    ("after the job: alerts", "pipelines.batch", "archive_run_alerts", False),
    ("after the job: alerts", "pipelines.batch", "deliver_run_alerts", False),
    ("after the job: report", "pipelines.batch", "publish_run", False),
    ("after the job: report", "pipelines.reports.publish", "publish_run", False),  # imported when the job is done
    ("after the job: commit", "retention.commit", "complete_transaction", False),
]
IN_RUN = ("read", "parse", "enrich", "detect: observe", "detect: fold", "aggregate", "archive")


def install(timers: Timers) -> None:
    import importlib

    for stage, module_name, path, is_generator in TIMED:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # not in this version of the code
        owner_name, _, attribute = path.rpartition(".")
        owner = getattr(module, owner_name) if owner_name else module
        original = getattr(owner, attribute, None)
        if original is None:
            continue  # not in this version of the code
        wrap = timers.generator if is_generator else timers.function
        setattr(owner, attribute, wrap(stage, original))


class RunnerProbe:
    """Patches FnApiRunner's bundle execution: per fused stage, time, RSS and what stays buffered after it."""

    def __init__(self, trace: int = 0):
        self.trace = trace  # with tracemalloc: this many top allocation sites after each fused stage
        self.rows: list[dict] = []
        self.run_started = self.run_ended = None
        self._peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self.overall_peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = rss_bytes()
            self._peak = max(self._peak, rss)
            self.overall_peak = max(self.overall_peak, rss)
            self._stop.wait(0.02)

    def install(self) -> None:
        import apache_beam as beam
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        original = fn_runner.FnApiRunner._execute_bundle
        probe = self

        def execute_bundle(runner, context, bundle_manager, bundle_input):
            before = rss_bytes()
            probe._peak = before
            started = time.perf_counter()
            result = original(runner, context, bundle_manager, bundle_input)
            row = {
                "stage": bundle_manager.stage.name,
                "seconds": time.perf_counter() - started,
                "rss_before": before,
                "rss_after": rss_bytes(),
                "peak": max(probe._peak, rss_bytes()),
            }
            row.update(held_by_runner(context))
            import pyarrow as pa

            row["arrow"] = pa.total_allocated_bytes()
            if probe.trace:
                import tracemalloc

                snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
                row["python"] = sum(stat.size for stat in snapshot.statistics("filename"))
                row["top"] = snapshot.statistics("lineno")[: probe.trace]
            probe.rows.append(row)
            return result

        fn_runner.FnApiRunner._execute_bundle = execute_bundle
        run = beam.Pipeline.run

        def timed_run(pipeline, *args, **kwargs):
            probe.run_started = time.time()
            try:
                result = run(pipeline, *args, **kwargs)
                result.wait_until_finish()
                return result
            finally:
                probe.run_ended = time.time()

        beam.Pipeline.run = timed_run
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()


def held_by_runner(context) -> dict:
    """Bytes (or values) the runner holds for later stages: buffered inputs of stages to come and user state."""
    from apache_beam.runners.portability.fn_api_runner.execution import GroupingBuffer, ListBuffer

    buffered = grouped_values = 0
    seen: set[int] = set()

    def count(buffer) -> None:
        nonlocal buffered, grouped_values
        if id(buffer) in seen:
            return
        seen.add(id(buffer))
        if isinstance(buffer, ListBuffer) and not buffer.cleared:
            buffered += sum(len(b) for b in buffer._inputs)
        elif isinstance(buffer, GroupingBuffer):
            grouped_values += sum(len(v) for v in buffer._table.values())

    for buffer in list(context.pcoll_buffers.values()):
        count(buffer)
    queues = context.queues
    for queue in (queues.ready_inputs, queues.watermark_pending_inputs, queues.time_pending_inputs):
        for _, data_input in list(queue._q):
            for buffer in [*data_input.data.values(), *data_input.timers.values()]:
                count(buffer)
    state = context.worker_handler_manager.state_servicer._state
    state_bytes = sum(len(b) for values in list(getattr(state, "_underlying", state).values()) for b in values)
    return {"buffered": buffered, "grouped_values": grouped_values, "state": state_bytes}


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def report(timers: Timers, probe: RunnerProbe, started: float, ended: float, lines: int) -> None:
    total = ended - started
    run = (probe.run_ended or ended) - (probe.run_started or started)
    in_run = sum(timers.seconds[s] for s in IN_RUN)
    rows = [(stage, timers.seconds[stage]) for stage in IN_RUN]
    rows.append(("Beam overhead (rest of the run)", run - in_run))
    rows.append(("startup (process start to run)", (probe.run_started or started) - started))
    after = [s for s in timers.seconds if s.startswith("after the job")]
    measured_after = sum(timers.seconds[s] for s in after)
    rows += [(s, timers.seconds[s]) for s in sorted(after)]
    rows.append(("after the job: rest", max(0.0, (ended - (probe.run_ended or ended)) - measured_after)))
    print(
        f"{lines:,} lines, {total:.2f} s wall ({lines / total:,.0f} lines/s), peak RSS {_mib(probe.overall_peak)} MiB"
    )
    header = f"{'stage':34} {'seconds':>8} {'us/line':>8} {'share':>6}"
    print(header)
    print("-" * len(header))
    for stage, seconds in rows:
        print(f"{stage:34} {seconds:>8.2f} {seconds / lines * 1e6:>8.2f} {seconds / total:>6.1%}")
    print()
    header = (
        f"{'fused stage (runner order)':48} {'seconds':>8} {'RSS MiB':>8} {'peak':>6} {'buffered':>9} "
        f"{'grouped':>8} {'state':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in probe.rows:
        name = row["stage"] if len(row["stage"]) <= 48 else row["stage"][:22] + ".." + row["stage"][-24:]
        print(
            f"{name:48} {row['seconds']:>8.2f} {_mib(row['rss_after']):>8} {_mib(row['peak']):>6} "
            f"{_mib(row['buffered']):>9} {row['grouped_values']:>8} {_mib(row['state']):>6}"
        )
    print("(buffered, state: MiB the runner holds for later stages when the stage ends; grouped: values)")
    for row in probe.rows:
        print(f"{row['stage'][-60:]}: Arrow allocated {_mib(row['arrow'])} MiB", end="")
        if "python" in row:
            print(f", Python (tracemalloc) {_mib(row['python'])} MiB; top:")
            for stat in row["top"]:
                frame = stat.traceback[0]
                print(f"    {_mib(stat.size):>6} MiB {stat.count:>9} blocks  {frame.filename}:{frame.lineno}")
        else:
            print()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="a combined-format access log (default: generated, see --lines)")
    parser.add_argument("--lines", type=int, help="a generated log of this many lines")
    parser.add_argument("--config", help="logwarden config file")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "logwarden-bench"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--trace-memory",
        type=int,
        default=0,
        metavar="N",
        help="trace Python allocations (slow) and list the N largest sites after each fused stage",
    )
    args = parser.parse_args(argv)
    if args.trace_memory:
        import tracemalloc

        tracemalloc.start()
    if bool(args.file) == bool(args.lines):
        parser.error("give a FILE or --lines (not both)")
    from bench.throughput import bench_config, generated_log

    log = Path(args.file) if args.file else generated_log(Path(args.data_dir), args.lines, args.seed)
    lines = count_lines(str(log))
    started = process_started()
    timers, probe = TIMERS, RunnerProbe(args.trace_memory)
    from pipelines import dofn_specs
    from pipelines.lean_beam import import_beam

    import_beam()  # Beam as the command line imports and sets it up, before the timed modules import it whole
    dofn_specs.install()
    install(timers)
    probe.install()
    from pipelines.cli import main as cli

    with tempfile.TemporaryDirectory(prefix="logwarden-stages-") as tmp:
        config, _ = bench_config(Path(tmp), "stages", args.config)
        argv = ["batch", "-i", str(log), "-o", str(Path(tmp) / "out"), "-f", "combined", "-c", str(config)]
        status = cli([*argv, "--runner=FnApiRunner", "--direct_num_workers=1"])
        ended = time.time()
    probe.stop()
    print()
    report(timers, probe, started, ended, lines)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
