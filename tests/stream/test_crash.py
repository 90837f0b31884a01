"""kill -9 at random moments while the logs rotate both ways: every line archived once, every attack alerted."""

from bench.stream_crash import run_crash_test


def test_three_kills_across_rename_and_copytruncate_rotations_lose_and_duplicate_nothing(tmp_path):
    result = run_crash_test(tmp_path / "crash", kills=3, rate=1000, rotate_every=2.5, seed=3)
    assert result.rotations["rename"] >= 1 and result.rotations["copytruncate"] >= 1
    assert result.lines_written > 5000
    assert result.cuts_before_kill == sorted(set(result.cuts_before_kill)), "each run published before its kill"
    assert result.lines_missing == 0
    assert result.lines_duplicated == 0
    assert result.archived_rows == result.lines_written
    assert result.attack_alerts_missing == 0 and result.attacks >= 10
    assert result.alerts_delivered_twice == 0
    assert result.final_exit_code == 0
