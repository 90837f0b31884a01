"""``python -m bench archive FILE``: encrypted vs plain Parquet writing time and peak memory.

Each mode runs in its own child process: it parses FILE once (not timed), then
writes every event through the archive's ``ParquetFileWriter`` one file per day
(zstd, the pipeline's row groups), ``--repeat`` times; the best write time is
kept.  The only difference between the modes is the encryption (AES-GCM on
every column and the footer, keys from a fresh keyring).  The goal is
encrypted <= 1.15 x plain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("plain", "encrypted")


def _write_all(batches, out: Path, encryptor) -> tuple[float, int]:
    from retention.parquet_files import ParquetFileWriter, split_by_day
    from schemas import ACCESS_EVENT

    def create(path: str):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "wb")

    started = time.perf_counter()
    writers: dict[str, ParquetFileWriter] = {}
    for batch in batches:
        for day, part in split_by_day(batch):
            if day not in writers:
                encryption = encryptor.for_day(ACCESS_EVENT, day) if encryptor else None
                writers[day] = ParquetFileWriter(
                    str(out / f"dt={day}.parquet"), ACCESS_EVENT, create, encryption=encryption
                )
            writers[day].write(part)
    size = sum(writer.close().size for writer in writers.values())
    return time.perf_counter() - started, size


def child(path: str, mode: str, repeat: int) -> dict:
    """One mode in this process: parse once, write ``repeat`` times; JSON-able results."""
    from parsers.files import parse_file
    from retention.encryption import ArchiveEncryptor
    from retention.keyring import WriterKeys, init_keyring

    results = parse_file(lambda p: open(p, "rb"), path)  # noqa: SIM115 (parse_file closes what it opens)
    batches = [result.events for result in results if result.events.num_rows]
    rows = sum(b.num_rows for b in batches)
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        encryptor = None
        if mode == "encrypted":
            init_keyring(Path(tmp) / "keyring", Path(tmp) / "root.key", environ={})
            encryptor = ArchiveEncryptor(WriterKeys(Path(tmp) / "keyring"))
        times, size = [], 0
        for attempt in range(repeat):
            seconds, size = _write_all(batches, Path(tmp) / f"out{attempt}", encryptor)
            times.append(seconds)
    return {"mode": mode, "rows": rows, "seconds": times, "bytes": size}


def _run_child(path: str, mode: str, repeat: int) -> dict:
    argv = [sys.executable, "-m", "bench", "archive", path, "--mode", mode, "--repeat", str(repeat)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench archive: the {mode} run failed: {err.decode(errors='replace')[-500:]}")
    result = json.loads(out)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench archive", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="an access log (e.g. the 1M-line bench log)")
    parser.add_argument("--repeat", type=int, default=3, help="writes per mode; the best is reported")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one child's job
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(child(args.file, args.mode, args.repeat)))
        return 0
    results = {mode: _run_child(args.file, mode, args.repeat) for mode in MODES}
    base = min(results["plain"]["seconds"])
    header = (
        f"{'mode':10} {'rows':>9} {'best s':>7} {'all runs s':>20} {'rows/s':>11} "
        f"{'MiB out':>8} {'peak MiB':>9} {'vs plain':>9}"
    )
    print(header)
    print("-" * len(header))
    for mode, r in results.items():
        best = min(r["seconds"])
        runs = " ".join(f"{s:.2f}" for s in r["seconds"])
        print(
            f"{mode:10} {r['rows']:>9} {best:>7.2f} {runs:>20} {r['rows'] / best:>11,.0f} "
            f"{r['bytes'] / 2**20:>8.1f} {r['peak_rss_mib']:>9.0f} {(best / base - 1) * 100:>+8.1f}%"
        )
    overhead = min(results["encrypted"]["seconds"]) / base - 1
    print(f"encryption overhead on writing: {overhead * 100:+.1f}% (goal: at most +15%)")
    return 0
