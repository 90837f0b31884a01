"""The batch job stores mergeable aggregates and names its report; `logwarden report` merges runs without keys."""

import dataclasses
import stat

import pyarrow.parquet as pq

from pipelines.batch import run_batch
from pipelines.cli import main
from pipelines.commands.batch import summary
from pipelines.options import pipeline_options
from schemas import TRAFFIC_AGGREGATE
from schemas.config import EnrichConfig, InputConfig
from tests.reports.support import LOG_FORMAT, line, small_log


def totals(report_dir, pattern="traffic-*.parquet"):
    [traffic] = report_dir.glob(pattern)
    table = pq.read_table(traffic)
    assert table.schema.names == TRAFFIC_AGGREGATE.names
    return sum(table.column("requests").to_pylist()), sum(table.column("bytes").to_pylist())


def test_runs_store_aggregates_and_a_re_run_does_not_change_a_period(examples, tmp_path, archive_config):
    config = archive_config
    first = run_batch([str(examples / "logs")], str(tmp_path / "out"), config, pipeline_options([], config.runner))
    reports = tmp_path / "out" / "reports"
    assert first.report and first.report.endswith(f"report-{first.run_id}.html")
    assert f"report            {first.report}" in summary(first)
    assert totals(reports, f"traffic-{first.run_id}.parquet")[0] == 4000
    for path in reports.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    # A plain rerun reads nothing (the ingest ledger); --reprocess reads the same logs again into a new run.
    run_batch(
        [str(examples / "logs")], str(tmp_path / "out"), config, pipeline_options([], config.runner), reprocess=True
    )
    assert len(list((reports / "aggregates").glob("traffic-*.parquet"))) == 2
    exit_code = main(
        ["report", "--archive", str(tmp_path / "out"), "--from", "2026-10-31", "--to", "2026-11-01",
         "--output", str(tmp_path / "planner")]
    )  # fmt: skip
    assert exit_code == 0
    assert totals(tmp_path / "planner") == totals(reports, f"traffic-{first.run_id}.parquet")
    assert (
        main(["report", "--archive", str(tmp_path / "out"), "--bucket", "minute", "--output", str(tmp_path / "x")]) == 2
    )


def test_no_report_file_holds_an_address_user_email_query_or_name(tmp_path, archive_config):
    hostile = [
        line("www.example.com", f"198.51.100.{i}", f"10:2{i % 10}:00", path, 200, 10, "curl/8.4.0", 100, user=user)
        for i in range(1, 13)
        for path, user in [
            ("/profile/JaneDoe1985?email=jane.doe@example.com", "jane"),
            ("/home/bob", "bob"),
            ("/u/carol@example.org/inbox", "carol"),
            ("/users/8812731/orders?session=abcdef0123456789", "-"),
        ]
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    text = "\n".join(small_log() + hostile) + "\n"
    (logs / "access.log").write_text(text)
    config = dataclasses.replace(
        archive_config, input=InputConfig(format=LOG_FORMAT), enrich=EnrichConfig(geoip_databases=())
    )
    run = run_batch([str(logs)], str(tmp_path / "out"), config, pipeline_options([], config.runner))
    assert run.counts.lines_parsed == len(small_log()) + len(hostile)
    secrets = {value for raw in text.splitlines() for value in (raw.split(" ")[1],)}  # every client address
    secrets |= {"alice", "jane", "bob", "carol", "john.smith", "JaneDoe1985", "jane.doe", "@example", "token=",
                "s3cr3t", "session=", "8812731", "email=", "q=john", "?"}  # fmt: skip
    scanned = 0
    for path in (tmp_path / "out" / "reports").rglob("*"):
        if not path.is_file():
            continue
        scanned += 1
        if path.suffix == ".parquet":  # compressed: scan the values, not the bytes
            table = pq.read_table(path)
            content = repr(
                [c for c, f in zip(table.columns, table.schema) if "hll" not in f.name and "kll" not in f.name]
            )
        else:
            content = path.read_text()
            if path.suffix == ".html":  # the page's own script and uPlot hold '?' and '@' as code
                content = content.split('<script type="application/json" id="report-data">', 1)[1].split(
                    "</script>", 1
                )[0]
        found = sorted(s for s in secrets if s in content)
        assert not found, (path.name, found)
    assert scanned == 9  # 2 stored aggregates + 7 report files (traffic, breakdown, health: parquet, csv; html)
