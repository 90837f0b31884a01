"""``retention apply`` on real encrypted archives: simulated years, holds, kills at every step, shredding, dry runs."""

from __future__ import annotations

import datetime as dt
import random
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from retention import layout
from retention.audit import AuditLog, default_log_path
from retention.encryption import ArchiveDecryptor
from retention.holds import HoldStore
from retention.keyring import Keyring, KeyringError, reader_keys
from retention.policy import has_expired, is_due
from retention.tiers import tier_files
from retention.verify import verify_tiers
from tests.retention.retention_helpers import (
    BOTH,
    POLICY,
    events_by_day,
    leftovers,
    manifest_rows,
    rows_on,
    run_killed,
    run_retention,
    tree,
    write_day,
)

START = dt.date(2020, 1, 1)

OPS = ["--role", "ops"]  # a role that may take "retention"


def days_between(first: dt.date, last: dt.date, step: int = 1) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range(0, (last - first).days + 1, step)]


class SimulatedSite:
    """An archive that gets each day's logs the next morning, and retention runs at chosen dates."""

    def __init__(self, root: Path, writer, reader, log_days: set[dt.date]):
        self.root, self.writer, self.reader = root, writer, reader
        self.log_days = log_days
        self.ingested: set[dt.date] = set()
        self.held: set[dt.date] = set()

    def ingest_until(self, now: dt.date) -> None:
        for day in sorted(d for d in self.log_days if d < now and d not in self.ingested):
            write_day(self.root, self.writer, day, dead_letters=day.day == 1)
            self.ingested.add(day)

    def run(self, now: dt.date):
        self.ingest_until(now)
        report = run_retention(self.root, self.reader, now)
        self.check(now)
        return report

    def check(self, now: dt.date, deep: bool = False) -> None:
        """Nothing gone before its minimum, nothing kept past it (one run late at most), holds respected."""
        where = manifest_rows(self.root)
        destroyed = set(Keyring(self.reader.directory).destroyed())
        for day in self.ingested:
            month = f"{day:%Y-%m}"
            start = layout.segment_start(day)
            held_segment = any(d in self.held for d in layout.segment_days(start))
            gone = has_expired(month, now, POLICY) and day not in self.held
            online = where.get(f"online:{day}", 0)
            archived = where.get(f"archive:{start}", 0)
            if gone and not held_segment:
                assert online == 0 and archived == 0, f"{day} kept after its month expired (at {now})"
            elif gone:
                assert online == 0, f"{day} kept online after its month expired (at {now})"
            else:
                assert online in (0, rows_on(day)), f"{day}: {online} rows online"
                assert online or archived, f"{day} gone before its minimum (at {now})"
                if not is_due(day, now, POLICY):
                    assert online == rows_on(day), f"{day} left the online tier early (at {now})"
                if is_due(layout.segment_days(start)[-1], now, POLICY) and not held_segment:
                    assert online == 0, f"{day} still online at {now}"
            if has_expired(month, now, POLICY) and not any(f"{d:%Y-%m}" == month for d in self.held):
                assert month in destroyed, f"keys of {month} alive at {now}"
            else:
                assert month not in destroyed, f"keys of {month} destroyed at {now}, before its minimum"
        if deep:
            counts = events_by_day(self.root, self.reader)
            for day in self.ingested:
                expected = 0 if has_expired(f"{day:%Y-%m}", now, POLICY) and day not in self.held else rows_on(day)
                if expected == 0 and f"{day:%Y-%m}" not in destroyed:
                    expected = counts.get(day, 0)  # kept whole with a held segment: readable, checked above
                assert counts.get(day, 0) == expected, f"{day}: {counts.get(day, 0)} rows readable, {expected} expected"


def test_a_simulated_year_and_a_half_in_steps_and_jumps(tmp_path, writer, reader):
    rng = random.Random(11)
    log_days = {d for d in days_between(START, dt.date(2021, 5, 31)) if rng.random() < 0.3}
    site = SimulatedSite(tmp_path / "out", writer, reader, log_days)
    runs = days_between(dt.date(2020, 3, 30), dt.date(2020, 4, 20))  # day by day across the first moves
    runs += [dt.date(2020, 6, 1), dt.date(2020, 9, 15), dt.date(2020, 12, 31)]  # jumps
    runs += days_between(dt.date(2021, 1, 30), dt.date(2021, 2, 3))  # day by day across the first expiry
    runs += [dt.date(2021, 4, 1), dt.date(2021, 7, 1)]
    for number, now in enumerate(runs):
        site.run(now)
        if number % 8 == 0:
            site.check(now, deep=True)
    site.check(runs[-1], deep=True)
    again = run_retention(site.root, reader, runs[-1])
    assert again.done == [] and again.summary().startswith("0 rows moved")
    assert verify_tiers(str(site.root), reader=reader).ok


