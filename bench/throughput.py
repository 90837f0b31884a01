"""``python -m bench throughput [FILE] [--lines N ...] [--cores 1 2]``: the whole ``logwarden batch`` job
against GoAccess, both pinned to the same cores, in one invocation.

For each input (FILE, or a generated log per ``--lines``) and each core count, GoAccess and
``logwarden batch`` run one after the other as child processes pinned with ``taskset`` to the
first N cores; logwarden on N > 1 cores runs N local workers
(``--direct_num_workers=N --direct_running_mode=multi_processing``).  The table gives lines/s,
the ratio to GoAccess in the same cell, logwarden's speed-up over its own one-core run, and the
peak RSS of each whole process tree (workers included).  Every run's alerts go to a JSON-lines
sink; their canonical form (sorted, without the wall-clock ``detected_at``) is hashed so runs can
be compared (``--save-alerts`` / ``--reference-alerts`` compare against another branch's runs).

Numbers from a shared machine vary: compare ratios from the same invocation and say what the load
was (it is printed before and after).  The bench prints; it never asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

from bench.measure import Measurement, count_lines, run_measured

#: This checkout: logwarden runs from here (and so do its local workers), whatever is installed.
REPO = Path(__file__).resolve().parents[1]
GOACCESS = "goaccess (COMBINED, json report)"
WRITTEN = re.compile(r"files written\s+(\d+) \((\d+) events, (\d+) dead letters")
ALERTS = re.compile(r"^\s+alerts\s+(\d+)", re.M)


@dataclasses.dataclass
class Cell:
    lines: int
    cores: int
    goaccess: Measurement
    logwarden: Measurement
    rows_written: int | None = None
    dead_letters: int | None = None
    alerts: int | None = None
    alerts_sha: str | None = None


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def generated_log(data_dir: Path, lines: int, seed: int) -> Path:
    """The bench log of ``lines`` lines (``python -m bench generate``), made once and kept in ``data_dir``."""
    from bench.generate import generate

    path = data_dir / f"combined-{lines}-seed{seed}.log"
    if not path.exists() or count_lines(str(path)) != lines:
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        partial = path.with_suffix(".log.partial")
        generate(partial, lines=lines, attack_ratio=0.02, days=2, seed=seed)
        partial.rename(path)
    return path


def canonical_alerts(jsonl: Path) -> bytes:
    """A run's alerts as sorted JSON lines without the wall-clock ``detected_at``: equal bytes, equal alerts."""
    alerts = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    for alert in alerts:
        alert.pop("detected_at", None)
    alerts.sort(key=lambda a: (a["first_seen"], a["rule_id"], a["group_key"], a["alert_id"]))
    return "".join(json.dumps(a, sort_keys=True) + "\n" for a in alerts).encode()


def _merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def bench_config(tmp: Path, name: str, user_config: str | None) -> tuple[Path, Path]:
    """A config for one run: the user's (if any), keys in ``tmp``, alerts to a JSON-lines file of its own."""
    base = (yaml.safe_load(Path(user_config).read_text()) or {}) if user_config else {}
    sink = tmp / f"alerts-{name}.jsonl"
    ours: dict = {"alerts": {"sinks": {"jsonl": str(sink)}}}
    if "keys" not in base:  # never the user's own keyring by accident
        ours["keys"] = {"keyring": str(tmp / "keyring"), "root_key_file": str(tmp / "root.key")}
    path = tmp / f"config-{name}.yaml"
    path.write_text(yaml.safe_dump(_merged(base, ours)))
    return path, sink


def logwarden_argv(log: Path, output: Path, config: Path, workers: int) -> list[str]:
    argv = [sys.executable, "-m", "pipelines.cli", "batch", "-i", str(log), "-o", str(output), "-f", "combined"]
    argv += ["-c", str(config)]
    argv.append(f"--direct_num_workers={workers}")  # one worker on one core, whatever the default
    if workers != 1:
        argv.append("--direct_running_mode=multi_processing")
    return argv


def run_cell(log: Path, lines: int, cores: int, tmp: Path, args) -> Cell:
    cpus = ",".join(str(c) for c in range(cores)) if not args.no_pin else None
    name = f"{lines}-{cores}"
    goaccess = run_measured(
        GOACCESS,
        ["goaccess", str(log), "--log-format=COMBINED", "-o", str(tmp / f"report-{name}.json")],
        lines,
        cpus=cpus,
    )
    config, sink = bench_config(tmp, name, args.config)
    ours = run_measured(
        f"logwarden batch ({cores} core)",
        logwarden_argv(log, tmp / f"out-{name}", config, cores),
        lines,
        cpus=cpus,
        keep_stdout=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
    )
    cell = Cell(lines, cores, goaccess, ours)
    if (written := WRITTEN.search(ours.stdout)) is not None:
        cell.rows_written, cell.dead_letters = int(written.group(2)), int(written.group(3))
    if (count := ALERTS.search(ours.stdout)) is not None:
        cell.alerts = int(count.group(1))
    if ours.seconds is not None:
        canonical = canonical_alerts(sink)
        cell.alerts_sha = hashlib.sha256(canonical).hexdigest()[:12]
        if args.save_alerts:
            Path(args.save_alerts).mkdir(parents=True, exist_ok=True)
            (Path(args.save_alerts) / f"alerts-{lines}.jsonl").write_bytes(canonical)
    return cell


