"""Large files are read in parallel ranges; every line still comes back once with its exact offset and number."""

import dataclasses
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.lines import split_lines
from parsers.reader import count_newlines
from parsers.splits import plan_ranges, read_range
from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from retention.archive_reader import open_archive
from schemas.config import InputConfig


def lines_of(data: bytes, range_bytes: int, chunk_bytes: int = 300):
    out = []
    for file_range in plan_ranges(io.BytesIO(data), "a.log", "combined", range_bytes):
        for chunk in read_range(io.BytesIO(data), file_range, chunk_bytes):
            lines = split_lines(chunk.data)
            for i, raw in enumerate(lines.raw.to_pylist()):
                out.append((chunk.offset + int(lines.starts[i]), chunk.line_number + i, raw))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")), max_size=60), st.integers(1, 400))
def test_ranges_cover_the_file_exactly_once(lines, range_bytes):
    data = b"\n".join(lines)
    got = lines_of(data, range_bytes)
    expected_lines = data.split(b"\n") if data else []
    if data.endswith(b"\n"):
        expected_lines = expected_lines[:-1]
    expected_lines = [line.removesuffix(b"\r") for line in expected_lines]  # CRLF endings are dropped too
    assert [raw for _, _, raw in got] == expected_lines
    for offset, number, raw in got:
        assert data[offset : offset + len(raw)] == raw
        assert number == data[:offset].count(b"\n") + 1


def test_planning_reads_no_further_than_the_last_cut_and_cuts_where_a_full_scan_does(monkeypatch):
    """The planner runs on one worker while the others wait: the lines after its last cut are not read."""
    import parsers.splits

    monkeypatch.setattr(parsers.splits, "_SCAN_BYTES", 64)
    monkeypatch.setattr(parsers.splits, "_PROBE_BYTES", 16)  # what is read after each cut to find its line end
    data = b"".join(b"%d\n" % (n * 37 % 1000) for n in range(400))
    read = []

    class Counted(io.BytesIO):
        def read(self, size=-1):
            read.append(len(data := super().read(size)))
            return data

        def readinto(self, buffer):
            read.append(super().readinto(buffer))
            return read[-1]

    ranges = plan_ranges(Counted(data), "a.log", "combined", len(data) // 4)
    cuts = [(r.start, r.first_line) for r in ranges]
    assert [r.end for r in ranges] == [start for start, _ in cuts[1:]] + [None] and len(cuts) == 4
    want, expected = len(data) // 4, [(0, 1)]
    while (cut := data.find(b"\n", want) + 1) and cut < len(data):  # the cuts a scan of the whole file makes
        expected.append((cut, data[:cut].count(b"\n") + 1))
        want = cut + len(data) // 4
    assert cuts == expected and sum(read) < cuts[-1][0] + 64 < len(data)
    # a plan of part of a file (what earlier runs did not read) stops at its end, not the file's
    part = plan_ranges(io.BytesIO(data), "a.log", "combined", 100, cuts[1][0], cuts[1][1], cuts[2][0])
    assert part[0].start == cuts[1][0] and part[-1].end == cuts[2][0] and len(part) > 1
    assert all(r.first_line == data[: r.start].count(b"\n") + 1 for r in part)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 3000))
def test_the_vectorised_line_count_is_the_count_of_newlines(data, cut):
    """What line numbers and the ledger's line counts of each input are made of (``iter_chunks``, ``ReadRangeFn``)."""
    data = data.replace(b"\x0b", b"\n")[cut:]
    assert count_newlines(data) == data.count(b"\n")


def test_compressed_files_stay_whole():
    [whole] = plan_ranges(io.BytesIO(b"x" * 1000), "a.log.gz", "combined", 10)
    assert (whole.start, whole.end, whole.first_line) == (0, None, 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_pipeline_reads_a_split_file_with_exact_accounting(examples, tmp_path, workers, archive_config, reader):
    config = dataclasses.replace(archive_config, input=InputConfig(range_bytes=50_000, chunk_bytes=16_000))
    args = [] if workers == 1 else [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    result = run_batch(
        [str(examples / "logs" / "access.log")], str(tmp_path), config, pipeline_options(args, config.runner)
    )
    assert result.counts.lines_read == 2000 and result.counts.lines_parsed == 2000
    table = open_archive(tmp_path, reader).to_table(columns=["log_offset"])
    offsets = sorted(table.column("log_offset").to_pylist())
    data = (examples / "logs" / "access.log").read_bytes()
    assert offsets == [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == 10]


class _Unseekable(io.BytesIO):
    """A pipe-like stream: it cannot seek, so its size is unknown until it ends."""

    def seekable(self):
        return False

    def seek(self, *args):
        raise io.UnsupportedOperation("seek")

    def tell(self):
        raise io.UnsupportedOperation("tell")


@pytest.mark.parametrize("range_bytes", [97, 1000, 4096])
def test_counting_in_threads_or_reading_a_stream_gives_the_ranges_of_one_scan(tmp_path, monkeypatch, range_bytes):
    """A file's newlines are counted by several threads when the planner may use several cores; a stream that
    cannot seek is read once to its end: the cuts and line numbers are the same."""
    import parsers.splits

    monkeypatch.setattr(parsers.splits, "_SCAN_BYTES", 256)  # several blocks per share
    data = b"".join(b"%d %s\n" % (n, b"x" * (n * 7919 % 50)) for n in range(600))
    path = tmp_path / "a.log"
    path.write_bytes(data)
    plans = []
    for threads in (1, 2, 3):
        with open(path, "rb") as raw:
            plans.append(plan_ranges(raw, str(path), "combined", range_bytes, threads=threads))
    plans.append(plan_ranges(_Unseekable(data), str(path), "combined", range_bytes))
    want, cuts = range_bytes, [0]
    while (cut := data.find(b"\n", want) + 1) and cut < len(data):  # each cut after the first newline past its mark
        cuts.append(cut)
        want = cut + range_bytes
    assert [r.start for r in plans[0]] == cuts and len(cuts) > 3
    assert all(plan == plans[0] for plan in plans)
    assert all(r.first_line == data[: r.start].count(b"\n") + 1 for r in plans[0])
    assert all(data[r.start - 1 : r.start] == b"\n" for r in plans[0][1:])
