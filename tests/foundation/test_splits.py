"""Large files are read in parallel ranges; every line still comes back once with its exact offset and number."""

import io

import pyarrow.dataset as ds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.lines import split_lines
from parsers.splits import plan_ranges, read_range
from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from schemas.config import Config, InputConfig


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


def test_compressed_files_stay_whole():
    [whole] = plan_ranges(io.BytesIO(b"x" * 1000), "a.log.gz", "combined", 10)
    assert (whole.start, whole.end, whole.first_line) == (0, None, 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_pipeline_reads_a_split_file_with_exact_accounting(examples, tmp_path, workers):
    config = Config(input=InputConfig(range_bytes=50_000, chunk_bytes=16_000))
    args = [] if workers == 1 else [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    result = run_batch(
        [str(examples / "logs" / "access.log")], str(tmp_path), config, pipeline_options(args, config.runner)
    )
    assert result.counts.lines_read == 2000 and result.counts.lines_parsed == 2000
    table = ds.dataset(tmp_path / "events", format="parquet", partitioning="hive").to_table(columns=["log_offset"])
    offsets = sorted(table.column("log_offset").to_pylist())
    data = (examples / "logs" / "access.log").read_bytes()
    assert offsets == [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == 10]
