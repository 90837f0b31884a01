"""The commit protocol: readers see a partition before or after a commit, never between; recovery converges.

Kills are real: the commit runs in a forked child that SIGKILLs itself from the protocol's hook at a named
step, so nothing of the writer (no ``finally``, no exit handler) runs after it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from retention import commit, layout
from retention.archive_reader import open_archive
from retention.encryption import ArchiveEncryptor
from retention.keyring import Keyring
from retention.parquet_files import ParquetFileWriter, WrittenFile
from retention.verify import verify_archive
from tests.retention.conftest import access_batch, combined_lines, signer_of, write_partition

DAY = "2026-01-05"


def stage(root: Path, writer, run_id: str, repeat: int) -> WrittenFile:
    batch = access_batch(combined_lines(repeat=repeat))
    out = ParquetFileWriter(
        commit.staging_path(str(root), run_id),
        batch.schema,
        commit.create,
        encryption=ArchiveEncryptor(writer).for_day(batch.schema, DAY),
    )
    out.write(batch)
    return out.close()


def parquet_names(root: Path) -> set[str]:
    return {p.name for p in (root / "events" / f"dt={DAY}").glob("*.parquet")}


def live_names(root: Path) -> set[str]:
    return {Path(f.path).name for f in commit.live_files(str(root), "events")}


def commit_in_child(root: Path, args: tuple, kill_at: tuple[str, int] | None, signer=None) -> int:
    """Run ``commit.commit(*args)`` in a forked process killed at the ``n``-th ``step``; its exit signal."""

    def child():
        seen = {}

        def hook(step, detail):
            seen[step] = seen.get(step, 0) + 1
            if kill_at and (step, seen[step]) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        commit.commit(*args, hook=hook, signer=signer)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    return process.exitcode


@pytest.fixture
def partition(tmp_path, writer):
    """A partition holding one committed file of 20 rows (run ``base``)."""
    root = tmp_path / "out"
    write_partition(root, writer, DAY, access_batch(combined_lines()), "base")
    return root


def test_an_added_file_is_read_once_committed(partition, writer, reader):
    staged = stage(partition, writer, "r2", repeat=5)
    manifest = commit.commit(str(partition), "events", DAY, "r2", [staged], signer=signer_of(writer))
    assert manifest.names == ["part-r2-00000.parquet"] and manifest.rows == 5
    assert live_names(partition) == {"part-base-00000.parquet", "part-r2-00000.parquet"}
    assert open_archive(partition, reader).count_rows() == 25
    assert not Path(staged.path).exists()


def test_a_replace_commit_swaps_files_at_once_and_deletes_the_old_ones(partition, writer, reader):
    new = [stage(partition, writer, "compact", repeat=3), stage(partition, writer, "compact", repeat=4)]
    commit.commit(
        str(partition), "events", DAY, "compact", new, remove=["part-base-00000.parquet"], signer=signer_of(writer)
    )
    assert (
        live_names(partition)
        == parquet_names(partition)
        == {
            "part-compact-00000.parquet",
            "part-compact-00001.parquet",
        }
    )
    assert open_archive(partition, reader).count_rows() == 7
    assert verify_archive(partition, reader=reader).ok


def test_removing_what_is_no_longer_there_is_a_conflict(partition, writer):
    first = stage(partition, writer, "erase", repeat=2)
    commit.commit(
        str(partition), "events", DAY, "erase", [first], remove=["part-base-00000.parquet"], signer=signer_of(writer)
    )
    second = stage(partition, writer, "compact", repeat=2)
    with pytest.raises(commit.CommitConflict, match=r"part-base-00000\.parquet no longer in the partition"):
        commit.commit(
            str(partition),
            "events",
            DAY,
            "compact",
            [second],
            remove=["part-base-00000.parquet"],
            signer=signer_of(writer),
        )
    assert live_names(partition) == {"part-erase-00000.parquet"}


def test_a_retried_commit_is_a_no_op_and_a_reused_id_an_error(partition, writer):
    staged = stage(partition, writer, "r2", repeat=5)
    first = commit.commit(str(partition), "events", DAY, "r2", [staged], signer=signer_of(writer))
    assert commit.commit(str(partition), "events", DAY, "r2", [staged]) == first
    other = stage(partition, writer, "r2", repeat=6)
    with pytest.raises(commit.CommitError, match="already exists with other files"):
        commit.commit(str(partition), "events", DAY, "r2", [other], signer=signer_of(writer))
    assert live_names(partition) == {"part-base-00000.parquet", "part-r2-00000.parquet"}


BEFORE = {"part-base-00000.parquet"}
ADDED = BEFORE | {"part-r2-00000.parquet", "part-r2-00001.parquet"}
REPLACED = {"part-r2-00000.parquet", "part-r2-00001.parquet"}
KILLS = [
    (commit.STAGED, 1),
    (commit.FILE_PUBLISHED, 1),
    (commit.FILE_PUBLISHED, 2),
    (commit.MANIFEST_STAGED, 1),
    (commit.COMMITTED, 1),
    (commit.RETIRED, 1),  # only a commit that removes files has this step
]
CASES = [(replace, kill) for replace in (False, True) for kill in KILLS if replace or kill[0] != commit.RETIRED]


def test_every_step_is_killed_somewhere():
    assert {step for _, (step, _) in CASES} == set(commit.STEPS)


@pytest.mark.parametrize(
    ("replace", "kill_at"), CASES, ids=[f"{'replace' if r else 'add'}-{s}-{n}" for r, (s, n) in CASES]
)
def test_a_kill_at_any_step_shows_before_or_after_and_recovery_converges(partition, writer, reader, replace, kill_at):
    staged = [stage(partition, writer, "r2", repeat=3), stage(partition, writer, "r2", repeat=4)]
    remove = ["part-base-00000.parquet"] if replace else []
    code = commit_in_child(partition, (str(partition), "events", DAY, "r2", staged, remove), kill_at, signer_of(writer))
    assert code == -signal.SIGKILL
    after = REPLACED if replace else ADDED
    committed = kill_at[0] in (commit.COMMITTED, commit.RETIRED)
    expected = after if committed else BEFORE
    rows = {True: 7 if replace else 27, False: 20}[committed]

    assert live_names(partition) == expected  # readers: exactly before or after, whatever lies in the folder
    assert open_archive(partition, reader).count_rows() == rows
    assert verify_archive(partition, reader=reader).ok  # leftovers are warnings, never damage

    report = commit.recover(str(partition))
    assert report.changed
    assert parquet_names(partition) == live_names(partition) == expected
    assert not (partition / layout.STAGING_DIR / "r2").exists()
    clean = verify_archive(partition, reader=reader)
    assert clean.ok and [f for f in clean.findings if f.level != "info"] == []
    assert open_archive(partition, reader).count_rows() == rows
    assert not commit.recover(str(partition)).changed  # converged


def test_a_live_runs_work_in_progress_is_left_alone(partition, writer):
    staged = stage(partition, writer, "r2", repeat=3)
    with commit.RunLease(str(partition), "r2"):
        code = commit_in_child(
            partition, (str(partition), "events", DAY, "r2", [staged]), (commit.FILE_PUBLISHED, 1), signer_of(writer)
        )
        assert code == -signal.SIGKILL
        report = commit.recover(str(partition))
        assert not report.changed and report.live_runs == {"r2"}
        assert "part-r2-00000.parquet" in parquet_names(partition)
        with pytest.raises(commit.LeaseError, match="already writing"):
            commit.RunLease(str(partition), "r2").__enter__()
    assert commit.recover(str(partition)).orphans  # the lease ended: now it is a dead run's leftover
    assert parquet_names(partition) == BEFORE


def test_a_killed_lease_holder_is_dead(partition):
    def hold():
        commit.RunLease(str(partition), "gone").__enter__()
        os.kill(os.getpid(), signal.SIGKILL)

    process = multiprocessing.get_context("fork").Process(target=hold)
    process.start()
    process.join(30)
    assert Path(layout.lease_path(str(partition), "gone")).exists()
    assert not commit.run_is_live(str(partition), "gone")


def test_verify_repair_removes_what_a_killed_run_left(partition, writer, archive_config, capsys):
    from pipelines.cli import main

    staged = stage(partition, writer, "r2", repeat=3)
    commit_in_child(
        partition, (str(partition), "events", DAY, "r2", [staged]), (commit.MANIFEST_STAGED, 1), signer_of(writer)
    )
    ring = ["--keyring", archive_config.keys.keyring]
    assert main(["archive", "verify", str(partition), *ring]) == 0
    out = capsys.readouterr().out
    assert "part-r2-00000.parquet: in no manifest (never read)" in out
    assert main(["archive", "verify", str(partition), "--repair", *ring]) == 0
    out = capsys.readouterr().out
    assert "repaired: 1 unpublished file(s) of killed runs removed" in out and "warning" not in out
    assert parquet_names(partition) == BEFORE
    assert Keyring(archive_config.keys.keyring).exists()
