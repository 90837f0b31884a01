"""The audit trail: every way of tampering with it is caught, and what audited commands write into it."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from pipelines.cli import main
from retention import audit
from retention.audit import AuditError, AuditLog, AuditRefusal, entry_hash, open_log, verify_log

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def trail(tmp_path, entries: int = 5, key: bytes = KEY) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", key)
    for n in range(entries):
        log.record(f"search {n}", "security", f"ticket {n}", rows=n, files=[{"path": f"f{n}", "rows": n}])
    return log


def lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def rewrite(log: AuditLog, new_lines: list[bytes]) -> None:
    log.path.write_bytes(b"".join(new_lines))


def doc(line: bytes) -> dict:
    return json.loads(line)


def as_line(entry: dict) -> bytes:
    return json.dumps(entry).encode() + b"\n"


def errors(log: AuditLog, key: bytes | None = KEY, head: str | None = None) -> list[str]:
    return [f.message for f in verify_log(log.path, key, head).errors]


def test_an_untouched_trail_verifies_and_names_its_head(tmp_path):
    log = trail(tmp_path)
    report = verify_log(log.path, KEY)
    assert report.ok and report.entries == 5 and report.macs_checked
    assert report.head == log.head() and report.head.startswith("5:")
    assert verify_log(log.path, KEY, report.head).ok
    entries = list(log.entries())
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev"] == audit.GENESIS and entries[1]["prev"] == entries[0]["hash"]
    assert entries[2]["user"] and entries[2]["host"] and entries[2]["time"].endswith("Z")
    assert entries[2]["files"] == [{"path": "f2", "rows": 2}] and entries[2]["reason"] == "ticket 2"


def test_an_edited_entry_is_caught(tmp_path):
    log = trail(tmp_path)
    all_lines = lines(log)
    entry = doc(all_lines[2])
    entry["rows"] = 0  # hide how much was read
    all_lines[2] = as_line(entry)
    rewrite(log, all_lines)
    assert errors(log) == ["entry 3 was edited: its content does not match its hash"]
    assert errors(log, key=None) == ["entry 3 was edited: its content does not match its hash"]


def test_an_edited_entry_with_a_recomputed_hash_fails_its_mac(tmp_path):
    log = trail(tmp_path)
    all_lines = lines(log)
    entries = [doc(line) for line in all_lines]
    entries[2]["reason"] = "routine"
    # the forger recomputes this hash and every later link, but has no key for the MACs
    for n in range(2, 5):
        if n > 2:
            entries[n]["prev"] = entries[n - 1]["hash"]
        entries[n]["hash"] = entry_hash(entries[n])
    rewrite(log, [as_line(e) for e in entries])
    assert errors(log) == [f"entry {n} has a wrong MAC: written or rewritten without the audit key" for n in (3, 4, 5)]
    assert errors(log, key=None) == []  # without the key only the chain can be checked: consistent, so a head is needed


def test_a_removed_entry_is_caught(tmp_path):
    log = trail(tmp_path)
    all_lines = lines(log)
    del all_lines[2]
    rewrite(log, all_lines)
    assert errors(log) == ["entry 4 follows entry 2: entries 3 removed after entry 2"]


def test_removed_first_entries_are_caught(tmp_path):
    log = trail(tmp_path)
    rewrite(log, lines(log)[2:])
    assert errors(log) == ["entry 3 follows entry 0: entries 1-2 removed at the start of the log"]


def test_an_inserted_entry_is_caught(tmp_path):
    log = trail(tmp_path)
    all_lines = lines(log)
    forged = doc(all_lines[1])
    forged.update(command="hold release", reason="nobody saw this")
    forged["hash"] = entry_hash(forged)
    all_lines.insert(2, as_line(forged))
    rewrite(log, all_lines)
    problems = errors(log)
    assert "entry 2 has a wrong MAC: written or rewritten without the audit key" in problems
    assert "entry 2 comes after entry 2: reordered, duplicated or inserted" in problems


def test_reordered_entries_are_caught(tmp_path):
    log = trail(tmp_path)
    all_lines = lines(log)
    all_lines[1], all_lines[2] = all_lines[2], all_lines[1]
    rewrite(log, all_lines)
    problems = errors(log)
    assert "entry 3 follows entry 1: entries 2 removed after entry 1" in problems
    assert "entry 2 comes after entry 3: reordered, duplicated or inserted" in problems


def test_a_truncated_tail_is_caught_against_the_recorded_head(tmp_path):
    log = trail(tmp_path)
    head = log.head()
    rewrite(log, lines(log)[:3])
    assert errors(log) == []  # a shorter log is a valid log...
    assert errors(log, head=head) == ["truncated: the log ends at entry 3, the recorded head is entry 5"]
    assert errors(log, head=head.split(":")[1]) == [
        "the recorded head is not in the log: the log was truncated or rewritten"
    ]


def test_a_trail_rewritten_with_the_key_is_caught_against_the_recorded_head(tmp_path):
    log = trail(tmp_path)
    head = log.head()
    log.path.unlink()
    forged = trail(tmp_path, entries=5)  # an insider with the key writes a fresh, consistent chain
    assert errors(forged) == []
    assert errors(forged, head=head) == ["the recorded head is not in the log: the log was truncated or rewritten"]


def test_a_head_recorded_earlier_stays_valid_as_the_trail_grows(tmp_path):
    log = trail(tmp_path, entries=3)
    head = log.head()
    log.record("hold add", "ops", "litigation")
    assert errors(log, head=head) == []
    with pytest.raises(AuditError, match="not an audit head"):
        verify_log(log.path, KEY, "3:nothex")


def test_another_key_is_refused_on_append_and_reported_on_verify(tmp_path):
    log = trail(tmp_path)
    with pytest.raises(AuditError, match="keyed with audit key"):
        AuditLog(log.path, OTHER_KEY).record("search", "security", "x")
    assert errors(log, key=OTHER_KEY)[0].startswith("entry 1 is keyed with audit key")


def test_a_torn_append_is_a_warning_and_the_next_append_continues_the_chain(tmp_path):
    log = trail(tmp_path, entries=2)
    with log.path.open("ab") as fh:
        fh.write(b'{"seq": 3, "time": "2026-')  # a writer killed mid-line
    report = verify_log(log.path, KEY)
    assert report.ok and [f.level for f in report.findings] == ["warning"]
    log.record("search", "security", "after the crash")
    report = verify_log(log.path, KEY)
    assert report.ok and report.entries == 3
    assert [f.message for f in report.findings] == [
        "fragment of an interrupted write (not an entry; the chain continues)"
    ]
    # but a whole entry replaced by junk breaks the chain: an error, not a warning
    all_lines = lines(log)
    all_lines[1] = b"junk\n"
    rewrite(log, all_lines)
    assert "not an audit entry (damaged or replaced)" in errors(log)


def _append_many(path: str, count: int) -> None:
    log = AuditLog(path, KEY)
    for n in range(count):
        log.record("search", "security", f"p{os.getpid()} {n}")


def test_concurrent_writers_keep_one_chain(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, 40)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report = verify_log(path, KEY)
    assert report.ok and report.entries == 120 and not report.findings


def test_an_action_writes_started_then_its_result(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", KEY)
    with log.action("subject erase", "privacy", "request 7", args={"user": "u"}) as act:
        act.touched("events/dt=2026-01-01/part-1.parquet", 12, "rewritten")
        act.touched("events/dt=2026-01-02/part-1.parquet", 3, "rewritten")
    with pytest.raises(AuditRefusal), log.action("search", "planner", "curious"):
        raise AuditRefusal("role planner may not search events")
    with pytest.raises(OSError), log.action("search", "security", "ticket"):
        raise OSError("disk on fire")
    entries = list(log.entries())
    assert [(e["command"], e["result"]) for e in entries] == [
        ("subject erase", "started"),
        ("subject erase", "ok"),
        ("search", "started"),
        ("search", "refused"),
        ("search", "started"),
        ("search", "failed"),
    ]
    assert entries[1]["rows"] == 15 and len(entries[1]["files"]) == 2 and entries[1]["begin"] == 1
    assert entries[3]["detail"] == "role planner may not search events"
    assert entries[5]["detail"] == "OSError: disk on fire"
    log.append(command="search", role="security", reason="killed before the end", result="started")
    assert verify_log(log.path, KEY).unfinished == [7]


def test_the_key_is_created_with_the_first_entry_only(tmp_path):
    key_file = tmp_path / "keys" / "audit.key"
    log = open_log(tmp_path / "out", None, key_file, environ={})
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and log.path == tmp_path / "out" / "_audit" / "audit.jsonl"
    log.record("keys init", "custodian", None)
    key_file.unlink()
    with pytest.raises(AuditError, match="exists but this host has no audit key"):
        open_log(tmp_path / "out", None, key_file, environ={})
    with pytest.raises(AuditError, match="name the archive"):
        open_log(None, None, key_file, environ={})
    key_file.write_text("short\n")
    key_file.chmod(0o644)
    with pytest.raises(AuditError, match="chmod 600"):
        open_log(tmp_path / "out", None, key_file, environ={})


# --- through the command line --------------------------------------------------------------------------------------


def test_audit_verify_and_show_on_the_command_line(tmp_path, capsys):
    ring = ["--keyring", str(tmp_path / "ring"), "--root-key-file", str(tmp_path / "root.key")]
    archive = ["--archive", str(tmp_path / "out")]
    assert main(["keys", "init", *ring, *archive, "--period", "2026-01", "--reason", "new deployment"]) == 0
    assert main(["keys", "rotate", *ring, *archive, "--period", "2026-01"]) == 0
    assert main(["keys", "destroy", *ring, *archive, "--period", "2026-01"]) == 2  # no --yes: recorded as failed
    assert main(["keys", "destroy", *ring, *archive, "--period", "2026-01", "--yes", "--reason", "expired"]) == 0
    assert main(["keys", "export-public", *ring, *archive, str(tmp_path / "ingest")]) == 0
    capsys.readouterr()

    assert main(["audit", "verify", *archive]) == 0
    out = capsys.readouterr().out
    assert "10 entries, hashes, HMACs and chain: ok" in out
    head = out.split("head: ")[1].strip()
    assert head.startswith("10:")

    assert main(["audit", "show", *archive]) == 0  # each finished action once, by its end entry
    shown = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[6] for line in shown] == ["ok", "ok", "failed", "ok", "ok"]
    assert main(["audit", "show", *archive, "--result", "ok"]) == 0
    shown = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[4:6] for line in shown] == [["keys", "init"], ["keys", "rotate"], ["keys", "destroy"],
                                                      ["keys", "export-public"]]  # fmt: skip
    assert "new deployment" in shown[0] and "destroyed 2026-01: data-2026-01@v1" in shown[2]
    assert main(["audit", "show", *archive, "--command", "keys destroy", "--format", "jsonl", "--all"]) == 0
    destroys = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["result"] for d in destroys] == ["started", "failed", "started", "ok"]
    assert "Re-run with --yes" in destroys[1]["detail"] and destroys[3]["role"] == "custodian"

    log = Path(tmp_path / "out" / "_audit" / "audit.jsonl")
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-2]))
    assert main(["audit", "verify", *archive]) == 0  # shorter but consistent...
    assert main(["audit", "verify", *archive, "--expect-head", head]) == 1  # ...and caught against the head
    assert "truncated: the log ends at entry 8, the recorded head is entry 10" in capsys.readouterr().out


def test_key_operations_refuse_without_a_trail(tmp_path, capsys):
    ring = ["--keyring", str(tmp_path / "ring"), "--root-key-file", str(tmp_path / "root.key")]
    assert main(["keys", "init", *ring]) == 2
    assert "name the archive (--archive DIR) or set audit.log" in capsys.readouterr().err
    assert not (tmp_path / "ring").exists()
    assert main(["audit", "verify"]) == 2
    assert "--archive DIR" in capsys.readouterr().err


def test_the_trail_can_live_where_the_config_says(tmp_path, capsys):
    config = tmp_path / "lw.yaml"
    config.write_text(f"keys:\n  keyring: {tmp_path / 'ring'}\n  root_key_file: {tmp_path / 'root.key'}\n"
                      f"audit:\n  log: {tmp_path / 'var' / 'trail.jsonl'}\n")  # fmt: skip
    assert main(["keys", "init", "--config", str(config)]) == 0
    assert not (tmp_path / "out").exists()
    assert [e["command"] for e in AuditLog(tmp_path / "var" / "trail.jsonl", None).entries()] == ["keys init"] * 2
    capsys.readouterr()
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "2 entries, hashes, HMACs and chain: ok" in capsys.readouterr().out