@pytest.mark.slow
def test_two_simulated_years_day_by_day(tmp_path, writer, reader):
    site = SimulatedSite(tmp_path / "out", writer, reader, set(days_between(START, dt.date(2021, 12, 31))))
    for number, now in enumerate(days_between(START + dt.timedelta(days=1), dt.date(2022, 3, 1))):
        site.run(now)
        if number % 60 == 0:
            site.check(now, deep=True)
    assert verify_tiers(str(site.root), reader=reader).ok


def ops_role(tmp_path, archive_config, reader) -> Path:
    """The ops role with its own keys (months sealed to it as writers create them), and a config naming it all."""
    from retention.role_keys import add_role, grant

    add_role(archive_config.keys.keyring, "ops", tmp_path / "roles" / "ops.key")
    grant(reader, "ops")
    config = tmp_path / "lw.yaml"
    config.write_text(
        f"keys:\n  keyring: {archive_config.keys.keyring}\n  root_key_file: {tmp_path / 'no-root-key-here'}\n"
        f"access:\n  role_keys_dir: {tmp_path / 'roles'}\n"
    )
    return config


def test_holds_keep_days_and_keys_until_released_then_the_next_run_deletes(
    tmp_path, writer, reader, archive_config, capsys
):
    config = ops_role(tmp_path, archive_config, reader)  # retention runs with the ops role's keys, not the root key
    root = tmp_path / "out"
    for day in days_between(dt.date(2020, 1, 1), dt.date(2020, 2, 29), 3):
        write_day(root, writer, day)
    apply = ["retention", "apply", "--archive", str(root), "--config", str(config), *OPS, "--reason", "nightly"]
    hold = ["--archive", str(root), "--config", str(config)]
    assert main(["hold", "add", *OPS, *hold, "--from", "2020-01-10", "--to", "2020-01-10", "--reason", "case 7"]) == 0
    assert main([*apply, "--now", "2020-06-01"]) == 0
    out = capsys.readouterr().out
    assert "keep    online events 2020-01-06..2020-01-12: held by H1 (stays online)" in out
    assert "moved   events 2020-01-13..2020-01-19" in out
    assert main([*apply, "--now", "2021-03-02"]) == 0
    out = capsys.readouterr().out
    assert "keep    keys of 2020-01: held by H1" in out and "shredded 2020-02" in out
    assert "keep    online events 2020-01-10: held by H1" in out
    held = manifest_rows(root)
    assert held == {"online:2020-01-10": rows_on(dt.date(2020, 1, 10))}
    assert set(Keyring(reader.directory).destroyed()) == {"2020-02"}
    assert events_by_day(root, reader) == {dt.date(2020, 1, 10): rows_on(dt.date(2020, 1, 10))}
    grants = Path(archive_config.keys.keyring) / "grants" / "ops"
    assert not list(grants.glob("*2020-02*")) and list(grants.glob("*2020-01*"))  # shredding took the role's seals

    assert main(["hold", "release", *OPS, "H1", *hold, "--reason", "case closed"]) == 0
    assert main([*apply, "--now", "2021-03-03"]) == 0
    out = capsys.readouterr().out
    assert "shredded 2020-01" in out and "deleted online events 2020-01-10" in out
    assert manifest_rows(root) == {} and set(Keyring(reader.directory).destroyed()) == {"2020-01", "2020-02"}
    assert not list(grants.glob("*2020-0*"))

    entries = [e for e in AuditLog(default_log_path(root), None).entries() if e["result"] != "started"]
    runs = [e for e in entries if e["command"] == "retention apply"]
    assert [e["query"]["now"] for e in runs] == ["2020-06-01", "2021-03-02", "2021-03-03"]
    assert all(e["result"] == "ok" and e["role"] == "ops" and e["reason"] == "nightly" for e in runs)
    assert runs[0]["rows"] > 0 and {f["change"] for f in runs[0]["files"]} == {"moved"}
    assert "shredded 2020-01" in runs[2]["detail"]
    assert main(["audit", "verify", "--archive", str(root)]) == 0
    assert HoldStore(root).active() == []


