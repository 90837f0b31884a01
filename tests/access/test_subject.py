"""Subject requests on an archive written by batch: export exactly the subject, erase exactly them, atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from retention import commit as commits
from retention.access import subject as requests
from retention.access.catalog import published_files
from retention.access.search import open_file
from retention.audit import AuditLog
from retention.encryption import ArchiveDecryptor
from tests.access.conftest import NEIGHBOUR, SUBJECT

ME = requests.Subject(users=(SUBJECT["user"],), ips=(SUBJECT["ip"],), emails=(SUBJECT["email"],))
DATASETS = ("events", "errors", "dead_letters", "alerts")


def _tables(archive, keys) -> dict[str, pa.Table]:
    """Every file's decrypted rows, by dataset and file name."""
    decryptor = ArchiveDecryptor(keys)
    return {
        f"{dataset}/{file.day}/{file.path.name}": open_file(file, decryptor).read()
        for dataset in DATASETS
        for file in published_files(archive.root, dataset)
    }


def _is_subjects(dataset: str, row: dict) -> bool:
    """The test's own, independent idea of the subject's rows (plain Python on decrypted rows)."""
    if dataset == "events":
        return (
            row["source_ip"] == SUBJECT["ip"]
            or row["user_name"] == SUBJECT["user"]
            or "carol%40example.org" in (row["url_original"] or "")
        )
    if dataset == "errors":
        return f"client {SUBJECT['ip']}:" in (row["message"] or "") or row["source_ip"] == SUBJECT["ip"]
    if dataset == "alerts":  # alerts live in the encrypted alerts dataset (issue 18)
        return row["source_ip"] == SUBJECT["ip"] or row["user_name"] == SUBJECT["user"]
    return f" {SUBJECT['ip']} ".encode() in row["raw"]


def _subjects_alerts(archive) -> list[dict]:
    from retention.alert_store import read_alerts

    return [a for a in read_alerts(archive.root, archive.keys("custodian")) if a.get("source_ip") == SUBJECT["ip"]]


def _expected(tables) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, table in tables.items():
        dataset = name.split("/")[0]
        counts[dataset] = counts.get(dataset, 0) + sum(_is_subjects(dataset, row) for row in table.to_pylist())
    return counts


def test_the_subjects_rows_are_found_in_every_dataset_and_nobody_elses(archive):
    keys = archive.keys("privacy")
    expected = _expected(_tables(archive, keys))
    assert expected == {"events": archive.subject_access_lines, "errors": 2, "dead_letters": 1, "alerts": 1}
    found: dict[str, int] = {}
    for item in requests.find(archive.root, keys, ME):
        found[item.file.dataset] = found.get(item.file.dataset, 0) + item.matched
        rows = requests.read_matches(item, keys).to_pylist()
        assert all(_is_subjects(item.file.dataset, row) for row in rows)
        assert not any(NEIGHBOUR["user"] == row.get("user_name") for row in rows)
    assert found == expected
    alerts = _subjects_alerts(archive)
    assert [a["rule_id"] for a in alerts] == ["error-invalid-uri"]  # their invalid URIs raised one; not the attacker's


def test_one_identifier_alone_finds_only_what_it_names(archive):
    only_ip = requests.Subject(ips=(SUBJECT["ip"],))
    found: dict[str, int] = {}
    for item in requests.find(archive.root, archive.keys("privacy"), only_ip):
        found[item.file.dataset] = found.get(item.file.dataset, 0) + item.matched
    assert found["events"] == 33 and found["errors"] == 2 and found["dead_letters"] == 1
    with pytest.raises(requests.SubjectError, match="at least one"):
        requests.Subject()
    with pytest.raises(requests.SubjectError, match="not an IP address"):
        requests.Subject(ips=("192.0.2.0/24",))


