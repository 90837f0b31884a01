"""Detection quality per rule and its cost: ``python -m bench detection [LOG] [--corpora DIR] [--no-pipeline]``.

Quality, on the labelled bench log (``LOG.labels.jsonl``: per attack line its kind and source IP):
  TP  alerts on an attacking IP,
  FP  alerts on an IP that never attacked (benign traffic),
  miss attacking IPs of the kind the rule is for that it never alerted on;
and on the corpora: CrowdSec hub web tests (expected IPs alerted) and fail2ban web filters (hosts alerted).
Cost: detection alone (observe + fold, one process) against parsing alone, and what detection
adds to a whole ``logwarden batch`` run: runs with alerts off and on, alternated, compared on CPU time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from alerts.engine import Detector
from alerts.observe import Observer
from alerts.replay import detect_files
from alerts.rules import load_rules
from bench.measure import batch_job_cost
from parsers.files import parse_file
from pipelines.read import open_raw

#: Which rule is meant to catch each attack kind of the bench generator.
RULE_FOR_KIND = {
    "sqli": "http-sqli",
    "xss": "http-xss",
    "traversal": "http-path-traversal",
    "cmd_injection": "http-command-injection",
    "log4shell": "http-log4shell",
    "sensitive_file": "http-sensitive-file",
    "scanner_ua": "http-scanner-user-agent",
    "scan_404": "http-probing",
    "brute_force": "http-login-bruteforce",
    "flood": "http-request-flood",
}
DEFAULT_LOG = "/tmp/bench-1m.log"


def labelled_quality(rules, log: str) -> tuple[list[tuple], dict]:
    with open(f"{log}.labels.jsonl", encoding="utf-8") as handle:
        labels = [json.loads(line) for line in handle]
    attackers = collections.defaultdict(set)  # kind -> IPs
    for label in labels:
        if label.get("attack"):
            attackers[label["attack"]].add(label["source_ip"])
    any_attacker = set().union(*attackers.values()) if attackers else set()
    timing = {}
    batches = []
    started = time.perf_counter()
    for result in parse_file(open_raw, log, "auto"):
        batches.append(result.events)
    timing["parse_s"] = time.perf_counter() - started
    observer, detector = Observer(rules, "access"), Detector(rules)
    started = time.perf_counter()
    for b in batches:
        detector.add(observer.observe(b))
    timing["observe_s"] = time.perf_counter() - started
    started = time.perf_counter()
    alerts = detector.flush(None)
    timing["fold_s"] = time.perf_counter() - started
    timing["lines"] = sum(b.num_rows for b in batches)
    by_rule = collections.defaultdict(list)
    for alert in alerts:
        by_rule[alert["rule_id"]].append(alert)
    rows = []
    for rule in rules.for_dataset("access"):
        fired = by_rule.get(rule.id, [])
        tp = sum(1 for a in fired if a["source_ip"] in any_attacker or a["source_ip"] is None)
        kinds = [k for k, r in RULE_FOR_KIND.items() if r == rule.id]
        targets = set().union(*(attackers[k] for k in kinds)) if kinds else set()
        caught = {a["source_ip"] for a in fired}
        rows.append((rule.id, tp, len(fired) - tp, len(targets - caught) if kinds else "-", len(targets) or "-"))
    return rows, timing


def crowdsec_quality(rules, corpora: Path) -> collections.Counter:
    """Per rule: how many expected (test, IP) pairs of the hub's web tests it alerted on; plus totals."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.alerts.conftest import alert_ips, strip_syslog
    from tests.alerts.test_corpus_crowdsec import HUB_TESTS, SKIPPED, expected_ips

    counts = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for test_dir in sorted((corpora / HUB_TESTS).iterdir()):
            expected = expected_ips(test_dir)
            if test_dir.name in SKIPPED or not expected:
                continue
            config = yaml.safe_load((test_dir / "config.yaml").read_text())
            log = strip_syslog(test_dir / config["log_file"], Path(tmp) / config["log_file"])
            reports = []
            alerts = detect_files(rules, [str(log)], open_raw, "auto", reports)
            if not sum(r.parsed for r in reports):
                counts["(format not parsed yet)"] += len(expected)
                continue
            for ip in expected:
                norm = alert_ips([{"source_ip": ip}]).pop()
                hit = [a["rule_id"] for a in alerts if a.get("source_ip") and alert_ips([a]) == {norm}]
                counts[hit[0] if hit else "(missed)"] += 1
    return counts


def fail2ban_quality(rules, corpora: Path) -> list[tuple]:
    from tests.alerts.conftest import alert_ips, same_ip
    from tests.alerts.test_corpus_fail2ban import ACCESS_LOGS, ERROR_LOGS, LOGS, MAXRETRY, samples

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(ACCESS_LOGS | set(ERROR_LOGS)):
            fmt = "auto" if name in ACCESS_LOGS else ERROR_LOGS[name]
            by_host = collections.defaultdict(list)
            for expectation, line in samples(corpora / LOGS / name):
                if expectation.get("match") and expectation.get("host"):
                    by_host[expectation["host"]].append(line)
            caught, rules_used, parsed_hosts = 0, collections.Counter(), 0
            for i, (host, lines) in enumerate(sorted(by_host.items())):
                log = Path(tmp) / f"{name}-{i}.log"
                log.write_bytes(b"".join(line + b"\n" for line in lines for _ in range(MAXRETRY.get(name, 5))))
                reports = []
                alerts = detect_files(rules, [str(log)], open_raw, fmt, reports)
                if not sum(r.parsed for r in reports):
                    continue
                parsed_hosts += 1
                hits = [a["rule_id"] for a in alerts if any(same_ip(ip, host) for ip in alert_ips([a]))]
                caught += bool(hits)
                rules_used.update(set(hits))
            rows.append((name, caught, parsed_hosts, ", ".join(sorted(rules_used))))
    return rows


