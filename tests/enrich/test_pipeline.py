"""The Enrich transform in Beam, the batch pipeline's archive and the parse command's --enrich."""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.batch import run_batch
from pipelines.cli import main
from pipelines.enrich import Enrich
from pipelines.options import pipeline_options
from retention.archive_reader import open_archive
from schemas.config import EnrichConfig
from tests.enrich.events import access_batch

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
LINES = [
    f'81.2.69.160 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 2326 "-" "{CHROME}"',
    '8.8.8.8 - - [10/Oct/2023:13:55:37 +0000] "GET /x HTTP/1.1" 404 12 "-" "Mozilla/5.00 (Nikto/2.1.6)"',
    '192.168.1.20 - - [10/Oct/2023:13:55:38 +0000] "GET /y HTTP/1.1" 200 5 "-" "curl/8.4.0"',
]


def _summary(batch):
    columns = ["source_ip", "user_agent_name", "user_agent_device_type", "source_geo_city_name", "source_as_number"]
    return [tuple(row[c] for c in columns) for row in batch.select(columns).to_pylist()]


def test_enrich_transform(geo_db):
    config = EnrichConfig(geoip_databases=(geo_db["city"], geo_db["asn"]), trusted_proxies=("10.0.0.0/8",))
    first = access_batch(source_ip=["81.2.69.160", "10.1.1.1"], user_agent_original=[CHROME, "curl/8.4.0"])
    first = first.set_column(
        first.schema.get_field_index("http_request_x_forwarded_for"),
        "http_request_x_forwarded_for",
        access_batch(http_request_x_forwarded_for=[None, "8.8.8.8"]).column("http_request_x_forwarded_for"),
    )
    second = access_batch(source_ip=["2a02:1234::1"], user_agent_original=["sqlmap/1.7.2#stable"])
    with BeamTestPipeline(runner="FnApiRunner") as pipeline:
        rows = (
            pipeline
            | "Events" >> beam.Create([first, second])
            | "Enrich" >> Enrich(config)
            | "Summarise" >> beam.FlatMap(_summary)
        )
        assert_that(
            rows,
            equal_to(
                [
                    ("81.2.69.160", "Chrome", "desktop", "London", 20712),
                    ("8.8.8.8", "curl", "bot", None, 15169),
                    ("2a02:1234::1", "sqlmap", "bot", "Berlin", 64500),
                ]
            ),
        )


@pytest.mark.parametrize("enabled", [True, False])
def test_batch_archive_carries_the_enriched_fields(tmp_path, geo_db, enabled, archive_config, reader):
    log = tmp_path / "access.log"
    log.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    enrich = EnrichConfig(enabled=enabled, geoip_databases=(geo_db["city"], geo_db["asn"]))
    config = dataclasses.replace(archive_config, enrich=enrich)
    run = run_batch([str(log)], str(tmp_path / "out"), config, pipeline_options([], config.runner))
    assert run.counts.lines_parsed == 3
    table = open_archive(tmp_path / "out", reader).to_table()
    rows = sorted(_summary(table), key=lambda row: row[0])
    if enabled:
        assert rows == [
            ("192.168.1.20", "curl", "bot", None, None),
            ("8.8.8.8", "Nikto", "bot", None, 15169),
            ("81.2.69.160", "Chrome", "desktop", "London", 20712),
        ]
    else:
        assert {row[1:] for row in rows} == {(None, None, None, None)}


def test_parse_command_with_enrich(tmp_path, geo_db, capsys):
    log = tmp_path / "access.log"
    log.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    status = main(["parse", str(log), "--geoip-db", geo_db["city"], "--geoip-db", geo_db["missing"]])
    out, err = capsys.readouterr()
    assert status == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["user_agent_name"] == "Chrome" and events[0]["source_geo_city_name"] == "London"
    assert events[0]["source_geo_location"] == {"lat": 51.5142, "lon": -0.0931}
    assert events[1]["user_agent_is_bot"] is True
    assert err.count("not found") == 1 and geo_db["missing"] in err


def test_parse_command_without_enrich_adds_nothing(tmp_path, capsys):
    log = tmp_path / "access.log"
    log.write_text(LINES[0] + "\n", encoding="utf-8")
    assert main(["parse", str(log)]) == 0
    assert "user_agent_name" not in capsys.readouterr().out


def test_parse_command_rejects_a_database_of_the_wrong_kind(tmp_path, geo_db, capsys):
    log = tmp_path / "access.log"
    log.write_text(LINES[0] + "\n", encoding="utf-8")
    assert main(["parse", str(log), "--enrich", "--geoip-db", geo_db["domain"]]) == 2
    err = capsys.readouterr().err
    assert "enrich.geoip_databases[0]" in err and "GeoIP2-Domain" in err


def test_batch_command_rejects_a_database_of_the_wrong_kind(tmp_path, geo_db, capsys):
    config = tmp_path / "logwarden.yaml"
    config.write_text(f"enrich:\n  geoip_databases: ['{geo_db['domain']}']\n", encoding="utf-8")
    log = tmp_path / "access.log"
    log.write_text(LINES[0] + "\n", encoding="utf-8")
    assert main(["batch", "-c", str(config), "--input", str(log), "--output", str(tmp_path / "out")]) == 2
    assert "enrich.geoip_databases[0]" in capsys.readouterr().err
