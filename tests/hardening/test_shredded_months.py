"""Destroying a month's keys reaches everything of that month: events, dead letters, alerts, and late lines."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from pipelines.batch import run_batch
from pipelines.cli import main
from pipelines.options import pipeline_options
from retention.alert_store import read_alerts
from retention.archive_reader import open_archive
from retention.expiry import drop_expired
from retention.keyring import Keyring

GOOD = '198.51.100.{n} - - [15/Oct/2026:10:00:0{n} +0000] "GET /a HTTP/1.1" 200 1 "-" "ua"'
#: Unparseable (status is not a number), but it names its time and quotes a person's e-mail address.
BROKEN = '198.51.100.9 - - [15/Oct/2026:11:00:00 +0000] "GET /reset?email=jane.doe@example.com HTTP/1.1" 2OO 1 "-" "ua"'
NOVEMBER = '198.51.100.7 - - [02/Nov/2026:10:00:00 +0000] "GET /b HTTP/1.1" 200 1 "-" "ua"'
SQLI = (
    '192.0.2.66 - - [15/Oct/2026:12:00:0{n} +0000] "GET /i?id=1%27%20UNION%20SELECT%20a%20FROM%20b-- HTTP/1.1" '
    '200 1 "-" "ua"'
)


def _log(tmp_path, name: str, lines: list[str]):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_dead_letters_go_to_the_month_of_their_event_time(tmp_path, archive_config, reader):
    out = tmp_path / "out"
    log = _log(tmp_path, "a.log", [GOOD.format(n=1), BROKEN, "no time in this line at all"])
    run_batch([log], str(out), archive_config, pipeline_options([], archive_config.runner))
    dead = open_archive(out, reader, "dead_letters").to_table().to_pylist()
    by_line = {d["line_number"]: d["dt"] for d in dead}
    assert by_line[2] == "2026-10-15"  # the month its own time names, not the day of the run
    assert by_line[3] not in ("2026-10-15",)  # no time in it: the run's day


def test_destroying_october_leaves_no_october_dead_letter_or_alert_readable(tmp_path, archive_config, reader):
    out = tmp_path / "out"
    log = _log(tmp_path, "a.log", [GOOD.format(n=1), BROKEN, NOVEMBER] + [SQLI.format(n=n) for n in range(3)])
    run = run_batch([log], str(out), archive_config, pipeline_options([], archive_config.runner))
    assert run.alerts and read_alerts(out, reader)
    Keyring(archive_config.keys.keyring).destroy_period("2026-10")
    dead = open_archive(out, reader, "dead_letters").to_table()
    assert dead.num_rows == 0
    assert read_alerts(out, reader) == []
    assert open_archive(out, reader).to_table().column("url_path").to_pylist() == ["/b"]  # November stays
    for path in (out / "dead_letters").rglob("*.parquet"):
        assert b"jane.doe" not in path.read_bytes()
        with pytest.raises(OSError):  # encrypted footer: no key, no data
            pq.read_table(path)


def test_a_late_line_for_a_shredded_month_is_counted_expired_and_never_written(tmp_path, archive_config, capsys):
    Keyring(archive_config.keys.keyring).destroy_period("2026-10")
    log = _log(tmp_path, "late.log", [GOOD.format(n=1), GOOD.format(n=2), BROKEN, NOVEMBER, "garbage"])
    out = tmp_path / "out"
    config = tmp_path / "logwarden.yaml"
    keys = archive_config.keys
    config.write_text(f"keys: {{keyring: {keys.keyring}, root_key_file: {keys.root_key_file}}}\n")
    code = main(["batch", "-c", str(config), "-i", log, "-o", str(out), "--format", "combined"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "lines read        5" in err and "parsed            1" in err and "dead-lettered     1" in err
    assert "expired           3" in err
    assert not list(out.glob("*/dt=2026-10-*")), "nothing of October is written again"


def test_blank_lines_between_expired_and_kept_lines_are_skipped_once(tmp_path, archive_config, capsys):
    Keyring(archive_config.keys.keyring).destroy_period("2026-10")
    log = _log(tmp_path, "late.log", [GOOD.format(n=1), "", NOVEMBER, "   ", "garbage"])
    out = tmp_path / "out"
    config = tmp_path / "logwarden.yaml"
    keys = archive_config.keys
    config.write_text(f"keys: {{keyring: {keys.keyring}, root_key_file: {keys.root_key_file}}}\n")
    code = main(["batch", "-c", str(config), "-i", log, "-o", str(out), "--format", "combined"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "read 5 = parsed 1 + dead-lettered 1 + skipped 2 + expired 1" in err


def test_an_expired_multi_line_entry_ends_at_a_blank_line():
    """The blank line after a shredded month's nginx entry is skipped, not also counted as that entry's."""
    data = (
        b"2026/10/05 10:00:00 [error] 1#1: *1 open() failed, client: 192.0.2.4, server: x\n"
        b"  the second line of that entry\n"
        b"\n"
        b"2026/11/05 10:00:00 [error] 1#1: *2 open() failed, client: 192.0.2.5, server: x\n"
    )
    chunk = LineChunk("/error.log", 0, 1, data, "nginx_error")
    result = drop_expired(parse_chunk(chunk), chunk, frozenset({"2026-10"}))
    assert result.events.num_rows == 1 and result.lines_parsed == 1
    assert (result.lines_skipped, result.lines_expired, result.lines_read) == (1, 2, 4)