def test_a_role_that_may_not_run_retention_is_refused_and_audited(tmp_path, writer, reader, archive_config, capsys):
    config = ops_role(tmp_path, archive_config, reader)
    root = tmp_path / "out"
    write_day(root, writer, dt.date(2020, 1, 6))
    apply = ["retention", "apply", "--archive", str(root), "--config", str(config), "--now", "2020-06-01"]
    assert main([*apply, "--role", "security", "--reason", "curious"]) == 2
    assert "role 'security' may not retention" in capsys.readouterr().err
    assert main([*apply, *OPS]) == 2  # no reason
    capsys.readouterr()
    assert main(["hold", "add", "--role", "planner", "--archive", str(root), "--config", str(config),
                 "--from", "2020-01-06", "--to", "2020-01-06", "--reason", "x"]) == 2  # fmt: skip
    assert HoldStore(root).holds() == [] and manifest_rows(root) == {"online:2020-01-06": rows_on(dt.date(2020, 1, 6))}
    refused = [e for e in AuditLog(default_log_path(root), None).entries() if e["result"] == "refused"]
    assert [(e["command"], e["role"]) for e in refused] == [
        ("retention apply", "security"),
        ("retention apply", "ops"),
        ("hold add", "planner"),
    ]


def _scenario(tmp_path, writer, reader) -> tuple[Path, dt.date]:
    """A small archive where one run merges late data into an archived segment and expires a month."""
    root = tmp_path / "base" / "out"
    for day in (dt.date(2020, 4, 6), dt.date(2020, 4, 30), dt.date(2021, 1, 4)):
        write_day(root, writer, day, dead_letters=day.day == 30)
    run_retention(root, reader, dt.date(2021, 4, 20))  # all three archived; April 2020 expires on 2021-05-01
    write_day(root, writer, dt.date(2021, 1, 5))  # late data for that segment
    return root, dt.date(2021, 5, 1)


def _snapshot(root: Path, reader) -> tuple:
    """What a user can observe: rows per day across tiers, where they are, which months are shredded."""
    return (
        events_by_day(root, reader),
        manifest_rows(root),
        manifest_rows(root, "dead_letters"),
        sorted(Keyring(reader.directory).destroyed()),
    )


def test_a_kill_at_every_step_converges_on_the_next_run(tmp_path, writer, reader, archive_config):
    base, now = _scenario(tmp_path, writer, reader)
    keyring = Path(archive_config.keys.keyring)
    pristine_ring = tmp_path / "base" / "ring"
    shutil.copytree(keyring, pristine_ring)

    def restore() -> None:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(base, root)
        shutil.rmtree(keyring)
        shutil.copytree(pristine_ring, keyring)

    root = tmp_path / "work"
    restore()
    before = _snapshot(root, reader)
    steps = []
    run_retention(root, reader, now, hook=lambda step, detail: steps.append(step))
    after = _snapshot(root, reader)
    assert after[3] == ["2020-04"] and after[0] == {dt.date(2021, 1, 4): rows_on(dt.date(2021, 1, 4)),
                                                    dt.date(2021, 1, 5): rows_on(dt.date(2021, 1, 5))}  # fmt: skip
    assert {"shredded", "segment_written", "segment_verified", "online_removed", "committed", "retired"} <= set(steps)
    assert len(steps) >= 20

    for kill_at in range(1, len(steps) + 1):
        restore()
        assert run_killed(root, reader, now, kill_at) == -9, f"not killed at step {kill_at} ({steps[kill_at - 1]})"
        seen = events_by_day(root, reader)
        # readers see every surviving row exactly once, whatever step the kill hit
        for day, rows in before[0].items():
            if day.year == 2021:
                assert seen[day] == rows, f"kill at {kill_at} ({steps[kill_at - 1]}): {day} has {seen[day]} rows"
            else:
                assert seen.get(day, 0) in (0, rows), f"kill at {kill_at}: {day} half there"
        run_retention(root, reader, now)
        assert _snapshot(root, reader) == after, f"no convergence after a kill at {kill_at} ({steps[kill_at - 1]})"
        assert leftovers(root) == [], f"leftovers after a kill at {kill_at}"
        assert verify_tiers(str(root), reader=reader).ok


