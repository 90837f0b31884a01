"""``python -m bench retention [--lines-per-day N] [--days D]``: time and space of ``logwarden retention apply``.

Builds an online archive of D days x N lines as the pipeline writes it: one
generated day (``bench generate``) goes through ``logwarden batch`` once, and
its events are written again for each day of June 2026 with the timestamps
shifted, through the archive's own writer and commit protocol (encrypted with
June's keys).  That happens in a child process, and so does each measured
run, whose wall time and peak RSS (VmHWM) are taken: what ``logwarden
retention apply --now 2026-12-01`` runs (every June day is due: compaction
into the archive tier), the same again (nothing to do), and an expiry run a
year later (shred + delete; the command itself refuses a --now after today, so
the children call ``RetentionRun``).  Space: online bytes before, archive-tier
bytes after, and their ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_DAY = dt.date(2026, 6, 1)
GENERATED_DAY = dt.date(2026, 11, 1)  # bench.generate's first day


def _sizes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet") if p.is_file())


def _peak_mib(pid: int) -> float:
    """The high-water RSS of a running process's current program (VmHWM: unlike ru_maxrss, not the forking parent's)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _timed(argv: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of one child process, and its stdout."""
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        while child.poll() is None:
            peak = max(peak, _peak_mib(child.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}):\n{stdout}\n{err.read()}")
    return wall, peak, stdout


def _apply_in_child(work: Path, archive: Path, now: dt.date) -> list[str]:
    """A child running what ``logwarden retention apply`` runs (without the audit entry), as of ``now``."""
    code = (
        "import datetime as dt; from retention.apply import RetentionRun; from retention.policy import Policy; "
        "from retention.keyring import reader_keys; "
        f"r = reader_keys({str(work / 'keyring')!r}, {str(work / 'root.key')!r}, environ={{}}); "
        f"now = dt.date.fromisoformat({now.isoformat()!r}); "
        f"print(RetentionRun({str(archive)!r}, r, Policy(90, 365), now).run().summary())"
    )
    return [sys.executable, "-c", code]


def build(work: Path, lines: int, days: int, env: dict) -> dict:
    from bench.generate import generate
    from pipelines.batch import run_batch
    from pipelines.options import pipeline_options
    from retention import commit
    from retention.archive_reader import open_archive
    from retention.encryption import ArchiveEncryptor
    from retention.keyring import reader_keys
    from retention.parquet_files import ParquetFileWriter
    from schemas.config import load_config

    log = work / "day.log"
    generate(log, lines, 0.01, 1, 1)
    seed = work / "seed"
    config = load_config(work / "lw.yaml")
    run_batch([str(log)], str(seed), config, pipeline_options([], config.runner))
    reader = reader_keys(work / "keyring", work / "root.key", environ={})
    table = open_archive(seed, reader, "events").to_table()
    table = table.drop_columns(["dt"])
    archive = work / "archive"
    encryptor = ArchiveEncryptor(reader)
    import pyarrow as pa
    import pyarrow.compute as pc

    from schemas import ACCESS_EVENT

    table = table.cast(ACCESS_EVENT)
    for number in range(days):
        day = FIRST_DAY + dt.timedelta(days=number)
        shift = pa.scalar(int((day - GENERATED_DAY).total_seconds() * 1_000_000), pa.duration("us"))
        shifted = table.set_column(0, ACCESS_EVENT.field("timestamp"), pc.add(table.column("timestamp"), shift))
        run = f"bench{number:03d}"
        signer = reader.custodian()
        with commit.RunLease(str(archive), run):
            out = ParquetFileWriter(
                commit.staging_path(str(archive), run),
                ACCESS_EVENT,
                commit.create,
                encryption=encryptor.for_day(ACCESS_EVENT, day.isoformat()),
            )
            for batch in shifted.to_batches(max_chunksize=128 * 1024):
                out.write(batch)
            commit.commit(str(archive), "events", day.isoformat(), run, [out.close()], signer=signer)
            commit.clear_staging(str(archive), run)
    return {"rows_per_day": table.num_rows, "log_bytes": log.stat().st_size}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench retention", description=__doc__)
    parser.add_argument("--lines-per-day", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--work", help="working directory (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-retention-"))
    work.mkdir(parents=True, exist_ok=True)
    from retention.keyring import init_keyring

    if not (work / "keyring").exists():
        init_keyring(work / "keyring", work / "root.key", environ={})
    (work / "lw.yaml").write_text(
        f"keys:\n  keyring: {work / 'keyring'}\n  root_key_file: {work / 'root.key'}\n"
        f"audit:\n  key_file: {work / 'audit.key'}\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent), *sys.path]))
    try:
        started = time.perf_counter()
        code = "import json; from bench.retention import build; from pathlib import Path; "
        code += f"print(json.dumps(build(Path({str(work)!r}), {args.lines_per_day}, {args.days}, {{}})))"
        facts = json.loads(_timed([sys.executable, "-c", code], env)[2].strip().splitlines()[-1])
        built = time.perf_counter() - started
        archive = work / "archive"
        online_bytes = _sizes(archive / "events")
        first = _timed(_apply_in_child(work, archive, dt.date(2026, 12, 1)), env)
        archive_bytes = _sizes(archive / "archive")
        left_online = _sizes(archive / "events")
        second = _timed(_apply_in_child(work, archive, dt.date(2026, 12, 1)), env)
        expire = _apply_in_child(work, archive, dt.date(2027, 7, 2))
        third = _timed(expire, env)
        rows = facts["rows_per_day"] * args.days
        print(f"retention apply on {args.days} days x {facts['rows_per_day']:,} events "
              f"(input log {facts['log_bytes'] / 2**20:.0f} MiB/day; archive built in {built:.0f} s)\n")  # fmt: skip
        print("| run | wall s | rows/s | peak RSS MiB | result |")
        print("| --- | ---: | ---: | ---: | --- |")
        print(f"| compact {args.days} days (first run) | {first[0]:.1f} | {rows / first[0]:,.0f} | {first[1]:.0f} | "
              f"{first[2].strip().splitlines()[-1]} |")  # fmt: skip
        print(f"| second run, nothing to do | {second[0]:.1f} | - | {second[1]:.0f} | "
              f"{second[2].strip().splitlines()[-1]} |")  # fmt: skip
        print(f"| a year later: shred + delete | {third[0]:.1f} | - | {third[1]:.0f} | {third[2].strip()} |")
        print()
        print("| space | bytes | per event |")
        print("| --- | ---: | ---: |")
        print(f"| online tier before (zstd default, per-day files) | {online_bytes:,} | {online_bytes / rows:.1f} |")
        print(f"| archive tier after (zstd 9, sorted by address) | {archive_bytes:,} | {archive_bytes / rows:.1f} |")
        print(f"| online left after | {left_online:,} | - |")
        print(f"\ncompaction ratio: {online_bytes / archive_bytes:.2f}x")
        print(json.dumps({"online_bytes": online_bytes, "archive_bytes": archive_bytes, "rows": rows}))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0
