"""The batch job writes only encrypted Parquet: events and dead letters, with manifests that verify."""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
import pytest

from pipelines.batch import build_batch_pipeline
from pipelines.metrics import RunCounts
from retention.archive_reader import open_archive
from retention.encryption import ENCRYPTED_MAGIC
from retention.keyring import KeyAccessError, Keyring, WriterKeys
from retention.layout import STAGING_DIR
from retention.verify import verify_archive
from schemas.config import ArchiveConfig
from tests.retention.conftest import combined_lines, secret_values

BAD_LINES = b"203.0.113.77 alice.secret this is not a log line ssn=078-05-1120\n"


@pytest.fixture
def archive(tmp_path, archive_config):
    """Two months of logs with planted personal data and a dead letter, archived uncompressed by the batch job."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "jan.log").write_bytes(combined_lines("Jan", days=(30, 31)) + BAD_LINES)
    (logs / "feb.log").write_bytes(combined_lines("Feb", days=(1,)))
    # Uncompressed, so any plaintext value would show up verbatim in a byte scan.
    config = dataclasses.replace(archive_config, archive=ArchiveConfig(compression="none"))
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        build_batch_pipeline(
            pipeline, [str(logs / "jan.log"), str(logs / "feb.log")], str(tmp_path / "out"), config, "run1"
        )
    return tmp_path / "out"


def test_the_batch_job_writes_only_encrypted_parquet(archive):
    files = [p for p in archive.rglob("*") if p.is_file() and p.relative_to(archive).parts[0] != "reports"]
    # The graph alone (no ``run_batch`` to clear it at the end) leaves its staging folder: the aggregates' values,
    # sealed for the next stage (``pipelines.staged``); the byte scans below cover them too.
    staged = [p for p in files if p.relative_to(archive).parts[0] == STAGING_DIR]
    assert staged and all(p.suffix == ".staged" and p.parent.name == "run1" for p in staged), staged
    archived = [p for p in files if p not in staged]
    assert {p.relative_to(archive).parts[0] for p in archived} == {"events", "dead_letters"}
    assert all(p.suffix in {".parquet", ".json"} for p in archived), archived
    for path in [p for p in archived if p.suffix == ".parquet"]:
        data = path.read_bytes()
        assert data[:4] == ENCRYPTED_MAGIC and data[-4:] == ENCRYPTED_MAGIC, path
    # Capacity reports stay plaintext by design: they hold no personal data (the byte scan below covers them too).


def test_no_archive_file_contains_any_ip_user_agent_or_query_string(archive):
    found = {
        (str(path.relative_to(archive)), value)
        for path in archive.rglob("*")
        if path.is_file()
        for value in secret_values()
        if value.encode() in path.read_bytes()
    }
    assert found == set()


def test_the_reader_gets_everything_back_and_the_writer_nothing(archive, reader, archive_config):
    events = open_archive(archive, reader).to_table()
    assert events.num_rows == 60
    assert sorted(set(events["dt"].to_pylist())) == ["2026-01-30", "2026-01-31", "2026-02-01"]
    assert set(events["user_name"].to_pylist()) == {"alice.secret", "bob.hidden"}
    [dead] = open_archive(archive, reader, "dead_letters").to_table().to_pylist()
    assert dead["raw"] == BAD_LINES.rstrip(b"\n") and dead["line_number"] == 41
    with pytest.raises(KeyAccessError, match="cannot read it"):
        open_archive(archive, WriterKeys(archive_config.keys.keyring)).to_table()


def test_manifests_name_the_keys_of_each_partitions_month_and_verify(archive, reader):
    for manifest in archive.glob("events/dt=*/_manifest-run1.json"):
        month = manifest.parent.name.removeprefix("dt=")[:7]
        for entry in json.loads(manifest.read_text())["files"]:
            assert entry["key_ids"] == [f"data-{month}@v1", f"personal-{month}@v1"]
    report = verify_archive(archive, reader=reader)
    assert report.ok, report.findings
    assert report.files == 4 and report.decrypted_files == 4 and report.rows == 61


def test_a_destroyed_month_is_refused_by_the_writer_and_reported_as_shredded(archive, archive_config, reader):
    Keyring(archive_config.keys.keyring).destroy_period("2026-01")
    report = verify_archive(archive, reader=reader)
    assert report.ok and report.shredded_partitions == 2
    assert open_archive(archive, reader).count_rows() == 20
    with pytest.raises(KeyAccessError, match="refusing to write new 2026-01 data"):
        WriterKeys(archive_config.keys.keyring).current_ids("2026-01")
    # Re-reading January's log (a late line, an old file) is not an error: its lines are counted as
    # expired and never written (issue 18), so the month stays shredded.
    pipeline = beam.Pipeline(runner="FnApiRunner")
    log = archive.parent / "logs" / "jan.log"
    build_batch_pipeline(pipeline, [str(log)], str(archive), archive_config, "run2")
    result = pipeline.run()
    result.wait_until_finish()
    counts = RunCounts.from_result(result)
    assert counts.lines_expired == counts.lines_read - counts.lines_dead_lettered > 0 and counts.balanced
    assert counts.rows_written == 0
    assert not list(archive.glob("*/dt=2026-01-*/part-run2-*"))