def _cli(archive, *args):
    config = archive.root.parent / "logwarden.yaml"
    config.write_text(
        f"keys: {{keyring: {archive.config.keys.keyring}, root_key_file: {archive.config.keys.root_key_file}}}\n"
        f"access: {{role_keys_dir: {archive.config.access.role_keys_dir}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


SUBJECT_ARGS = ("--user", SUBJECT["user"], "--ip", SUBJECT["ip"], "--email", SUBJECT["email"])


def test_export_writes_exactly_the_subjects_records_and_audits_counts_only(archive, tmp_path):
    out = tmp_path / "carol.jsonl"
    done = _cli(
        archive, "subject", "export", "--archive", str(archive.root), "--role", "privacy", "--reason", "DSR-1",
        *SUBJECT_ARGS, "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_dataset: dict[str, int] = {}
    for record in records:
        by_dataset[record["dataset"]] = by_dataset.get(record["dataset"], 0) + 1
    alerts = len(_subjects_alerts(archive))
    assert by_dataset == {"events": archive.subject_access_lines, "errors": 2, "dead_letters": 1, "alerts": alerts}
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    summary = json.loads((tmp_path / "carol.jsonl.summary.json").read_text())
    assert summary["searched"]["events"]["rows"] == 1200 + 0 and summary["matched"]["events"] == 60
    trail = (archive.root / "_audit" / "audit.jsonl").read_text()
    for value in SUBJECT.values():
        assert value not in trail and value.replace("@", "%40") not in trail

    refused = _cli(
        archive, "subject", "export", "--archive", str(archive.root), "--role", "security", "--reason", "curious",
        *SUBJECT_ARGS, "--output", str(tmp_path / "no.jsonl"),
    )  # fmt: skip
    assert refused.returncode == 2 and "role 'security' may not subject" in refused.stderr
    assert not (tmp_path / "no.jsonl").exists()
    entries = list(AuditLog(archive.root / "_audit" / "audit.jsonl", None).entries())
    assert [e["result"] for e in entries if e["command"] == "subject export"] == ["started", "ok", "started", "refused"]


def test_erase_removes_exactly_the_subjects_rows_and_leaves_everyone_else_byte_identical(archive):
    custodian = archive.keys("custodian")
    before = _tables(archive, custodian)
    expected = _expected(before)
    done = _cli(
        archive, "subject", "erase", "--archive", str(archive.root), "--role", "privacy", "--reason", "DSR-2",
        *SUBJECT_ARGS, "--yes",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = _tables(archive, custodian)
    assert _expected(after) == {"events": 0, "errors": 0, "dead_letters": 0, "alerts": 0}
    assert _subjects_alerts(archive) == [] and list(requests.find_alerts(archive.root, ME)) == []
    for dataset in DATASETS:
        kept_before = [
            row for name, t in sorted(before.items()) if name.startswith(dataset + "/") for row in t.to_pylist()
            if not _is_subjects(dataset, row)
        ]  # fmt: skip
        kept_after = [
            row for name, t in sorted(after.items()) if name.startswith(dataset + "/") for row in t.to_pylist()
        ]
        assert kept_after == kept_before  # everyone else's rows, every field, in order
        rows_before = sum(t.num_rows for n, t in before.items() if n.startswith(dataset + "/"))
        rows_after = sum(t.num_rows for n, t in after.items() if n.startswith(dataset + "/"))
        assert rows_before - rows_after == expected[dataset]
    # per-file counts as printed: every rewritten file lost exactly its matched rows
    lines = [line.split() for line in done.stdout.splitlines()[1:]]
    assert {line[0] for line in lines} == set(DATASETS)
    assert all(int(line[2]) - int(line[3]) == int(line[4]) for line in lines)
    # the search index of a rewritten file is fresh, and finds nobody
    found = list(requests.find(archive.root, archive.keys("privacy"), ME))
    assert found == []
    assert subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "audit", "verify", "--archive", str(archive.root)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).returncode == 0  # fmt: skip
    verify = _cli(archive, "archive", "verify", str(archive.root))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_redact_corrects_one_field_of_the_subjects_rows_only(archive):
    keys = archive.keys("privacy")
    found = [f for f in requests.find(archive.root, keys, ME) if f.file.dataset == "events"]
    changes = requests.rewrite(
        keys, found, requests.redact_rows("user_agent_original", "(corrected)"), "t-1", archive.config.archive
    )
    assert changes and all(c.rows_after == c.rows_before for c in changes)
    table = pa.concat_tables(_tables(archive, keys)[n] for n in _tables(archive, keys) if n.startswith("events/"))
    mine = np.array([_is_subjects("events", row) for row in table.to_pylist()])
    agents = np.array(table.column("user_agent_original").to_pylist(), dtype=object)
    assert set(agents[mine]) == {"(corrected)"} and "(corrected)" not in set(agents[~mine])
    with pytest.raises(requests.SubjectError, match="only text fields"):
        requests.check_redactable("http_response_status_code", None)


def _partitions(archive, keys) -> dict[tuple[str, str], tuple[set[str], int, int]]:
    """Per (dataset, day): the live file names, the rows, and how many of them are the subject's."""
    decryptor = ArchiveDecryptor(keys)
    state: dict[tuple[str, str], tuple[set[str], int, int]] = {}
    for dataset in DATASETS:
        for file in published_files(archive.root, dataset):
            rows = open_file(file, decryptor).read().to_pylist()
            names, total, mine = state.get((dataset, file.day), (set(), 0, 0))
            mine += sum(_is_subjects(dataset, row) for row in rows)
            state[(dataset, file.day)] = (names | {file.path.name}, total + len(rows), mine)
    return state


@pytest.mark.parametrize("step", commits.STEPS)
def test_a_kill_during_erase_leaves_each_partition_old_or_new_and_a_rerun_converges(archive, step):
    custodian = archive.keys("custodian")
    before = _partitions(archive, custodian)
    script = f"""
import os
from retention.access import subject as requests
from retention.role_keys import role_keys
from schemas.config import ArchiveConfig
keyring, secret = {archive.config.keys.keyring!r}, {archive.config.access.role_keys_dir + "/privacy.key"!r}
keys = role_keys(keyring, "privacy", secret, {{}})
me = requests.Subject({(SUBJECT["user"],)!r}, {(SUBJECT["ip"],)!r}, {(SUBJECT["email"],)!r})
def hook(step, detail):
    if step == {step!r}:
        os._exit(9)  # as abrupt as kill -9: no cleanup, no lease released by Python
requests.rewrite(keys, list(requests.find({str(archive.root)!r}, keys, me)), requests.erase_rows, "kill-1",
                 ArchiveConfig(row_group_rows=50), hook=hook)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", script], env=env, timeout=120).returncode == 9
    during = _partitions(archive, custodian)
    assert set(during) == set(before)
    new_partitions = 0
    for key, (names, rows, mine) in during.items():
        old_names, old_rows, old_mine = before[key]
        if names == old_names:
            assert (rows, mine) == (old_rows, old_mine)  # untouched: the old state, whole
        else:
            assert not names & old_names and (rows, mine) == (old_rows - old_mine, 0)  # the new state, whole
            new_partitions += 1
    assert new_partitions == (1 if step in (commits.COMMITTED, commits.RETIRED) else 0)

    commits.recover(str(archive.root))
    verify = _cli(archive, "archive", "verify", str(archive.root))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    keys = archive.keys("privacy")
    requests.rewrite(
        keys, list(requests.find(archive.root, keys, ME)), requests.erase_rows, "rerun-1", archive.config.archive
    )
    final = _partitions(archive, custodian)
    assert {k: (rows, mine) for k, (_n, rows, mine) in final.items()} == {
        k: (rows - mine, 0) for k, (_n, rows, mine) in before.items()
    }


def test_after_retention_moves_days_to_the_archive_tier_search_all_and_erase_still_find_exactly_them(archive):
    security = archive.keys("security")
    online_before, _ = _search_rows(archive, security, "online")
    moved = _cli(
        archive, "retention", "apply", "--archive", str(archive.root), "--now", "2026-06-01", "--role", "ops",
        "--reason", "nightly",
    )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert _search_rows(archive, security, "online")[0] == []
    rows, stats = _search_rows(archive, security, "all")
    assert rows == online_before and stats.files >= 1
    keys = archive.keys("privacy")
    found = list(requests.find(archive.root, keys, ME))
    assert found and all(f.file.compacted for f in found if f.file.dataset == "events")
    assert sum(f.matched for f in found if f.file.dataset == "events") == archive.subject_access_lines
    requests.rewrite(keys, found, requests.erase_rows, "erase-archive-tier", archive.config.archive)
    assert list(requests.find(archive.root, keys, ME)) == []
    assert _search_rows(archive, security, "all")[0] == []
    verify = _cli(archive, "archive", "verify", str(archive.root))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _search_rows(archive, keys, tier):
    import datetime as dt

    from retention.access.search import EventQuery, SearchStats, search_events

    stats = SearchStats()
    query = EventQuery(dt.date(2026, 1, 1), dt.date(2026, 1, 31), ips=(SUBJECT["ip"],))
    tables = list(search_events(archive.root, keys, query, tier=tier, stats=stats))
    rows = sorted(r["log_offset"] for t in tables for r in t.select(["log_offset"]).to_pylist())
    return rows, stats
