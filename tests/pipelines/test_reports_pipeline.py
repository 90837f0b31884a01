"""The batch job writes capacity reports beside the archive: Parquet, CSV and a self-contained HTML page."""

import csv

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from schemas import TRAFFIC_AGGREGATE
from schemas.config import Config


def test_reports_add_up_to_the_events_and_hold_no_addresses(examples, tmp_path):
    config = Config()
    run_batch([str(examples / "logs")], str(tmp_path), config, pipeline_options([], config.runner))
    reports = tmp_path / "reports"
    [traffic] = reports.glob("traffic-*.parquet")
    table = pq.read_table(traffic)
    assert table.schema.names == TRAFFIC_AGGREGATE.names
    assert sum(table.column("requests").to_pylist()) == 4000
    events = ds.dataset(tmp_path / "events", format="parquet", partitioning="hive").to_table(columns=["timestamp"])
    hours = pc.unique(pc.floor_temporal(events.column("timestamp"), 1, unit="hour"))
    assert sorted(table.column("bucket_start").to_pylist()) == sorted(hours.to_pylist())
    [csv_file] = reports.glob("traffic-*.csv")
    assert sum(int(row["requests"]) for row in csv.DictReader(csv_file.open())) == 4000
    [html] = reports.glob("report-*.html")
    page = html.read_text()
    assert "Requests per hour" in page and "<svg" in page
    ips = {line.split(" ", 1)[0] for line in (examples / "logs" / "access.log").read_text().splitlines()}
    for report in reports.iterdir():
        data = report.read_bytes()
        assert not [ip for ip in ips if ip.encode() in data], report.name
