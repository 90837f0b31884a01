"""``python -m bench archive FILE``: encrypted vs plain Parquet writing time and peak memory.

A child process parses FILE once (not timed), then writes every event through
the archive's ``ParquetFileWriter``, one file per day (zstd, the pipeline's row
groups), alternating plain and encrypted ``--repeat`` times; the best time of
each mode is kept, so a busy machine hurts both alike.  The only difference
between the modes is the encryption (AES-GCM on every column and the footer,
keys from a fresh keyring).  Peak RSS comes from one more child per mode that
writes once.  The goal is encrypted <= 1.15 x plain.
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


def child(path: str, modes: list[str], repeat: int) -> dict:
    """Parse once, then write ``repeat`` rounds of each mode in turn; JSON-able results."""
    from parsers.files import parse_file
    from retention.encryption import ArchiveEncryptor
    from retention.keyring import WriterKeys, init_keyring

    results = parse_file(lambda p: open(p, "rb"), path)  # noqa: SIM115 (parse_file closes what it opens)
    batches = [result.events for result in results if result.events.num_rows]
    rows = sum(b.num_rows for b in batches)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        init_keyring(Path(tmp) / "keyring", Path(tmp) / "root.key", environ={})
        encryptors = {"plain": None, "encrypted": ArchiveEncryptor(WriterKeys(Path(tmp) / "keyring"))}
        for attempt in range(repeat):
            for mode in modes:
                seconds, sizes[mode] = _write_all(batches, Path(tmp) / f"{mode}{attempt}", encryptors[mode])
                times[mode].append(seconds)
    return {"rows": rows, "seconds": times, "bytes": sizes}


def _run_child(path: str, modes: list[str], repeat: int) -> dict:
    """Run ``child`` in a fresh process; adds its peak RSS (from wait4) to the results."""
    argv = [sys.executable, "-m", "bench", "archive", path, "--modes", *modes, "--repeat", str(repeat)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise SystemExit(f"bench archive: the {modes} run failed: {err.read().decode(errors='replace')[-500:]}")
        result = json.loads(out.read())
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench archive", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="an access log (e.g. the 1M-line bench log)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of each mode; the best is reported")
    parser.add_argument("--modes", nargs="+", choices=MODES, help=argparse.SUPPRESS)  # one child's job
    args = parser.parse_args(argv)
    if args.modes:
        print(json.dumps(child(args.file, args.modes, args.repeat)))
        return 0
    timed = _run_child(args.file, list(MODES), args.repeat)
    peaks = {mode: _run_child(args.file, [mode], 1)["peak_rss_mib"] for mode in MODES}
    rows = timed["rows"]
    base = min(timed["seconds"]["plain"])
    header = (
        f"{'mode':10} {'rows':>9} {'best s':>7} {'all runs s':>30} {'rows/s':>11} "
        f"{'MiB out':>8} {'peak MiB':>9} {'vs plain':>9}"
    )
    print(header)
    print("-" * len(header))
    for mode in MODES:
        times = timed["seconds"][mode]
        best = min(times)
        runs = " ".join(f"{t:.2f}" for t in times)
        print(
            f"{mode:10} {rows:>9} {best:>7.2f} {runs:>30} {rows / best:>11,.0f} "
            f"{timed['bytes'][mode] / 2**20:>8.1f} {peaks[mode]:>9.0f} {(best / base - 1) * 100:>+8.1f}%"
        )
    overhead = min(timed["seconds"]["encrypted"]) / base - 1
    print(f"encryption overhead on writing: {overhead * 100:+.1f}% (goal: at most +15%)")
    return 0
