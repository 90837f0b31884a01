"""``logwarden batch`` on Beam's portable runner path: the job goes through a job service to SDK workers in
processes of their own that run logwarden from the sdist ``--setup_file`` builds, as on Dataflow, Flink or Spark.

The job service is Beam's embedded one (``--job_endpoint=embed``); the workers come from Beam's worker pool
(``worker_pool_main``, ``--environment_type=EXTERNAL``), each started through ``portable_worker_boot.py``, which
fetches the staged ``workflow.tar.gz`` from the job's artifact service and installs it into a folder of its own
(a Python without site-packages, so the checkout's editable install is out of reach).  The same input and config
run on the local runner (FnApiRunner, in process) must give the same archive rows and the same alert ids.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import site
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from retention.archive_reader import open_archive
from retention.ledger import produced_alert_ids

ROOT = Path(__file__).resolve().parents[2]
BOOT = Path(__file__).with_name("portable_worker_boot.py")
PACKAGES = ("schemas", "parsers", "alerts", "retention", "pipelines")
#: Generous: the machine is shared and may be loaded; nothing here is timed, only bounded.
STARTUP_SECONDS = 180
JOB_SECONDS = 900

POOL = """\
import sys
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
address, server = BeamFnExternalWorkerPoolServicer.start(use_process=True, port=0, container_executable=sys.argv[1])
print(address, flush=True)
server.wait_for_termination()
"""


def _end_group(process: subprocess.Popen) -> None:
    """End ``process`` and everything it started (its own session): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 20)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            os.killpg(process.pid, 0)  # anything left of the group (workers outliving the pool)?
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(timeout=20)


@contextmanager
def worker_pool(work: Path):
    """Beam's external worker pool, its workers booted from the staged sdist; yields its address."""
    work.mkdir()
    (work / "reports").mkdir()
    (work / "progress").mkdir()
    boot = work / "boot.sh"
    boot.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I -S {shlex.quote(str(BOOT))} "$@"\n')
    boot.chmod(0o755)
    env = dict(
        os.environ,
        LOGWARDEN_WORKER_SITE_PACKAGES=os.pathsep.join(site.getsitepackages()),
        LOGWARDEN_WORKER_REPORTS=str(work / "reports"),
        LOGWARDEN_PROGRESS_DIR=str(work / "progress"),  # the parse step's side channel, written by the workers
    )
    with open(work / "pool.log", "wb") as log:
        pool = subprocess.Popen(
            [sys.executable, "-c", POOL, str(boot)],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(pool.stdout.readline()), daemon=True).start()
        try:
            address = lines.get(timeout=STARTUP_SECONDS).decode().strip()
        except queue.Empty:
            address = ""
        assert address, f"the worker pool did not start:\n{_tail(work / 'pool.log')}"
        yield address
    finally:
        _end_group(pool)


def _worker_failure(work: Path) -> str | None:
    failures = sorted((work / "reports").glob("*.failed"))
    return "\n".join(p.read_text(errors="replace") for p in failures) or None


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _batch(inputs: list[Path], output: Path, config: Path, *beam_flags: str, failed=lambda: None) -> str:
    """``logwarden batch`` in a process of its own, bounded and ended with all it started; its stderr.

    ``failed()`` is asked while the job runs: a message there (a worker that could not boot, which the runner
    would wait for forever) stops the job and fails the test with it.
    """
    command = [sys.executable, "-m", "pipelines.cli", "batch", "-i", *map(str, inputs), "-o", str(output)]
    command += ["-c", str(config), *beam_flags]
    log = output.with_name(output.name + ".stderr")
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True
        )
    problem, deadline = None, time.monotonic() + JOB_SECONDS
    try:
        while process.poll() is None and problem is None and time.monotonic() < deadline:
            problem = failed()
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)
    finally:
        _end_group(process)
    err = log.read_text(errors="replace")
    assert problem is None, f"a worker failed, so the job was stopped:\n{problem}\n{err}"
    assert process.returncode == 0, f"{' '.join(beam_flags) or 'local'} run failed ({process.returncode}):\n{err}"
    return err


def _packaging_copy(into: Path) -> Path:
    """What ``setup.py sdist`` reads, copied: Beam's build writes ``logwarden.egg-info`` beside ``setup.py``, and
    ``test_setup_file`` builds from the checkout, maybe at the same moment on another pytest worker."""
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, into / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, into / package, ignore=shutil.ignore_patterns("__pycache__"))
    return into / "setup.py"


def _archived(output: Path, reader) -> dict:
    alerts = open_archive(output, reader, "alerts").to_table(columns=["alert_id", "rule_id", "count"]).to_pylist()
    return {
        "rows": {
            name: open_archive(output, reader, name).count_rows() for name in ("events", "errors", "dead_letters")
        },
        "alerts": sorted((a["alert_id"], a["rule_id"], a["count"]) for a in alerts),
        "ledger_alert_ids": sorted(produced_alert_ids(str(output))),
    }


