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
was (it is printed before and after).  On a virtual machine whose cores run at a speed that drifts from
minute to minute (the same pure-Python loop took 3.5-6.0 s here within half an hour), ``--repeat N`` runs
the whole set of cells N times over, one round after the other, and gives each figure's median over the
rounds with its lowest and highest: the ratios are taken within a round (GoAccess and logwarden, one core
and N cores, back to back), then their median.  The bench prints; it never asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import statistics
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


def run_cell(log: Path, lines: int, cores: int, tmp: Path, args, round_number: int = 1) -> Cell:
    """GoAccess then ``logwarden batch`` on ``log``, pinned to ``cores`` cores; each round writes afresh (a rerun
    into the same output would find the log already archived)."""
    cpus = ",".join(str(c) for c in range(cores)) if not args.no_pin else None
    name = f"{lines}-{cores}-{round_number}"
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
    shutil.rmtree(tmp / f"out-{name}", ignore_errors=True)  # the disk stays as it was, round after round
    return cell


def _spread(values: list[float], fmt: str) -> str:
    """`` (low-high)`` of a figure over several rounds; nothing for one round."""
    return f" ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else ""


def _median_rate(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f}" if values else "-"


def _peak_mib(measurements: list[Measurement]) -> str:
    peaks = [m.peak_rss_mib for m in measurements if m.peak_rss_mib]
    return f"{max(peaks):.0f}" if peaks else "-"


def print_cells(rounds: list[list[Cell]]) -> None:
    """One row per input and core count: each figure's median over the rounds (lowest-highest after it)."""
    repeated = len(rounds) > 1
    header = (
        f"{'lines':>9} {'cores':>5} {'goaccess l/s':>12} {'MiB':>5} {'logwarden l/s':>13} {'MiB':>6} "
        f"{'ratio':>6} {'vs 1 core':>9} {'rows':>9} {'dead':>5} {'alerts':>6}  alerts sha256"
    )
    if repeated:
        print(f"medians of {len(rounds)} rounds; ratios taken within each round, (lowest-highest) after them")
    print(header)
    print("-" * len(header))
    one_core = [{c.lines: c.logwarden.lines_per_second for c in cells if c.cores == 1} for cells in rounds]
    for index, first in enumerate(rounds[0]):
        runs = [cells[index] for cells in rounds]
        g_rates = [c.goaccess.lines_per_second for c in runs if c.goaccess.seconds]
        lw_rates = [c.logwarden.lines_per_second for c in runs if c.logwarden.seconds]
        ratios = [
            c.logwarden.lines_per_second / c.goaccess.lines_per_second
            for c in runs
            if c.logwarden.seconds and c.goaccess.seconds
        ]
        scales = [
            c.logwarden.lines_per_second / base
            for c, base in zip(runs, (same_round.get(first.lines) for same_round in one_core))
            if c.logwarden.seconds and base and c.cores != 1
        ]

        ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
        scale = f"{statistics.median(scales):.2f}x" if scales else "-"
        shas = sorted({c.alerts_sha for c in runs if c.alerts_sha})
        print(
            f"{first.lines:>9} {first.cores:>5} {_median_rate(g_rates):>12} {_peak_mib([c.goaccess for c in runs]):>5} "
            f"{_median_rate(lw_rates):>13} {_peak_mib([c.logwarden for c in runs]):>6} {ratio:>6} {scale:>9} "
            f"{first.rows_written if first.rows_written is not None else '-':>9} "
            f"{first.dead_letters if first.dead_letters is not None else '-':>5} "
            f"{first.alerts if first.alerts is not None else '-':>6}  {','.join(shas) or '-'}"
        )
        if repeated:
            print(
                f"{'':>15} spread: goaccess{_spread(g_rates, '{:,.0f}')}, logwarden{_spread(lw_rates, '{:,.0f}')},"
                f" ratio{_spread(ratios, '{:.2f}')}" + (f", vs 1 core{_spread(scales, '{:.2f}')}" if scales else "")
            )
        for c in runs:
            for m in (c.goaccess, c.logwarden):
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
    parser.add_argument("--repeat", type=int, default=1, help="run every cell this many times over (medians)")
    args = parser.parse_args(argv)
    cores = args.workers or args.cores
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: give at least 1")
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
    rounds: list[list[Cell]] = []
    with tempfile.TemporaryDirectory(prefix="logwarden-bench-") as tmp:
        for round_number in range(1, args.repeat + 1):
            cells: list[Cell] = []
            for log, lines in inputs:
                for n in cores:
                    cells.append(run_cell(log, lines, n, Path(tmp), args, round_number))
                    c = cells[-1]  # as it comes: a long invocation shows its progress
                    print(
                        f"  {f'round {round_number}: ' if args.repeat > 1 else ''}{lines} lines, {n} core(s): "
                        f"goaccess {c.goaccess.seconds or 0:.1f} s, logwarden {c.logwarden.seconds or 0:.1f} s, "
                        f"{c.logwarden.peak_rss_mib or 0:.0f} MiB (load {load_average()})",
                        flush=True,
                    )
            rounds.append(cells)
    print(f"load average after:  {load_average()}")
    print_cells(rounds)
    return 1 if compare_alerts([c for cells in rounds for c in cells], args.reference_alerts) else 0
