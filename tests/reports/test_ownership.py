"""The ledger's rule for which stored aggregate rows count: completed runs only, each line to its latest reader."""

import numpy as np

from pipelines.reports.ownership import STREAM_OWNER, OwnerSegments, decide, ledger_ranges


def record(start_ns, *inputs, kind="batch"):
    return {
        "kind": kind,
        "completed": "2026-11-02T12:00:00Z",
        "completed_ns": start_ns,
        "inputs": [
            {"key": k, "head_bytes": 4096, "path": "/x", "start": s, "end": e, "lines": 1} for k, s, e in inputs
        ],
    }


def rows(*items):
    """(publisher, owner, source, first, last) per row."""
    publishers, owners, sources, first, last = zip(*items)
    return publishers, owners, sources, np.array(first), np.array(last)


def test_a_grown_file_read_by_two_runs_counts_both_readings():
    records = {"a": record(1, ("F", 0, 100)), "b": record(2, ("F", 100, 250))}
    decided = decide(*rows(("a", "a", "F", 0, 90), ("b", "b", "F", 100, 240)), records)
    assert decided.counted.tolist() == [True, True] and decided.owners == {"a", "b"}


def test_the_latest_reading_of_a_line_owns_it_even_within_one_second():
    records = {"b": record(2, ("F", 0, 250)), "a": record(1, ("F", 0, 100))}  # b: --reprocess after a
    decided = decide(*rows(("a", "a", "F", 0, 90), ("b", "b", "F", 0, 90), ("b", "b", "F", 100, 240)), records)
    assert decided.counted.tolist() == [False, True, True] and decided.superseded == 1
    assert [r.owner for r in sorted(ledger_ranges(records), key=lambda r: r.order)] == ["a", "b"]


def test_runs_that_never_completed_or_archived_nothing_count_nothing():
    records = {"a": record(1, ("F", 0, 100)), "z": record(3, ("F", 100, 100))}  # z: 0 new lines
    decided = decide(*rows(("a", "a", "F", 0, 90), ("k", "k", "F", 0, 90), ("z", "z", "F", 0, 90)), records)
    assert decided.counted.tolist() == [True, False, False] and decided.unfinished == {"k"}
    assert decided.superseded == 1  # z's row: its lines are a's


def test_a_row_read_again_only_in_part_is_left_out_and_reported():
    records = {"a": record(1, ("F", 0, 100)), "b": record(2, ("F", 50, 100))}
    decided = decide(*rows(("a", "a", "F", 0, 40), ("a", "a", "F", 45, 90), ("b", "b", "F", 50, 90)), records)
    assert decided.counted.tolist() == [True, False, True] and decided.partial == 1


def test_rows_with_lines_outside_every_range_are_unledgered():
    records = {"a": record(1, ("F", 0, 100))}
    decided = decide(*rows(("a", "a", "F", 90, 150), ("a", "a", "G", 0, 10)), records)
    assert not decided.counted.any() and decided.unledgered == 2


def test_stream_cuts_have_one_owner_so_a_window_spanning_cuts_and_restarts_counts():
    records = {
        "s1.c00000001": record(1, ("F", 0, 100), kind="stream"),
        "s2.c00000001": record(2, ("F", 100, 200), kind="stream"),  # a restarted stream, a new run id
        "b": record(3, ("G", 0, 50)),
    }
    window = ("s2.c00000001", STREAM_OWNER, "F", 10, 190)
    decided = decide(*rows(window, ("b", "b", "G", 0, 40)), records)
    assert decided.counted.tolist() == [True, True] and decided.owners == {STREAM_OWNER, "b"}


def test_a_stream_reading_what_a_batch_read_supersedes_it():
    records = {"b": record(1, ("F", 0, 200)), "s.c00000001": record(2, ("F", 0, 200), kind="stream")}
    decided = decide(*rows(("b", "b", "F", 0, 150), ("s.c00000001", STREAM_OWNER, "F", 0, 150)), records)
    assert decided.counted.tolist() == [False, True]


def test_stream_parts_from_before_the_ledger_recorded_cuts_still_count():
    decided = decide(*rows(("s.c00000001", STREAM_OWNER, "stream:/x", 0, 10)), {"b": record(1, ("F", 0, 5))})
    assert decided.counted.tolist() == [True]


def test_segments_merge_neighbours_of_one_owner():
    segments = OwnerSegments.of(
        ledger_ranges({"a": record(1, ("F", 0, 10), ("F", 10, 20)), "b": record(2, ("F", 30, 40))})
    )
    assert segments.bounds.tolist() == [0, 20, 30, 40] and segments.owners == ["a", None, "b"]
    assert segments.segment_of(np.array([-1, 0, 19, 25, 39, 40])).tolist() == [-1, 0, 0, 1, 2, -1]
