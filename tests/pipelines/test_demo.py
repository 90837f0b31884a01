"""The README's first command: the demo config on the bundled sample gives alerts, a report and an archive."""

import dataclasses
from pathlib import Path

import pyarrow.compute as pc

from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from retention.alert_store import read_alerts
from retention.archive_reader import open_archive
from schemas.config import load_config


def test_demo_finds_every_kind_of_attack_in_the_sample_and_enriches_from_the_bundled_databases(
    examples, archive_config, reader, tmp_path
):
    config = dataclasses.replace(load_config(examples / "logwarden.yaml"), keys=archive_config.keys)
    result = run_batch([str(examples / "logs")], str(tmp_path), config, pipeline_options([], config.runner))
    assert result.counts.lines_read == 4002 and result.counts.balanced

    rules = {alert["rule_id"] for alert in read_alerts(tmp_path, reader)}
    expected = {
        "http-sqli",
        "http-xss",
        "http-path-traversal",
        "http-log4shell",
        "http-sensitive-file",
        "http-scanner-user-agent",
        "http-probing",
        "http-login-bruteforce",
        "http-request-flood",
    }
    assert expected <= rules, f"missing {expected - rules}"

    events = open_archive(tmp_path, reader).to_table(columns=["source_geo_country_iso_code", "user_agent_name"])
    countries = set(pc.unique(events["source_geo_country_iso_code"]).to_pylist())
    assert {"GB", "SE", "US", "CN"} <= countries  # real lookups in MaxMind's test databases
    # Feed readers and odd agents (UniversalFeedParser, "Mozilla/4.0 (compatible;)") have no known family.
    assert pc.count(events["user_agent_name"]).as_py() > 0.85 * 4000

    assert result.report and result.report.endswith(".html")
    page = Path(result.report).read_text()
    assert "Countries" in page and '"value":"GB"' in page and '"value":"Chrome ' in page