def batch_run_cost(log: str, alerts_enabled: bool, cpu: int | None = None) -> tuple[float, float]:
    """``(wall s, CPU s)`` of one ``logwarden batch`` run over ``log``: the whole job, start-up included."""
    return batch_job_cost(log, f"alerts:\n  enabled: {'true' if alerts_enabled else 'false'}\n", cpu)


def detection_overhead(log: str, rounds: int, cpu: int | None = None) -> dict[bool, list[tuple[float, float]]]:
    """Batch runs with alerts off and on, alternated so a busy machine slows both alike, all on core ``cpu``."""
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for enabled in (False, True):
            runs[enabled].append(batch_run_cost(log, enabled, cpu))
        loads.append(os.getloadavg()[0])
    where = f"every run on core {cpu}" if cpu is not None else "runs not pinned"
    print(f"\n(1-minute load average during the runs: {', '.join(f'{x:.1f}' for x in loads)}; "
          f"{os.cpu_count()} cores; {where})")  # fmt: skip
    return runs


def print_overhead(runs: dict[bool, list[tuple[float, float]]]) -> None:
    """Best of the rounds per mode (the least disturbed run); CPU time (user + sys) is the figure that counts."""
    best = {enabled: (min(w for w, _ in r), min(c for _, c in r)) for enabled, r in runs.items()}
    (off_wall, off_cpu), (on_wall, on_cpu) = best[False], best[True]
    print(f"\n== logwarden batch (FnApiRunner, whole job incl. start-up; best of {len(runs[True])} alternated runs)")
    print(f"{'':10} {'wall s':>7} {'CPU s':>7}")
    print(f"alerts off {off_wall:7.2f} {off_cpu:7.2f}")
    print(f"alerts on  {on_wall:7.2f} {on_cpu:7.2f}")
    cpu_share, wall_share = (on_cpu - off_cpu) / off_cpu, (on_wall - off_wall) / off_wall
    print(f"detection adds {cpu_share:.0%} to batch time (CPU; wall {wall_share:+.0%})")
    pairs = [(on[1] - off[1]) / off[1] for off, on in zip(runs[False], runs[True])]
    print("per alternated pair (CPU): " + ", ".join(f"{x:+.0%}" for x in pairs))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench detection", description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", default=DEFAULT_LOG, help=f"labelled log (default {DEFAULT_LOG})")
    parser.add_argument("--corpora", default=str(Path(__file__).resolve().parent.parent.parent / "shared/corpora"))
    parser.add_argument("--no-pipeline", action="store_true", help="skip the logwarden batch runs")
    parser.add_argument("--rounds", type=int, default=2, help="batch runs per mode, alternated (default 2)")
    parser.add_argument(
        "--cpu",
        type=int,
        default=min(os.sched_getaffinity(0)),
        help="core every batch run is pinned to, -1 for none (default: the first one allowed)",
    )
    args = parser.parse_args(argv)
    rules = load_rules()
    if not Path(f"{args.log}.labels.jsonl").exists():
        print(f"no labels beside {args.log}; make one with: python -m bench generate {args.log} --lines 1000000")
        return 2

    rows, timing = labelled_quality(rules, args.log)
    print(f"== labelled bench log {args.log} ({timing['lines']:,} lines)")
    print(f"{'rule':26} {'TP':>5} {'FP':>5} {'miss':>5} {'of':>5}")
    for rule_id, tp, fp, miss, of in rows:
        print(f"{rule_id:26} {tp:>5} {fp:>5} {miss!s:>5} {of!s:>5}")

    corpora = Path(args.corpora)
    if corpora.is_dir():
        print("\n== CrowdSec hub web tests: expected (test, IP) pairs, by the rule that alerted")
        for rule_id, n in crowdsec_quality(rules, corpora).most_common():
            print(f"{rule_id:26} {n:>5}")
        print("\n== fail2ban web filters: hosts alerted / hosts whose lines parse (each line x the jail's maxretry)")
        for name, caught, total, used in fail2ban_quality(rules, corpora):
            print(f"{name:20} {caught!s:>4} / {total!s:<4} {used}")
        fp_alerts = detect_files(rules, [str(corpora / "elastic-examples/apache_logs/apache_logs")], open_raw)
        print(f"\n== elastic apache_logs (10,000 real lines): {len(fp_alerts)} alerts, each justified in "
              "tests/alerts/test_corpus_false_positives.py")  # fmt: skip

    detect_s = timing["observe_s"] + timing["fold_s"]
    print("\n== cost (one process, no Beam)")
    print(f"parse      {timing['parse_s']:6.2f} s  {timing['lines'] / timing['parse_s']:>10,.0f} lines/s")
    print(f"observe    {timing['observe_s']:6.2f} s")
    print(f"fold       {timing['fold_s']:6.2f} s")
    print(f"detection  {detect_s:6.2f} s  = {detect_s / timing['parse_s']:.0%} of parse time")
    if not args.no_pipeline:
        print_overhead(detection_overhead(args.log, args.rounds, args.cpu if args.cpu >= 0 else None))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0
