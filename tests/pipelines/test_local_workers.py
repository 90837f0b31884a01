"""Forked local workers: the same job as one worker, no child outliving the command, a dead child failing the job."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.generate import generate
from parsers.splits import MIN_RANGE_BYTES, plan_ranges, range_size
from pipelines.local_workers import can_fork, forked_workers
from pipelines.options import MAX_DEFAULT_WORKERS, local_worker_processes, pipeline_options
from schemas.config import RunnerConfig
from tests.operator.helpers import ACCESS_LOG, env, keys_yaml

pytestmark = pytest.mark.skipif(not can_fork(), reason="forked workers are Linux only")
FORKED_BATCH = Path(__file__).with_name("forked_batch.py")
WRITTEN = re.compile(r"files written\s+\d+ \((\d+) events, (\d+) dead letters")
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


@pytest.fixture(scope="module")
def attack_log(tmp_path_factory) -> Path:
    log = tmp_path_factory.mktemp("log") / "access.log"
    generate(log, lines=4000, attack_ratio=0.05, days=1, seed=5)
    with log.open("a") as handle:
        handle.write("not a log line\nnor this one\n")
    return log


def start_batch(log: Path, tmp_path: Path, name: str, *flags: str) -> subprocess.Popen:
    config = tmp_path / f"{name}.yaml"
    config.write_text(keys_yaml(tmp_path) + f"alerts:\n  sinks:\n    jsonl: {tmp_path / name}.jsonl\n")
    argv = [sys.executable, str(FORKED_BATCH), "batch", "-i", str(log), "-o", str(tmp_path / name), "-f", "combined"]
    return subprocess.Popen(
        [*argv, "-c", str(config), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )


def pool_pids(job: subprocess.Popen) -> list[int]:
    return json.loads(job.stdout.readline())["pids"]


def finish(job: subprocess.Popen) -> tuple[str, str]:
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err[-3000:]
    return out, err


def alive(pid: int) -> bool:
    """Running, or ended but not yet reaped by anyone (a zombie still counts: nobody waited for it)."""
    return Path(f"/proc/{pid}").exists()


def job_result(tmp_path: Path, name: str, err: str) -> tuple[tuple[int, int], list[str]]:
    written = WRITTEN.search(err)
    assert written is not None, err[-3000:]
    alerts = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    return (int(written.group(1)), int(written.group(2))), sorted(a["alert_id"] for a in alerts)


def test_two_forked_workers_do_the_same_job_as_one_and_end_with_it(attack_log, tmp_path):
    one = start_batch(attack_log, tmp_path, "one", "--direct_num_workers=1")
    assert pool_pids(one) == []  # one worker runs inside the command: nothing to fork
    _, one_err = finish(one)
    two = start_batch(attack_log, tmp_path, "two", *TWO_WORKERS)
    pids = pool_pids(two)
    assert len(pids) == 2
    _, two_err = finish(two)
    (one_rows, one_alerts), (two_rows, two_alerts) = (
        job_result(tmp_path, "one", one_err),
        job_result(tmp_path, "two", two_err),
    )
    assert one_rows == two_rows and one_rows[0] == 4000 and one_rows[1] == 2
    assert one_alerts and one_alerts == two_alerts
    assert not [pid for pid in pids if alive(pid)]  # the forked children never outlive the command


def _script_result(script: str):
    """What a Python ``script`` run in a process of its own (one thread: it may fork) prints, as JSON."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_children_nobody_asked_for_exit_when_the_pool_closes(tmp_path):
    script = (
        "import json, pathlib\n"
        "from pipelines.local_workers import forked_workers\n"
        "with forked_workers(2) as pool:\n"
        "    pids = pool.pids\n"
        "print(json.dumps([pid for pid in pids if pathlib.Path(f'/proc/{pid}').exists()] + [len(pids)]))\n"
    )
    assert _script_result(script) == [2]  # two forked, none left once the pool closed


def test_each_child_prepares_before_the_runner_asks_for_it(tmp_path):
    script = (
        "import json, os, pathlib, time\n"
        "from pipelines.local_workers import forked_workers\n"
        f"folder = pathlib.Path({str(tmp_path)!r})\n"
        "def prepare():\n"
        "    (folder / str(os.getpid())).write_text('ready')\n"
        "with forked_workers(2, prepare) as pool:\n"
        "    deadline = time.monotonic() + 60\n"
        "    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    prepared = sorted(int(p.name) for p in folder.iterdir())\n"
        "print(json.dumps([prepared, sorted(pool.pids)]))\n"
    )
    prepared, pids = _script_result(script)
    assert len(pids) == 2 and prepared == pids  # while waiting, before any runner asked


def test_a_process_with_threads_forks_nothing():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with forked_workers(2) as pool:
            assert pool.pids == []
    finally:
        stop.set()
        thread.join()