def _balance(summary: str) -> str:
    [line] = re.findall(r"^\s*read \d+ = parsed .*$", summary, re.MULTILINE)
    return line.strip()


def test_the_batch_graph_on_the_portable_runner_with_workers_from_the_sdist_matches_the_local_runner(
    tmp_path, examples, archive_config, reader
):
    logs = tmp_path / "logs"
    shutil.copytree(examples / "logs", logs)  # 4,002 lines: every kind of attack, a gzip file, 2 dead letters
    shutil.copy(Path(__file__).parents[1] / "parsers/fixtures/filebeat-nginx-error/error.log", logs / "error.log")
    geoip = [str(examples / "geoip" / name) for name in ("GeoLite2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb")]
    config = tmp_path / "logwarden.yaml"
    config.write_text(
        f"keys:\n  keyring: {archive_config.keys.keyring}\n  root_key_file: {archive_config.keys.root_key_file}\n"
        f"enrich:\n  geoip_databases: {json.dumps(geoip)}\n"
    )
    inputs = sorted(logs.iterdir())
    (tmp_path / "src").mkdir()
    setup_file = _packaging_copy(tmp_path / "src")

    local_summary = _batch(inputs, tmp_path / "local", config, "--runner=FnApiRunner")
    with worker_pool(tmp_path / "workers") as address:
        portable_summary = _batch(
            inputs,
            tmp_path / "portable",
            config,
            "--runner=PortableRunner",
            "--job_endpoint=embed",
            "--environment_type=EXTERNAL",
            f"--environment_config={address}",
            f"--setup_file={setup_file}",
            failed=lambda: _worker_failure(tmp_path / "workers"),
        )

    local, portable = _archived(tmp_path / "local", reader), _archived(tmp_path / "portable", reader)
    assert local["rows"]["events"] == 4000 and local["rows"]["dead_letters"] == 2 and local["rows"]["errors"] > 0
    assert len({rule for _, rule, _ in local["alerts"]}) >= 5
    assert portable == local
    assert _balance(portable_summary) == _balance(local_summary)

    # The work ran in the pool's workers, each of which imported logwarden only from the sdist it installed.
    reports = [json.loads(p.read_text()) for p in (tmp_path / "workers" / "reports").glob("*.json")]
    assert reports, f"no worker booted:\n{_tail(tmp_path / 'workers' / 'pool.log')}"
    for report in reports:
        assert report["importable_before_install"] == dict.fromkeys(PACKAGES, False), report
        assert "workflow.tar.gz" in report["artifacts"]
        site_dir = Path(report["site"])
        assert site_dir.is_relative_to(tmp_path / "workers") and not site_dir.is_relative_to(ROOT)
        assert not any(Path(p).is_relative_to(tmp_path / "src") for p in report["sys_path"])
        for name, file in report["files"].items():
            assert Path(file) == site_dir / name / "__init__.py", (name, file)
        assert str(ROOT) not in report["sys_path"] and "" not in report["sys_path"]
    parsed_by = {}
    for part in (tmp_path / "workers" / "progress").glob("*.jsonl"):
        pid = int(part.name.split("-", 1)[0])
        lines = sum(json.loads(doc).get("lines", 0) for doc in part.read_text().splitlines())
        parsed_by[pid] = parsed_by.get(pid, 0) + lines
    assert set(parsed_by) <= {r["pid"] for r in reports} and parsed_by, parsed_by
    assert sum(parsed_by.values()) == int(re.search(r"read (\d+) =", _balance(local_summary)).group(1))


def _readme_cluster_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Running on a cluster") :]
    section = section[: section.index("\n## ", 1)]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith("logwarden batch"):
                commands.append(shlex.split(command)[1:])
    return commands


def test_the_readme_cluster_commands_pass_their_runner_flags_through_to_beam():
    from pipelines.cli import build_parser
    from pipelines.commands.common import unknown_flags_message
    from pipelines.options import beam_flags, pipeline_options
    from schemas.config import RunnerConfig

    commands = _readme_cluster_commands()
    runners = set()
    for argv in commands:
        args, extra = build_parser().parse_known_args(argv)
        assert args.command == "batch" and extra, argv
        assert unknown_flags_message(extra, build_parser(), beam_flags()) is None, argv
        runners.add(pipeline_options(extra, RunnerConfig()).get_all_options()["runner"])
    assert runners == {"DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner"}
    problem = unknown_flags_message(["--environment_typ=EXTERNAL"], build_parser(), beam_flags())
    assert "did you mean --environment_type?" in problem
