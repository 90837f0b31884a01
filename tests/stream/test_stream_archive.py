"""A directory written by ``logwarden stream`` is an archive like batch's: every other command works on it.

One stream run over the access fixture's generated logs (a known subject among
many visitors, an attacker, an error log, garbage lines), then, as an operator
would, through the CLI: a batch over the same files archives nothing twice,
``archive verify --deep`` finds every manifest signed and every file readable,
``search`` and ``subject export`` find exactly what a batch archive of the same
logs holds, ``subject erase`` removes exactly the subject, ``retention apply``
moves the days to the archive tier, where ``search --tier all`` still finds them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from retention import commit
from retention.archive_reader import open_archive
from retention.keyring import init_keyring, reader_keys
from retention.ledger import Ledger
from retention.role_keys import add_role, grant
from schemas.config import AccessConfig, ArchiveConfig, Config, KeysConfig, StreamConfig
from tests.access.conftest import ROLES, SUBJECT, access_log, error_log
from tests.stream.test_stream_pipeline import run_until

#: A year-old log: past ``archive_days`` for ``retention apply``, so its month is deleted and shredded.
OLD = "".join(
    f'198.51.100.7 - - [10/Jan/2025:08:00:0{n} +0000] "GET /old/{n} HTTP/1.1" 200 512 "-" "curl/8.5"\n'
    for n in range(5)
)
SUBJECT_ARGS = ("--user", SUBJECT["user"], "--ip", SUBJECT["ip"], "--email", SUBJECT["email"])


def _config(base: Path) -> Config:
    keys = KeysConfig(keyring=str(base / "keyring"), root_key_file=str(base / "root.key"))
    return dataclasses.replace(
        Config(),
        keys=keys,
        archive=ArchiveConfig(row_group_rows=50),
        access=AccessConfig(role_keys_dir=str(base / "roles")),
        stream=StreamConfig(state_key_file=str(base / "state.key"), cut_seconds=1.0, progress_seconds=60),
    )


def _cli(base: Path, *args: str) -> subprocess.CompletedProcess:
    config = base / "logwarden.yaml"
    config.write_text(
        f"keys: {{keyring: {base / 'keyring'}, root_key_file: {base / 'root.key'}}}\n"
        f"access: {{role_keys_dir: {base / 'roles'}}}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args, "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _search(base: Path, root: Path, *args: str, month: str = "2026-01") -> list[str]:
    """``logwarden search`` over one month (January 2026) as the security role, as JSON lines."""
    done = _cli(base, "search", "--archive", str(root), "--role", "security", "--reason", "case-7",
                "--from", f"{month}-01", "--to", f"{month}-31", "--format", "jsonl", *args)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return sorted(line for line in done.stdout.splitlines() if line.strip())


def _rows(out: Path, keys, dataset: str) -> int:
    try:
        return open_archive(out, keys, dataset).count_rows()
    except Exception:
        return 0


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """The stream's archive of the fixture logs, and a batch archive of the same logs to compare with."""
    base = tmp_path_factory.mktemp("stream-archive")
    config = _config(base)
    init_keyring(config.keys.keyring, config.keys.root_key_file, environ={})
    custodian = reader_keys(config.keys.keyring, config.keys.root_key_file, environ={})
    for role in ROLES:
        add_role(config.keys.keyring, role, base / "roles" / f"{role}.key")
        if role != "planner":
            grant(custodian, role)
    logs = base / "logs"
    logs.mkdir()
    text, subject_lines = access_log(random.Random(12))
    garbage = f"garbage from {SUBJECT['ip']} that is no log line\nnoise 192.0.2.44x here\n"
    (logs / "access.log").write_text(text + garbage)
    (logs / "error.log").write_text(error_log())
    (logs / "old.log").write_text(OLD)
    lines = (text + garbage).count("\n") + error_log().count("\n") + OLD.count("\n")
    out = base / "out"

    def all_archived() -> bool:
        return sum(_rows(out, custodian, d) for d in ("events", "errors", "dead_letters")) >= lines

    run_until([str(logs / "*.log")], out, config, all_archived, timeout=120)
    batch_out = base / "batch"
    run_batch([str(p) for p in sorted(logs.iterdir())], str(batch_out), config, pipeline_options([], config.runner))
    return base, out, batch_out, custodian, lines, subject_lines