def print_cells(cells: list[Cell]) -> None:
    header = (
        f"{'lines':>9} {'cores':>5} {'goaccess l/s':>12} {'MiB':>5} {'logwarden l/s':>13} {'MiB':>6} "
        f"{'ratio':>6} {'vs 1 core':>9} {'rows':>9} {'dead':>5} {'alerts':>6}  alerts sha256"
    )
    print(header)
    print("-" * len(header))
    one_core = {c.lines: c.logwarden.lines_per_second for c in cells if c.cores == 1}
    for c in cells:
        g, lw = c.goaccess, c.logwarden

        def rate(m: Measurement) -> str:
            return f"{m.lines_per_second:,.0f}" if m.lines_per_second else "-"

        def mib(m: Measurement) -> str:
            return f"{m.peak_rss_mib:.0f}" if m.peak_rss_mib else "-"

        ratio = f"{lw.lines_per_second / g.lines_per_second:.2f}x" if lw.seconds and g.seconds else "-"
        base = one_core.get(c.lines)
        scale = f"{lw.lines_per_second / base:.2f}x" if lw.seconds and base and c.cores != 1 else "-"
        print(
            f"{c.lines:>9} {c.cores:>5} {rate(g):>12} {mib(g):>5} {rate(lw):>13} {mib(lw):>6} {ratio:>6} {scale:>9} "
            f"{c.rows_written if c.rows_written is not None else '-':>9} "
            f"{c.dead_letters if c.dead_letters is not None else '-':>5} "
            f"{c.alerts if c.alerts is not None else '-':>6}  {c.alerts_sha or '-'}"
        )
        for m in (g, lw):
            if m.note:
                print(f"    {m.name}: {m.note}")


def compare_alerts(cells: list[Cell], reference: str | None) -> int:
    """Runs of the same input must raise the same alerts, and match the reference's when one is given."""
    problems = 0
    by_lines: dict[int, set[str]] = {}
    for c in cells:
        if c.alerts_sha:
            by_lines.setdefault(c.lines, set()).add(c.alerts_sha)
    for lines, shas in sorted(by_lines.items()):
        if len(shas) > 1:
            problems += 1
            print(f"ALERTS DIFFER between core counts at {lines} lines: {sorted(shas)}")
    if reference:
        for lines, shas in sorted(by_lines.items()):
            ref = Path(reference) / f"alerts-{lines}.jsonl"
            if not ref.exists():
                print(f"no reference alerts for {lines} lines in {reference}")
                continue
            want = hashlib.sha256(ref.read_bytes()).hexdigest()[:12]
            same = shas == {want}
            problems += not same
            print(f"alerts at {lines} lines {'identical to' if same else 'DIFFER from'} {ref} ({want})")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="a combined-format access log (default: generated, see --lines)")
    parser.add_argument("--lines", type=int, nargs="*", default=[], help="generated logs of these many lines")
    parser.add_argument("--cores", type=int, nargs="*", default=[1], help="core counts to pin both to (taskset)")
    parser.add_argument("--workers", type=int, nargs="*", help=argparse.SUPPRESS)  # older spelling of --cores
    parser.add_argument("--config", help="logwarden config file (its keys are kept; alerts also go to a file)")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "logwarden-bench"))
    parser.add_argument("--seed", type=int, default=1, help="generator seed for --lines")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--save-alerts", help="write each input's canonical alerts here (alerts-<lines>.jsonl)")
    parser.add_argument("--reference-alerts", help="compare with canonical alerts saved by --save-alerts")
    args = parser.parse_args(argv)
    cores = args.workers or args.cores
    if bool(args.file) == bool(args.lines):
        parser.error("give a FILE or --lines (not both)")
    too_many = [c for c in cores if c > (os.cpu_count() or 1)]
    if too_many and not args.no_pin:
        parser.error(f"--cores {too_many}: this machine has {os.cpu_count()} cores")
    inputs = (
        [(Path(args.file), count_lines(args.file))]
        if args.file
        else [(generated_log(Path(args.data_dir), n, args.seed), n) for n in args.lines]
    )
    print(f"load average before: {load_average()}")
    cells = []
    with tempfile.TemporaryDirectory(prefix="logwarden-bench-") as tmp:
        for log, lines in inputs:
            for n in cores:
                cells.append(run_cell(log, lines, n, Path(tmp), args))
                c = cells[-1]  # as it comes: a long invocation shows its progress
                print(
                    f"  {lines} lines, {n} core(s): goaccess {c.goaccess.seconds or 0:.1f} s, "
                    f"logwarden {c.logwarden.seconds or 0:.1f} s, {c.logwarden.peak_rss_mib or 0:.0f} MiB "
                    f"(load {load_average()})",
                    flush=True,
                )
    print(f"load average after:  {load_average()}")
    print_cells(cells)
    return 1 if compare_alerts(cells, args.reference_alerts) else 0
