"""``python -m bench parse FILE``: logwarden's parser against GoAccess on the same file, same run.

Each contender runs as its own child process (one core each, one after the
other) so wall time and peak RSS are its own: GoAccess building its JSON
report, and logwarden streaming the file through ``parsers.files.parse_file``
(read, split, parse to typed Arrow events and dead letters, results dropped).
``--cli`` adds the whole ``logwarden parse`` command writing JSON lines to
/dev/null, which measures JSON output more than parsing.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

from bench.measure import count_lines, print_table, run_measured

GOACCESS = "goaccess (COMBINED, json report)"


def parse_only(path: str, format_spec: str) -> int:
    """The child side: parse ``path`` completely and report the counts on stderr."""
    from parsers.files import FileParse, parse_file

    report = FileParse(path)
    for _ in parse_file(functools.partial(open, mode="rb"), path, format_spec, report=report):
        pass
    print(f"{report.lines_read} read = {report.parsed} parsed + {report.dead_lettered} dead", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench parse", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="a combined-format access log (python -m bench generate makes one)")
    parser.add_argument("--format", default="combined", help="logwarden format for the file (default: combined)")
    parser.add_argument("--cli", action="store_true", help="also time `logwarden parse` with JSON output")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return parse_only(args.file, args.format)
    lines = count_lines(args.file)
    rows = []
    with tempfile.TemporaryDirectory(prefix="logwarden-bench-") as tmp:
        goaccess = ["goaccess", args.file, "--log-format=COMBINED", "-o", str(Path(tmp) / "report.json")]
        rows.append(run_measured(GOACCESS, goaccess, lines))
        ours = [sys.executable, "-m", "bench", "parse", args.file, "--format", args.format, "--child"]
        rows.append(run_measured(f"logwarden parse stage ({args.format})", ours, lines))
        if args.cli:
            cli = [sys.executable, "-m", "pipelines.cli", "parse", args.file, "-f", args.format, "-o", "/dev/null"]
            rows.append(run_measured("logwarden parse CLI (JSON out)", cli, lines))
    print_table(rows, baseline=GOACCESS)
    return 0