def test_each_cut_is_a_ledger_transaction_and_a_batch_over_the_same_files_archives_nothing_twice(streamed):
    base, out, _, custodian, lines, _ = streamed
    records = [r for r in commit.completed_transactions(str(out)).values() if r.get("kind") == "stream"]
    assert records and all(r["inputs"] or r["alert_ids"] or r["lines_read"] == 0 for r in records)
    assert sum(r["lines_read"] for r in records) == lines
    ledger = Ledger.load(str(out))
    access = (base / "logs" / "access.log").stat().st_size
    ends = sorted(h.archived()[0] for h in ledger.histories.values())
    assert ends == sorted([access, (base / "logs" / "error.log").stat().st_size, len(OLD)])
    before = {d: _rows(out, custodian, d) for d in ("events", "errors", "dead_letters", "alerts")}
    done = _cli(base, "batch", "-i", *(str(p) for p in sorted((base / "logs").iterdir())), "-o", str(out))
    assert done.returncode in (0, 1), done.stderr  # 1: nothing new parsed, by the batch command's rule
    assert "already archived by run" in done.stdout + done.stderr
    assert {d: _rows(out, custodian, d) for d in before} == before


def test_verify_deep_finds_every_manifest_signed_and_every_file_readable(streamed):
    base, out, *_ = streamed
    done = _cli(base, "archive", "verify", "--deep", "--role", "ops", "--reason", "stream check", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not signed" not in done.stdout + done.stderr
    assert not list(out.glob("alerts/*.jsonl")), "no plaintext alerts at rest"


def test_search_and_subject_export_find_what_a_batch_archive_of_the_same_logs_holds(streamed, tmp_path):
    base, out, batch_out, *_ = streamed
    found = {}
    for name, root in (("stream", out), ("batch", batch_out)):
        rows = [json.loads(line) for line in _search(base, root, "--ip", SUBJECT["ip"])]
        exported = tmp_path / f"{name}.jsonl"
        done = _cli(base, "subject", "export", "--archive", str(root), "--role", "privacy", "--reason", "DSR-1",
                    *SUBJECT_ARGS, "--output", str(exported))  # fmt: skip
        assert done.returncode == 0, done.stderr
        by_dataset: dict[str, int] = {}
        for record in map(json.loads, exported.read_text().splitlines()):
            by_dataset[record["dataset"]] = by_dataset.get(record["dataset"], 0) + 1
        found[name] = (sorted((r["log_offset"], r["url_original"]) for r in rows), by_dataset)
    assert found["stream"][0] and found["stream"] == found["batch"]
    assert found["stream"][1]["errors"] == 2 and found["stream"][1]["dead_letters"] == 1


def test_subject_erase_then_retention_apply_work_on_the_stream_archive(streamed):
    base, out, _, custodian, *_ = streamed
    events = _rows(out, custodian, "events")
    done = _cli(base, "subject", "erase", "--archive", str(out), "--role", "privacy", "--reason", "DSR-2",
                *SUBJECT_ARGS, "--yes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _search(base, out, "--ip", SUBJECT["ip"]) == []
    erased = events - _rows(out, custodian, "events")
    assert erased > 0

    def five_hundreds(*tier: str) -> list[str]:
        return _search(base, out, "--status", "5xx", *tier)

    online = five_hundreds()
    assert len(online) == 21  # the attacker's 500s, seven a day
    assert len(_search(base, out, month="2025-01")) == 5
    moved = _cli(base, "retention", "apply", "--archive", str(out), "--now", "2026-06-01", "--role", "ops",
                 "--reason", "nightly")  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert _rows(out, custodian, "events") == 0, "every day is past online_days: moved to the archive tier"
    assert five_hundreds() == [] and five_hundreds("--tier", "all") == online
    assert _search(base, out, "--tier", "all", month="2025-01") == [], "past archive_days: deleted and shredded"
    assert "2025-01" in custodian.keyring.destroyed()
    verify = _cli(base, "archive", "verify", "--deep", "--role", "ops", "--reason", "stream check", str(out))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_stream_over_files_a_batch_archived_reads_on_from_where_the_batch_stopped(tmp_path, archive_config, reader):
    logs = tmp_path / "logs"
    logs.mkdir()
    text, _ = access_log(random.Random(3))
    lines = text.splitlines(keepends=True)
    (logs / "access.log").write_text("".join(lines[:500]))
    out = tmp_path / "out"
    config = dataclasses.replace(
        archive_config,
        stream=StreamConfig(state_key_file=str(tmp_path / "state.key"), cut_seconds=1.0, progress_seconds=60),
    )
    run_batch([str(logs / "access.log")], str(out), config, pipeline_options([], config.runner))
    with open(logs / "access.log", "a") as fh:
        fh.write("".join(lines[500:800]))
    run_until([str(logs / "*.log")], out, config, lambda: _rows(out, reader, "events") >= 800, timeout=90)
    offsets = open_archive(out, reader, "events").to_table(columns=["log_offset"])["log_offset"].to_pylist()
    assert len(offsets) == len(set(offsets)) == 800, "the batch's 500 lines, then the stream's 300, each once"
    (history,) = Ledger.load(str(out)).histories.values()
    assert history.archived() == ((logs / "access.log").stat().st_size, 800)
    assert len(history.runs) == 2
