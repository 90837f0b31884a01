"""Search over an archive written by ``logwarden batch``: right rows, pruning, the blind index, early stops."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from retention.access import blind_index
from retention.access.alert_records import rule_windows
from retention.access.catalog import published_files
from retention.access.search import EventQuery, SearchError, SearchStats, search_events
from retention.archive_reader import open_archive
from tests.access.conftest import ATTACKER, NEIGHBOUR, RARE, SUBJECT

JAN = (dt.date(2026, 1, 1), dt.date(2026, 1, 31))


def _all_events(archive) -> pa.Table:
    return open_archive(archive.root, archive.keys("custodian")).to_table()


def _search(archive, role="security", **kwargs) -> tuple[pa.Table, SearchStats]:
    limit = kwargs.pop("limit", None)
    stats = SearchStats()
    query = EventQuery(*kwargs.pop("days", JAN), **kwargs)
    tables = list(search_events(archive.root, archive.keys(role), query, limit=limit, stats=stats))
    return (pa.concat_tables(tables) if tables else pa.table({})), stats


def _expected(archive, mask) -> list:
    table = _all_events(archive)
    return sorted(table.filter(mask(table)).column("log_offset").to_pylist())


def test_one_ip_finds_exactly_its_events_in_any_spelling_and_never_the_neighbours(archive):
    found, _ = _search(archive, ips=(SUBJECT["ip"],))
    assert sorted(found.column("log_offset").to_pylist()) == _expected(
        archive, lambda t: pc.equal(t.column("source_ip"), SUBJECT["ip"])
    )
    assert set(found.column("source_ip").to_pylist()) == {SUBJECT["ip"]}
    assert found.num_rows == 33  # every 37th line of 3 x 400
    net, _ = _search(archive, ips=("192.0.2.0/26",))
    assert set(net.column("source_ip").to_pylist()) == {SUBJECT["ip"], NEIGHBOUR["ip"]}


def test_user_path_prefix_and_status_combine_as_and(archive):
    found, _ = _search(archive, users=("dave",), path_prefix="/docs", statuses=(404,))
    assert sorted(found.column("log_offset").to_pylist()) == _expected(
        archive,
        lambda t: pc.and_(
            pc.and_(pc.equal(t.column("user_name"), "dave"), pc.starts_with(t.column("url_path"), "/docs")),
            pc.equal(t.column("http_response_status_code"), 404),
        ),
    )
    assert found.num_rows > 0


def test_days_outside_the_range_are_never_opened(archive):
    found, stats = _search(archive, days=(dt.date(2026, 1, 6), dt.date(2026, 1, 6)), statuses=(200,))
    assert stats.partitions == 1 and stats.files == 1
    assert {t.date() for t in found.column("timestamp").to_pylist()} == {dt.date(2026, 1, 6)}


def test_the_blind_index_is_built_once_then_answers_with_few_row_groups_and_no_plaintext(archive):
    _, first = _search(archive, ips=(RARE,))
    assert first.indexes_built == 3 and first.indexes_used == 0
    found, second = _search(archive, ips=(RARE,))
    assert second.indexes_used == 3 and second.indexes_built == 0
    assert second.row_groups > 12 and second.row_groups_decrypted == 3  # one row group per day, as the index says
    assert found.num_rows == 3 and set(found.column("source_ip").to_pylist()) == {RARE}
    for file in published_files(archive.root, "events"):
        data = file.index_path.read_bytes()
        for value in (ATTACKER, SUBJECT["ip"], SUBJECT["user"], "dave"):
            assert value.encode() not in data
        assert blind_index.read_header(data)["sha256"] == file.entry["sha256"]


def test_an_index_that_does_not_match_its_file_is_ignored_and_the_answer_stays_right(archive):
    _search(archive, ips=(ATTACKER,))
    files = list(published_files(archive.root, "events"))
    indexes = [f.index_path.read_bytes() for f in files]
    for file, index in zip(files, indexes[1:] + indexes[:1]):
        file.index_path.write_bytes(index)  # each file gets its neighbour's (valid, but for another file)
    found, stats = _search(archive, ips=(ATTACKER,))
    assert found.num_rows == 21 and stats.indexes_used == 0


def test_limit_stops_reading_once_enough_rows_were_found(archive):
    found, stats = _search(archive, statuses=(200,), limit=5)
    assert found.num_rows == 5 and stats.stopped_early
    assert stats.files == 1 and stats.row_groups_decrypted == 1


def test_rule_finds_the_events_behind_its_alerts(archive):
    windows = rule_windows(archive.root, "http-sqli", *JAN, archive.keys("security"))
    assert windows and {w.value for w in windows} == {ATTACKER}
    found, _ = _search(archive, windows=windows, from_rule=True)
    assert set(found.column("source_ip").to_pylist()) == {ATTACKER}
    assert found.num_rows == len(windows)
    nothing, _ = _search(archive, windows=(), from_rule=True)
    assert nothing.num_rows == 0


def test_bad_queries_are_refused_before_reading(archive):
    with pytest.raises(SearchError, match="neither an address"):
        EventQuery(*JAN, ips=("not-an-ip",))
    with pytest.raises(SearchError, match="before --from"):
        EventQuery(dt.date(2026, 2, 1), dt.date(2026, 1, 1))


def _cli(archive, *args, env_extra=None):
    config = archive.root.parent / "logwarden.yaml"
    config.write_text(
        f"keys: {{keyring: {archive.config.keys.keyring}, root_key_file: {archive.config.keys.root_key_file}}}\n"
        f"access: {{role_keys_dir: {archive.config.access.role_keys_dir}}}\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_search_streams_jsonl_and_refuses_roles_and_missing_reasons(archive):
    base = ["search", "--archive", str(archive.root), "--from", "2026-01-01", "--to", "2026-01-31"]
    ok = _cli(archive, *base, "--role", "security", "--reason", "INC-1", "--ip", SUBJECT["ip"], "--format", "jsonl")
    assert ok.returncode == 0, ok.stderr
    rows = [json.loads(line) for line in ok.stdout.splitlines()]
    assert len(rows) == 33 and {r["source_ip"] for r in rows} == {SUBJECT["ip"]}
    assert "33 event(s)" in ok.stderr

    refused = _cli(archive, *base, "--role", "planner", "--reason", "curious", "--ip", SUBJECT["ip"])
    assert refused.returncode == 2 and refused.stdout == ""
    assert "role 'planner' may not search" in refused.stderr and "Traceback" not in refused.stderr
    no_reason = _cli(archive, *base, "--role", "security", "--ip", SUBJECT["ip"])
    assert no_reason.returncode == 2 and "--reason is required" in no_reason.stderr
    unknown = _cli(archive, *base, "--role", "intern", "--reason", "x")
    assert unknown.returncode == 2 and "unknown role 'intern'" in unknown.stderr
