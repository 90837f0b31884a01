"""The Beam batch pipeline end to end: files in, encrypted Parquet by day and dead letters out, counts exact."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from parsers.lines import LineChunk
from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from pipelines.parse import ACCESS, DEAD_LETTERS, ParseChunks
from retention.archive_reader import open_archive
from retention.encryption import ArchiveDecryptor
from schemas import ACCESS_EVENT, schema_version_of
from schemas.config import Config

LINE = '198.51.100.{n} - - [0{d}/Nov/2026:23:59:5{n} +0000] "GET /page/{n} HTTP/1.1" 200 {n}0 "-" "agent/{n}"'


def run(inputs, output, config: Config, **kwargs):
    return run_batch([str(p) for p in inputs], str(output), config, pipeline_options([], config.runner), **kwargs)


def test_parse_chunks_routes_events_and_dead_letters():
    chunks = [
        LineChunk("/a.log", 0, 1, (LINE.format(n=1, d=1) + "\nnot a log line\n").encode(), "combined"),
        LineChunk("/a.log", 500, 3, (LINE.format(n=2, d=2) + "\n").encode(), "combined"),
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        parsed = p | beam.Create(chunks) | ParseChunks()
        urls = parsed[ACCESS] | "Urls" >> beam.FlatMap(lambda b: b.column("url_path").to_pylist())
        reasons = parsed[DEAD_LETTERS] | "Lines" >> beam.FlatMap(
            lambda b: zip(b.column("line_number").to_pylist(), b.column("log_offset").to_pylist())
        )
        assert_that(urls, equal_to(["/page/1", "/page/2"]), label="events")
        assert_that(reasons, equal_to([(2, len(LINE.format(n=1, d=1)) + 1)]), label="dead letters")


def test_every_parsed_batch_carries_its_earliest_event_time_as_its_beam_timestamp():
    """Windowing and watermarks downstream follow the log's clock (the same graph serves the stream)."""
    chunks = [
        LineChunk("/a.log", 0, 1, (LINE.format(n=3, d=2) + "\n" + LINE.format(n=1, d=1) + "\n").encode(), "combined"),
        LineChunk("/a.log", 500, 3, b"no time here\n", "combined"),
    ]
    with TestPipeline(runner="FnApiRunner") as p:
        parsed = p | beam.Create(chunks) | ParseChunks()
        stamped = parsed[ACCESS] | "When" >> beam.Map(lambda b, t=beam.DoFn.TimestampParam: t.to_utc_datetime())
        assert_that(stamped, equal_to([dt.datetime(2026, 11, 1, 23, 59, 51)]), label="events")


def test_sample_logs_are_archived_by_day_with_nothing_lost(examples, tmp_path, archive_config, reader):
    out = tmp_path / "out"
    result = run([examples / "logs"], out, archive_config, dead_letter_jsonl=str(tmp_path / "dead"))
    counts = result.counts
    assert counts.files_read == 2
    assert counts.lines_read == 4002 and counts.lines_parsed == 4000 and counts.lines_dead_lettered == 2
    assert counts.balanced and counts.rows_written == 4000 and counts.dead_letters_written == 2

    days = sorted(p.name for p in (out / "events").iterdir())
    assert days == ["dt=2026-10-31", "dt=2026-11-01"]
    table = open_archive(out, reader).to_table()
    assert table.num_rows == 4000
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    decryption = ArchiveDecryptor(reader).file_properties()
    for day_dir in (out / "events").iterdir():
        for part in day_dir.glob("*.parquet"):
            parquet = pq.ParquetFile(part, decryption_properties=decryption)
            assert schema_version_of(parquet.schema_arrow) == "1"
            assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
            day = day_dir.name.removeprefix("dt=")
            stamps = parquet.read(columns=["timestamp"]).column(0)
            assert {t.strftime("%Y-%m-%d") for t in stamps.to_pylist()} == {day}

    archived = open_archive(out, reader, "dead_letters").to_table().to_pylist()
    assert [d["line_number"] for d in archived] == [1001, 1002]
    dead = [json.loads(line) for f in (tmp_path / "dead").glob("*.jsonl") for line in f.open()]
    assert [d["line_number"] for d in dead] == [1001, 1002]
    assert all(d["log_file_path"].endswith("access.log.1.gz") and d["reason"] for d in dead)
    assert not list(out.glob(".tmp/*")), "temporary files must not survive a finished run"


