"""A planner's report counts every line once, however the batch runs went: the ingest ledger decides.

Batch twice, a run killed with kill -9 just before its commit point and rerun, a file that grew between
runs, a --reprocess run: each report equals the report of one clean run over the same lines.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.reports.publish import publish_period
from pipelines.reports.store import STREAM_RUN, read_store
from retention import commit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_LOG = ROOT / "examples" / "logs" / "access.log"
#: What a planner compares: per bucket and host, and for the whole period (sketch-merged visitors included).
FIGURES = ("requests", "bytes", "bot_requests", "status_2xx", "status_4xx", "distinct_visitors_estimate",
           "peak_requests_per_second", "p95_requests_per_second",
           "peak_bytes_per_second", "p95_bytes_per_second")  # fmt: skip

#: ``logwarden batch`` killed with SIGKILL as it reaches its commit point (aggregates and archive all written).
KILLED_AT_COMMIT_POINT = """
import os, signal, sys
from retention import commit
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
commit.complete_transaction = die
from pipelines.cli import main
sys.exit(main(sys.argv[1:]))
"""


def batch(tmp_path: Path, log: Path, out: Path, *extra: str, killed: bool = False) -> subprocess.CompletedProcess:
    """``logwarden batch`` (in this process unless it is to be killed); the keyring is $LOGWARDEN_HOME's."""
    args = ["batch", "-i", str(log), "-o", str(out), "-f", "combined", *extra]
    if not killed:
        with contextlib.redirect_stderr(io.StringIO()) as stderr, contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
        return subprocess.CompletedProcess(args, code, "", stderr.getvalue())
    return subprocess.run(
        [sys.executable, "-c", KILLED_AT_COMMIT_POINT, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        timeout=300,
    )


def figures(out: Path, tmp_path: Path, host: str | None = None):
    report = publish_period(str(out), str(tmp_path / "planner" / out.name), "all", host=host).report
    series = {
        (h, row["bucket_start"]): tuple(row[f] for f in FIGURES) for h, rows in report.series.items() for row in rows
    }
    return {"total": tuple(report.totals[""][f] for f in FIGURES), "series": series}, report


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The report of one clean run over the whole example log, the figures every case must give."""
    tmp_path = tmp_path_factory.mktemp("clean")
    log = tmp_path / "access.log"
    log.write_bytes(EXAMPLE_LOG.read_bytes())
    with pytest.MonkeyPatch.context() as patch:  # module scope: conftest's per-test environment is not set yet
        patch.setenv("LOGWARDEN_HOME", str(tmp_path / ".logwarden"))
        patch.setenv(
            "LOGWARDEN_AUDIT_KEY", os.environ.get("LOGWARDEN_AUDIT_KEY", "dGVzdC1hdWRpdC1rZXktMzItYnl0ZXMtbG9uZy4uLi4")
        )
        patch.chdir(tmp_path)
        ran = batch(tmp_path, log, tmp_path / "out")
    assert ran.returncode == 0, ran.stderr
    found, report = figures(tmp_path / "out", tmp_path)
    assert report.totals[""]["requests"] == 2000 and report.runs == 1
    return found


def test_a_second_batch_over_the_same_log_changes_no_figure(tmp_path, clean):
    log, out = tmp_path / "access.log", tmp_path / "out"
    log.write_bytes(EXAMPLE_LOG.read_bytes())
    assert batch(tmp_path, log, out).returncode == 0
    again = batch(tmp_path, log, out)
    assert again.returncode == 0 and "0 new lines" in again.stderr
    found, report = figures(out, tmp_path)
    assert found == clean and report.runs == 1


def test_a_run_killed_at_its_commit_point_counts_nothing_and_its_rerun_counts_once(tmp_path, clean):
    log, out = tmp_path / "access.log", tmp_path / "out"
    log.write_bytes(EXAMPLE_LOG.read_bytes())
    killed = batch(tmp_path, log, out, killed=True)
    assert killed.returncode == -signal.SIGKILL
    assert list((out / "reports" / "aggregates").glob("traffic-*.parquet")), "the killed run stored its aggregates"
    planner = tmp_path / "planner-killed"
    code = main(["report", "--archive", str(out), "--output", str(planner)])
    assert code == 0
    page = next(planner.glob("report-*.html")).read_text()
    assert "1 unfinished run(s) not counted" in page
    assert publish_period(str(out), str(planner), "x").report.totals == {}  # nothing of the killed run counts

    rerun = batch(tmp_path, log, out)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 unfinished run(s) withdrawn" in rerun.stderr
    found, report = figures(out, tmp_path)
    assert found == clean and report.runs == 1 and report.unfinished == 1


def test_a_log_that_grew_between_runs_counts_each_line_once(tmp_path, clean):
    lines = EXAMPLE_LOG.read_bytes().splitlines(keepends=True)
    log, out = tmp_path / "access.log", tmp_path / "out"
    log.write_bytes(b"".join(lines[:1234]))
    assert batch(tmp_path, log, out).returncode == 0
    with log.open("ab") as grow:
        grow.write(b"".join(lines[1234:]))
    grown = batch(tmp_path, log, out)
    assert grown.returncode == 0 and "766 new lines from line 1235" in grown.stderr
    found, report = figures(out, tmp_path)
    assert found == clean and report.runs == 2 and not report.superseded


def test_reprocess_owns_what_it_read_again_so_figures_count_once(tmp_path, clean):
    lines = EXAMPLE_LOG.read_bytes().splitlines(keepends=True)
    log, out = tmp_path / "access.log", tmp_path / "out"
    log.write_bytes(b"".join(lines[:1000]))
    assert batch(tmp_path, log, out).returncode == 0
    with log.open("ab") as grow:
        grow.write(b"".join(lines[1000:]))
    assert batch(tmp_path, log, out).returncode == 0  # lines 1001-2000
    assert batch(tmp_path, log, out, "--reprocess").returncode == 0  # all 2000 again: this reading owns them
    found, report = figures(out, tmp_path)
    assert found == clean and report.runs == 1 and report.superseded > 0
    [reprocessed] = read_store(str(out))[2].owners
    records = commit.completed_transactions(str(out))
    assert max(records, key=lambda t: records[t]["completed_ns"]) == reprocessed  # the latest reading


def test_a_stream_and_a_batch_over_the_same_log_count_each_line_once(tmp_path, clean, archive_config, reader):
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.batch import run_batch
    from retention.archive_reader import open_archive
    from tests.stream.test_stream_pipeline import run_until, stream_config

    lines = EXAMPLE_LOG.read_bytes().splitlines(keepends=True)
    log, out = tmp_path / "access.log", tmp_path / "out"
    log.write_bytes(b"".join(lines[:1000]))
    run_batch([str(log)], str(out), archive_config, PipelineOptions(["--runner=FnApiRunner"]))

    def archived() -> int:
        try:
            return open_archive(out, reader, "events").count_rows()
        except Exception:  # nothing committed yet
            return 0

    def grow():
        time.sleep(2)
        with log.open("ab") as more:
            more.write(b"".join(lines[1000:]))

    config = stream_config(archive_config, tmp_path, cut_seconds=1.0)
    run_until([str(log)], out, config, lambda: archived() >= 2000, while_running=grow)
    records = commit.completed_transactions(str(out)).values()
    assert any(r.get("kind") == "stream" for r in records), "each stream cut is a ledger transaction"
    run_batch([str(log)], str(out), archive_config, PipelineOptions(["--runner=FnApiRunner"]))  # after the stream
    found, _ = figures(out, tmp_path)
    assert found == clean and STREAM_RUN in read_store(str(out))[2].owners
