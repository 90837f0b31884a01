"""What service-health rules cost: ``python -m bench health [LOG] [--rounds N] [--no-pipeline]``.

Detection alone (observe + fold in one process, CPU seconds) for the security rules, the health rules and
both, on the bench log as it is (combined format: no request time, so the percentile rules see nothing) and
with a response time added to every event (so the p95 rules sketch every request); then whole
``logwarden batch`` runs with alerts off, with the security rules only and with every rule, alternated,
compared on CPU time (the issue 13 goal: all detection at most 25 % over a run without rules).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from alerts.engine import Detector
from alerts.observe import Observer
from alerts.rules import RuleSet, load_rules
from bench.measure import batch_job_cost
from parsers.files import parse_file
from pipelines.read import open_raw

DEFAULT_LOG = "/tmp/bench-1m.log"


def rule_sets() -> dict[str, RuleSet]:
    rules = load_rules()
    return {
        "security": RuleSet(tuple(r for r in rules.rules if not r.is_health)),
        "health": RuleSet(tuple(r for r in rules.rules if r.is_health)),
        "all": rules,
    }


def with_durations(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """Every event given a response time (log-normal around 40 ms), as if the log had ``%D``."""
    rng = np.random.default_rng(7)
    out = []
    for b in batches:
        took = pa.array(rng.lognormal(np.log(40_000), 0.6, b.num_rows).astype(np.int64))
        out.append(b.set_column(b.schema.get_field_index("event_duration_us"), "event_duration_us", took))
    return out


def detection_cpu(rules: RuleSet, batches: list[pa.RecordBatch], repeat: int = 2) -> tuple[float, int]:
    """Best of ``repeat`` runs (the first also pays for compiling patterns): CPU seconds and alerts raised."""
    best = float("inf")
    for _ in range(repeat):
        observer, detector = Observer(rules, "access"), Detector(rules)
        started = time.process_time()
        for b in batches:
            detector.add(observer.observe(b))
        alerts = detector.flush(None)
        best = min(best, time.process_time() - started)
    return best, len(alerts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench health", description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", default=DEFAULT_LOG, help=f"access log (default {DEFAULT_LOG})")
    parser.add_argument("--rounds", type=int, default=1, help="batch runs per mode, alternated (default 1)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the logwarden batch runs")
    args = parser.parse_args(argv)
    if not Path(args.log).exists():
        print(f"no {args.log}; make one with: python -m bench generate {args.log} --lines 1000000")
        return 2
    started = time.process_time()
    batches = [r.events for r in parse_file(open_raw, args.log, "auto") if r.kind == "access" and r.events.num_rows]
    parse_s = time.process_time() - started
    lines = sum(b.num_rows for b in batches)
    sets = rule_sets()
    print(f"== detection alone, one process, CPU s ({lines:,} lines of {args.log}; parsing them took {parse_s:.2f} s)")
    print(f"{'rules':10} {'n':>4} {'as logged':>10} {'alerts':>7} {'with %D':>10} {'alerts':>7} {'lines/s (%D)':>13}")
    timed = with_durations(batches)
    for name, rules in sets.items():
        plain, plain_alerts = detection_cpu(rules, batches)
        slow, slow_alerts = detection_cpu(rules, timed)
        print(f"{name:10} {len(rules.rules):4d} {plain:10.2f} {plain_alerts:7d} {slow:10.2f} {slow_alerts:7d} "
              f"{lines / slow:13,.0f}")  # fmt: skip
    if args.no_pipeline:
        return 0
    health_ids = [r.id for r in sets["health"].rules]
    modes = {
        "alerts off": "alerts:\n  enabled: false\n",
        "security only": "alerts:\n  disable: [" + ", ".join(health_ids) + "]\n",
        "all rules": "",
    }
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode, text in modes.items():
            runs[mode].append(batch_job_cost(args.log, text))
    print(f"\n== logwarden batch over {args.log} (FnApiRunner, whole job; best of {args.rounds} alternated runs)")
    print(f"{'':14} {'wall s':>7} {'CPU s':>7} {'CPU over alerts off':>20}")
    off_cpu = min(c for _, c in runs["alerts off"])
    for mode, measured in runs.items():
        wall, cpu = min(w for w, _ in measured), min(c for _, c in measured)
        print(f"{mode:14} {wall:7.2f} {cpu:7.2f} {(cpu - off_cpu) / off_cpu:+20.0%}")
    return 0