def test_shredding_makes_that_month_unreadable_in_every_copy_and_only_that_month(tmp_path, writer, reader):
    root = tmp_path / "out"
    for day in (dt.date(2020, 1, 10), dt.date(2020, 2, 10), dt.date(2020, 3, 10)):
        write_day(root, writer, day)
    run_retention(root, reader, dt.date(2020, 9, 1))  # all three months compacted into the archive tier
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)  # a backup of every file, taken before the expiry
    run_retention(root, reader, dt.date(2021, 2, 1))  # January expires: shredded and deleted
    assert sorted(Keyring(reader.directory).destroyed()) == ["2020-01"]
    assert events_by_day(root, reader) == {dt.date(2020, 2, 10): rows_on(dt.date(2020, 2, 10)),
                                           dt.date(2020, 3, 10): rows_on(dt.date(2020, 3, 10))}  # fmt: skip

    copies = {f.live.day: f.path for f in tier_files(str(backup), "events", BOTH)}
    assert sorted(copies) == ["2020-01-06", "2020-02-10", "2020-03-09"]
    fresh = reader_keys(reader.directory, Path(reader.directory).parent / "root.key", environ={})
    decryptor = ArchiveDecryptor(fresh)
    for day, path in copies.items():
        if day.startswith("2020-01"):
            with pytest.raises(KeyringError, match="destroyed"):
                pq.read_table(path, decryption_properties=decryptor.file_properties())
        else:
            assert pq.read_table(path, decryption_properties=decryptor.file_properties()).num_rows > 0