def test_manifest_lists_every_file_with_checksum_and_rows(examples, tmp_path, archive_config):
    import hashlib

    run([examples / "logs" / "access.log"], tmp_path / "out", archive_config)
    [partition] = (tmp_path / "out" / "events").iterdir()
    [manifest_path] = partition.glob("_manifest-*.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["rows"] == 2000 and manifest["schema_version"] == "1"
    for entry in manifest["files"]:
        data = (partition / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
        assert entry["min_timestamp"] <= entry["max_timestamp"]
        assert entry["key_ids"] == ["data-2026-11@v1", "personal-2026-11@v1"]


def test_a_rerun_adds_nothing_and_a_reprocess_adds_files_instead_of_overwriting(
    examples, tmp_path, archive_config, reader
):
    first = run([examples / "logs" / "access.log"], tmp_path / "out", archive_config)
    again = run([examples / "logs" / "access.log"], tmp_path / "out", archive_config)
    assert again.counts.lines_read == 0 and again.counts.files_written == 0
    assert [o.message() for o in again.inputs] == [f"access.log: already archived by run {first.run_id}; 0 new lines"]
    assert open_archive(tmp_path / "out", reader).count_rows() == 2000
    run([examples / "logs" / "access.log"], tmp_path / "out", archive_config, reprocess=True)
    assert open_archive(tmp_path / "out", reader).count_rows() == 4000


def test_empty_file_random_bytes_and_truncated_gzip_are_accounted(tmp_path, archive_config):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "empty.log").write_bytes(b"")
    (logs / "noise.log").write_bytes(bytes(range(256)) * 40 + b"\n" + LINE.format(n=3, d=3).encode() + b"\n")
    body = "\n".join(LINE.format(n=i % 10, d=4) for i in range(3000)).encode() + b"\n"
    (logs / "cut.log.gz").write_bytes(gzip.compress(body)[:-40])
    result = run([logs], tmp_path / "out", archive_config)
    c = result.counts
    assert c.files_read == 3 and c.files_truncated == 1
    assert c.balanced and c.lines_read == c.lines_parsed + c.lines_dead_lettered
    assert 2900 < c.lines_parsed < 3001


def test_real_apache_log_conformance(corpora, tmp_path, archive_config, reader):
    """10,000 real lines: all parsed, the one cut inside its user agent recovered and flagged."""
    log = corpora / "elastic-examples" / "apache_logs" / "apache_logs"
    result = run([log], tmp_path / "out", archive_config)
    assert result.counts.lines_read == 10_000 and result.counts.lines_parsed == 10_000
    table = open_archive(tmp_path / "out", reader).to_table()
    assert table.num_rows == 10_000
    assert table.schema.field("http_response_status_code").type == ACCESS_EVENT.field("http_response_status_code").type
    statuses = dict(zip(*pc.value_counts(table["http_response_status_code"]).flatten()))
    statuses = {k.as_py(): v.as_py() for k, v in statuses.items()}
    assert statuses == {200: 9126, 304: 445, 404: 213, 301: 164, 206: 45, 500: 3, 416: 2, 403: 2}
    cut = table.filter(pc.is_valid(table["log_flags"])).to_pylist()
    assert len(cut) == 1 and cut[0]["log_flags"] == ["truncated"]
    assert cut[0]["source_ip"] == "46.118.127.106" and cut[0]["url_original"] == "/scripts/grok-py-test/configlib.py"
    assert cut[0]["user_agent_original"].startswith("Mozilla/5.0 (compatible; Googlebot/2.1")
    first = table.sort_by("log_offset").slice(0, 1).to_pylist()[0]
    assert first["source_ip"] == "83.149.9.216" and first["http_response_body_bytes"] == 203023
    assert first["timestamp"].isoformat() == "2015-05-17T10:05:03+00:00"


@pytest.mark.parametrize("runner", ["FnApiRunner", "BundleBasedDirectRunner"])
def test_same_results_on_both_local_runners(examples, tmp_path, runner, archive_config, reader):
    import dataclasses

    from schemas.config import RunnerConfig

    config = dataclasses.replace(archive_config, runner=RunnerConfig(name=runner))
    result = run([examples / "logs"], tmp_path / "out", config)
    assert result.counts.lines_parsed == 4000
    assert open_archive(tmp_path / "out", reader).count_rows() == 4000
