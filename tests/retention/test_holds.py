"""Legal holds as an operator places and releases them, and what the audit trail says about them."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelines.cli import main
from retention.audit import AuditLog, default_log_path
from retention.holds import HoldError, HoldStore, held_days, missing_from

OPS = ["--role", "ops"]  # a role that may take "retention"


def test_add_list_release_on_the_command_line(tmp_path, capsys):
    archive = ["--archive", str(tmp_path)]
    add = ["hold", "add", *OPS, *archive, "--from", "2026-03-01", "--to", "2026-03-03", "--reason", "case 114"]
    assert main(add) == 0
    assert "placed hold H1 2026-03-01..2026-03-03: case 114 [active]" in capsys.readouterr().out
    assert (
        main(["hold", "add", *OPS, *archive, "--from", "2026-05-09", "--to", "2026-05-09", "--reason", "case 115"]) == 0
    )
    assert main(["hold", "list", *archive]) == 0
    listing = capsys.readouterr().out
    assert "H1 2026-03-01..2026-03-03: case 114 [active]" in listing and "H2 2026-05-09: case 115" in listing

    assert main(["hold", "release", *OPS, "H1", *archive, "--reason", "case closed"]) == 0
    assert main(["hold", "release", *OPS, "H1", *archive, "--reason", "again"]) == 2
    assert "already released" in capsys.readouterr().err
    assert main(["hold", "release", *OPS, "H9", *archive, "--reason", "x"]) == 2
    assert "no hold 'H9'" in capsys.readouterr().err
    assert main(["hold", "list", *archive]) == 0
    assert "H1" not in capsys.readouterr().out
    assert main(["hold", "list", *archive, "--all"]) == 0
    assert "H1 2026-03-01..2026-03-03: case 114 [released" in capsys.readouterr().out
    assert held_days(HoldStore(tmp_path).holds()) == {dt.date(2026, 5, 9)}

    entries = [e for e in AuditLog(default_log_path(tmp_path), None).entries() if e["result"] != "started"]
    assert [(e["command"], e["result"], e["query"]["hold_id"]) for e in entries] == [
        ("hold add", "ok", "H1"),
        ("hold add", "ok", "H2"),
        ("hold release", "ok", "H1"),
        ("hold release", "failed", "H1"),  # the second release; an unknown id is refused before any entry
    ]
    assert entries[0]["reason"] == "case 114" and entries[0]["role"] == "ops"


def test_bad_holds_are_refused_clearly(tmp_path, capsys):
    archive = ["--archive", str(tmp_path)]
    assert main(["hold", "add", *OPS, *archive, "--from", "2026-03-05", "--to", "2026-03-01", "--reason", "x"]) == 2
    assert "--to 2026-03-01 is before --from 2026-03-05" in capsys.readouterr().err
    assert main(["hold", "add", *OPS, *archive, "--from", "March", "--to", "2026-03-01", "--reason", "x"]) == 2
    assert "bad --from 'March'" in capsys.readouterr().err
    assert main(["hold", "add", *OPS, *archive, "--from", "2026-03-01", "--to", "2026-03-01", "--reason", " "]) == 2
    assert "--reason is required" in capsys.readouterr().err
    assert HoldStore(tmp_path).holds() == []


def test_a_damaged_hold_file_stops_everything_that_reads_holds(tmp_path):
    store = HoldStore(tmp_path)
    store.add(dt.date(2026, 1, 1), dt.date(2026, 1, 2), "case", "alice")
    (store.directory / "H1.json").write_text("{not json")
    with pytest.raises(HoldError, match="damaged hold record"):
        store.holds()


def test_a_hold_file_deleted_behind_the_trails_back_is_found(tmp_path, capsys):
    archive = ["--archive", str(tmp_path)]
    assert main(["hold", "add", *OPS, *archive, "--from", "2026-03-01", "--to", "2026-03-03", "--reason", "case"]) == 0
    assert main(["hold", "add", *OPS, *archive, "--from", "2026-04-01", "--to", "2026-04-03", "--reason", "case"]) == 0
    assert main(["hold", "release", *OPS, "H2", *archive, "--reason", "done"]) == 0
    store = HoldStore(tmp_path)
    trail = list(AuditLog(default_log_path(tmp_path), None).entries())
    assert missing_from(store, trail) == []
    (store.directory / "H1.json").unlink()
    assert missing_from(store, trail) == ["H1"]
    doc = json.loads((store.directory / "H2.json").read_text())
    assert doc["hold_id"] == "H2"


def test_retention_refuses_to_run_while_a_hold_file_is_missing(tmp_path, writer, archive_config, capsys):
    from tests.retention.retention_helpers import write_day

    write_day(tmp_path, writer, dt.date(2020, 1, 10))
    assert main(["hold", "add", *OPS, "--archive", str(tmp_path), "--from", "2020-01-10", "--to", "2020-01-10",
                 "--reason", "case"]) == 0  # fmt: skip
    (HoldStore(tmp_path).directory / "H1.json").unlink()
    args = ["retention", "apply", "--archive", str(tmp_path), "--keyring", archive_config.keys.keyring]
    assert main([*args, "--now", "2021-06-01"]) == 2
    assert "hold(s) H1 are in the audit trail but their files are gone" in capsys.readouterr().err