def test_a_worker_that_dies_fails_the_job_with_a_clear_error(tmp_path):
    log = tmp_path / "big.log"
    generate(log, lines=60_000, attack_ratio=0.01, days=1, seed=9)
    job = start_batch(log, tmp_path, "killed", *TWO_WORKERS)
    victim = pool_pids(job)[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:  # until it serves the runner (gRPC threads)
        status = Path(f"/proc/{victim}/status").read_text()
        if int(re.search(r"Threads:\s+(\d+)", status).group(1)) > 1:
            break
        time.sleep(0.01)
    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    _, err = job.communicate(timeout=180)  # it fails; it does not hang
    assert job.returncode != 0
    assert f"local worker process {victim} ended before the job did: it was killed by signal 9" in err, err[-3000:]


@pytest.mark.parametrize(
    ("size", "workers", "expected"),
    [
        (200 * 2**20, 2, 50 * 2**20),  # 4 ranges of 50 MiB, not 64 + 64 + 64 + 8
        (100 * 2**20, 2, 25 * 2**20),  # larger than one range: a multiple of 4, as on 1 or 4 workers
        (10 * 2**20, 2, 5 * 2**20),  # smaller than one range: still one for each worker
        (10 * 2**20, 3, -(-10 * 2**20 // 3)),
        (200 * 2**20, 1, 50 * 2**20),  # one worker: the same ranges as two
        (60 * 2**20, 1, 64 * 2**20),  # within one range: whole on one worker
        (MIN_RANGE_BYTES, 2, MIN_RANGE_BYTES),  # never tiny ranges
    ],
)
def test_range_size_gives_each_worker_an_equal_share(size, workers, expected):
    assert range_size(size, 64 * 2**20, workers) == expected


@pytest.mark.parametrize("size", [65 * 2**20, 212 * 2**20, 1061 * 2**20])
def test_one_two_or_four_workers_read_a_large_file_in_the_same_ranges(size):
    """The same ranges, so the same batches: alerts do not depend on how many workers ran."""
    assert range_size(size, 64 * 2**20, 1) == range_size(size, 64 * 2**20, 2) == range_size(size, 64 * 2**20, 4)


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_a_file_is_cut_into_a_multiple_of_the_workers_in_equal_ranges(workers):
    line = b'198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "agent"\n'
    data = line * (9 * 2**20 // len(line))
    cut = range_size(len(data), 64 * 2**20, workers)
    ranges = list(plan_ranges(io.BytesIO(data), "a.log", "combined", cut))
    sizes = [(r.end if r.end is not None else len(data)) - r.start for r in ranges]
    assert len(ranges) % workers == 0
    assert max(sizes) - min(sizes) <= 2 * len(line)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], 0),  # in the command's own process
        (["--direct_num_workers=1"], 0),
        (TWO_WORKERS, 2),
        (["--direct_num_workers=3", "--direct_running_mode=multi_processing"], 3),
        (["--direct_num_workers=2", "--direct_running_mode=multi_threading"], 0),  # threads, no processes
        (["--runner=PortableRunner", *TWO_WORKERS], 0),  # not the local runner
    ],
)
def test_local_worker_processes_reads_the_options(flags, expected):
    assert local_worker_processes(pipeline_options(flags, RunnerConfig(direct_num_workers=1))) == expected


@pytest.mark.parametrize(
    ("flags", "configured", "expected"),
    [
        ([], None, 2),  # nobody said: the command's default
        (["--direct_num_workers=1"], None, 0),  # one worker, in-process
        (["--runner=FnApiRunner"], None, 0),  # a named runner runs as Beam runs it
        (["--direct_running_mode=in_memory"], None, 0),
        ([], 1, 0),  # the config said
        ([], 3, 3),
        (["--direct_num_workers=1"], 3, 0),  # the flag wins over the config
    ],
)
def test_the_default_workers_apply_only_when_nobody_said(flags, configured, expected):
    options = pipeline_options(flags, RunnerConfig(direct_num_workers=configured), default_workers=2)
    assert local_worker_processes(options) == expected


def test_the_default_is_one_worker_per_usable_core_in_a_process_without_threads():
    script = (
        "import threading\n"
        "from pipelines.options import default_local_workers\n"
        "print(default_local_workers())\n"
        "threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "print(default_local_workers())\n"
    )
    one_core = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", script], capture_output=True, env=env())
    assert one_core.stdout.split() == [b"1", b"1"], one_core.stderr
    every_core = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env())
    cores = len(os.sched_getaffinity(0))
    expected = str(min(cores, MAX_DEFAULT_WORKERS) if cores > 1 else 1).encode()
    assert every_core.stdout.split() == [expected, b"1"], every_core.stderr  # with a thread: no fork, one worker


def test_a_plain_batch_command_forks_the_default_workers(tmp_path):
    job = start_batch(ACCESS_LOG, tmp_path, "plain")
    pids = pool_pids(job)
    _, err = finish(job)
    cores = len(os.sched_getaffinity(0))
    assert len(pids) == (min(cores, MAX_DEFAULT_WORKERS) if cores > 1 else 0)
    assert job_result(tmp_path, "plain", err)[0] == (2000, 0)


def test_a_rerun_with_nothing_new_to_read_forks_no_workers(tmp_path):
    """Forked children would prepare their matchers (~0.3 s each) for no job, and the command would wait."""
    first = start_batch(ACCESS_LOG, tmp_path, "rerun", *TWO_WORKERS)
    assert len(pool_pids(first)) == 2
    finish(first)
    again = start_batch(ACCESS_LOG, tmp_path, "rerun", *TWO_WORKERS)
    out, err = finish(again)
    assert "already archived by run" in err and "0 new lines" in err
    assert "pids" not in out  # the pool was never opened


@pytest.mark.skipif(not can_fork(), reason="the parent-death signal is Linux's")
def test_a_process_started_with_die_with_parent_ends_when_its_parent_is_killed(tmp_path):
    """A harness or command killed with -9 must not leave its stream job or worker running for ever."""
    parent = (
        "import subprocess, sys\n"
        "from pipelines.local_workers import die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], preexec_fn=die_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    started = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, env=env())
    child = int(started.stdout.readline())
    started.kill()
    started.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie has ended, only its parent may not have reaped it
    except FileNotFoundError:
        return False