def test_a_dry_run_changes_nothing_byte_for_byte(tmp_path, writer, reader, archive_config, capsys):
    root, now = _scenario(tmp_path, writer, reader)
    (root / ".tmp" / "deadrun").mkdir(parents=True)  # something a killed run left
    (root / ".tmp" / "deadrun" / "x.parquet").write_bytes(b"PAR1")
    before = tree(root, Path(archive_config.keys.keyring))
    args = ["retention", "apply", "--archive", str(root), "--keyring", archive_config.keys.keyring]
    assert main([*args, "--now", now.isoformat(), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert tree(root, Path(archive_config.keys.keyring)) == before
    assert "retention plan for" in out and "shred   2020-04" in out
    assert "compact events 2021-01-04..2021-01-10: 1 online files, 5 rows + 4 rows already archived" in out
    assert "delete  archive events 2020-04-27..2020-04-30" in out and "first tidy what killed runs left" in out


def test_refusals_are_clear(tmp_path, writer, archive_config, capsys):
    root = tmp_path / "out"
    write_day(root, writer, dt.date(2020, 1, 10))
    config = tmp_path / "lw.yaml"
    config.write_text(f"keys:\n  keyring: {archive_config.keys.keyring}\n  root_key_file: {tmp_path / 'no.key'}\n"
                      f"access:\n  role_keys_dir: {tmp_path / 'roles'}\n")  # fmt: skip
    args = ["retention", "apply", "--archive", str(root), "--config", str(config), *OPS, "--reason", "nightly"]
    assert main([*args, "--now", "2999-01-01"]) == 2
    assert "later than today" in capsys.readouterr().err
    assert main([*args, "--now", "yesterday"]) == 2
    assert "bad --now" in capsys.readouterr().err
    assert main(["retention", "apply", "--archive", str(tmp_path / "nothing")]) == 2
    assert "is not an archive" in capsys.readouterr().err
    assert main(args) == 2  # compaction decrypts: without the role's secret it cannot start
    assert "role 'ops' cannot unlock its keys" in capsys.readouterr().err
    assert main([*args, "--dry-run"]) == 0  # a dry run reads manifests only
    assert manifest_rows(root) == {"online:2020-01-10": rows_on(dt.date(2020, 1, 10))}


def test_late_data_for_an_archived_segment_is_merged_in_once(tmp_path, writer, reader):
    root = tmp_path / "out"
    write_day(root, writer, dt.date(2020, 1, 6))
    run_retention(root, reader, dt.date(2020, 6, 1))
    assert manifest_rows(root) == {"archive:2020-01-06": rows_on(dt.date(2020, 1, 6))}
    write_day(root, writer, dt.date(2020, 1, 8))  # a late batch run over an old log
    report = run_retention(root, reader, dt.date(2020, 6, 2))
    assert report.rows_moved == rows_on(dt.date(2020, 1, 8))
    rows = rows_on(dt.date(2020, 1, 6)) + rows_on(dt.date(2020, 1, 8))
    assert manifest_rows(root) == {"archive:2020-01-06": rows}
    assert events_by_day(root, reader) == {dt.date(2020, 1, 6): rows_on(dt.date(2020, 1, 6)),
                                           dt.date(2020, 1, 8): rows_on(dt.date(2020, 1, 8))}  # fmt: skip
    [segment] = [f for f in tier_files(str(root), "events", BOTH)]
    table = pq.read_table(segment.path, decryption_properties=ArchiveDecryptor(reader).file_properties())
    assert table.column("source_ip").to_pylist() == sorted(table.column("source_ip").to_pylist())  # sorted for search
    assert verify_tiers(str(root), reader=reader).ok and leftovers(root) == []


def test_on_what_logwarden_batch_wrote(tmp_path, archive_config, reader):
    from pipelines.batch import run_batch
    from pipelines.options import pipeline_options
    from tests.retention.conftest import combined_lines

    logs = tmp_path / "logs"
    logs.mkdir()
    text = b"".join(combined_lines(month, 2020, (3, 4, 20), repeat=30) for month in ("Jan", "Feb", "Mar"))
    (logs / "access.log").write_bytes(text + b"this line is not a log line\n")
    out = tmp_path / "out"
    result = run_batch([str(logs)], str(out), archive_config, pipeline_options([], archive_config.runner))
    assert result.counts.lines_read == 271
    before = events_by_day(out, reader)
    assert sum(before.values()) == 270

    report = run_retention(out, reader, dt.date(2020, 12, 1))  # Jan-Mar 2020 all due, nothing expired
    assert report.rows_moved >= 270  # events, and alerts if any rule fired
    assert events_by_day(out, reader) == before
    assert [k for k in manifest_rows(out) if k.startswith("online:")] == []
    # dead letters have no event time: they are dated (and age from) the day the batch job ran
    assert manifest_rows(out, "dead_letters") == {f"online:{dt.datetime.now(dt.timezone.utc).date()}": 1}
    assert verify_tiers(str(out), reader=reader).ok

    run_retention(out, reader, dt.date(2021, 4, 15))  # March 2020 expired too
    assert events_by_day(out, reader) == {}
    assert {"2020-01", "2020-02", "2020-03"} <= set(Keyring(reader.directory).destroyed())


def test_a_segment_larger_than_memory_is_sorted_in_address_ranges(tmp_path, writer, reader):
    from retention.apply import RetentionRun
    from retention.compaction import CompactionSettings

    root = tmp_path / "out"
    for day in days_between(dt.date(2020, 1, 6), dt.date(2020, 1, 12)):
        write_day(root, writer, day)
    before = events_by_day(root, reader)
    small = CompactionSettings(sort_rows=6, row_group_rows=4, max_file_rows=9)  # ranges, row groups and files
    report = RetentionRun(str(root), reader, POLICY, dt.date(2020, 6, 1), small).run()
    assert report.rows_moved == sum(before.values())
    files = sorted(tier_files(str(root), "events", BOTH), key=lambda f: f.path)
    assert len(files) >= 3 and all(f.tier == "archive" for f in files)
    decrypt = ArchiveDecryptor(reader).file_properties
    keys = []
    for f in files:
        parquet = pq.ParquetFile(f.path, decryption_properties=decrypt())
        assert parquet.metadata.num_rows <= 9 and parquet.metadata.row_group(0).num_rows <= 4
        table = parquet.read(columns=["source_ip", "timestamp"])
        keys += list(zip(table.column("source_ip").to_pylist(), table.column("timestamp").to_pylist(), strict=True))
    assert keys == sorted(keys) and events_by_day(root, reader) == before
    assert not list((root / "archive" / ".tmp").glob("*/*"))  # the encrypted spills are gone


def test_only_one_run_at_a_time(tmp_path, writer, reader):
    import fcntl
    import os

    from retention.apply import RetentionBusy

    root = tmp_path / "out"
    write_day(root, writer, dt.date(2020, 1, 6))
    path = Path(layout.retention_lock_path(str(root)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a run in progress holds it
    try:
        with pytest.raises(RetentionBusy, match="another retention run"):
            run_retention(root, reader, dt.date(2020, 6, 1))
    finally:
        os.close(fd)
    assert run_retention(root, reader, dt.date(2020, 6, 1)).rows_moved == rows_on(dt.date(2020, 1, 6))
