"""``python -m bench throughput FILE``: the whole ``logwarden batch`` job against GoAccess on one file.

Both run in this invocation on the same file as child processes; the table shows
lines/s, peak RSS and logwarden's speed relative to GoAccess.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.measure import count_lines, print_table, run_measured

GOACCESS = "goaccess (COMBINED, json report)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a combined-format access log (python -m bench generate makes one)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1], help="local runner worker counts to try")
    parser.add_argument("--config", help="logwarden config file")
    args = parser.parse_args(argv)
    lines = count_lines(args.file)
    rows = []
    with tempfile.TemporaryDirectory(prefix="logwarden-bench-") as tmp:
        rows.append(
            run_measured(
                "goaccess (COMBINED, json report)",
                ["goaccess", args.file, "--log-format=COMBINED", "-o", str(Path(tmp) / "report.json")],
                lines,
            )
        )
        for workers in args.workers:
            output = str(Path(tmp) / f"out-{workers}")
            argv_batch = [
                sys.executable,
                "-m",
                "pipelines.cli",
                "batch",
                "-i",
                args.file,
                "-o",
                output,
                "-f",
                "combined",
            ]
            if args.config:
                argv_batch += ["--config", args.config]
            if workers != 1:
                argv_batch += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
            rows.append(run_measured(f"logwarden batch ({workers} worker)", argv_batch, lines))
    print_table(rows, baseline=GOACCESS)
    return 0
