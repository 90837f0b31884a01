"""Reading files as chunks: compressed, truncated, huge lines, odd endings — nothing lost, offsets exact."""

import bz2
import gzip
import io

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.lines import split_lines
from parsers.reader import ReadStats, iter_chunks

LINES = [
    f'10.0.0.{i % 250} - - [01/Nov/2026:10:00:00 +0000] "GET /p/{i} HTTP/1.1" 200 {i}'.encode() for i in range(5000)
]
PLAIN = b"\n".join(LINES) + b"\n"


def read_all(blob: bytes, name: str, chunk_bytes: int = 4096):
    stats = ReadStats()
    chunks = list(iter_chunks(io.BytesIO(blob), name, chunk_bytes, stats))
    return chunks, stats


def lines_with_offsets(chunks):
    out = []
    for chunk in chunks:
        lines = split_lines(chunk.data)
        for i, raw in enumerate(lines.raw.to_pylist()):
            out.append((chunk.offset + int(lines.starts[i]), chunk.line_number + i, raw))
    return out


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("a.log", lambda b: b),
        ("a.log.gz", gzip.compress),
        ("a.log.bz2", bz2.compress),
        ("a.log.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_every_line_comes_back_once_with_its_byte_offset_and_number(name, compress):
    chunks, stats = read_all(compress(PLAIN), name)
    assert len(chunks) > 10 and not stats.truncated
    got = lines_with_offsets(chunks)
    assert [raw for _, _, raw in got] == LINES
    for offset, number, raw in got:
        assert PLAIN[offset : offset + len(raw)] == raw
        assert number == PLAIN[:offset].count(b"\n") + 1


def test_rotated_multi_member_gzip_reads_every_member():
    chunks, _ = read_all(gzip.compress(PLAIN) + gzip.compress(PLAIN), "access.log.1.gz")
    assert len(lines_with_offsets(chunks)) == 2 * len(LINES)


def test_truncated_gzip_keeps_what_was_written_and_says_it_is_truncated():
    blob = gzip.compress(PLAIN)
    chunks, stats = read_all(blob[: len(blob) // 2], "cut.log.gz")
    got = [raw for _, _, raw in lines_with_offsets(chunks)]
    assert stats.truncated and "truncated" in stats.problem
    assert 0 < len(got) < len(LINES)
    assert got[:-1] == LINES[: len(got) - 1]  # the last one may be cut mid-line


def test_corrupt_gzip_is_reported_not_raised():
    blob = bytearray(gzip.compress(PLAIN))
    blob[200:260] = b"\x00" * 60
    _, stats = read_all(bytes(blob), "bad.log.gz")
    assert stats.truncated and "corrupt" in stats.problem


def test_windows_line_endings_and_missing_final_newline():
    lines = split_lines(b"a\r\nb\n\r\nlast")
    assert lines.raw.to_pylist() == [b"a", b"b", b"", b"last"]
    assert lines.starts.tolist() == [0, 3, 5, 7]


def test_newline_only_chunks_split_the_same_as_mixed_ones():
    """Bare-newline chunks take a faster path; its lines and offsets match the general one's."""
    plain = split_lines(b"a\n\nbc\n")
    mixed = split_lines(b"a\n\nbc\r\n")
    assert plain.raw.to_pylist() == mixed.raw.to_pylist() == [b"a", b"", b"bc"]
    assert plain.starts.tolist() == mixed.starts.tolist() == [0, 2, 3]
    assert plain.text.to_pylist() == ["a", "", "bc"]


def test_a_line_larger_than_a_chunk_stays_whole():
    big = b"x" * (1024 * 1024)
    chunks, _ = read_all(b"short\n" + big + b"\nafter\n", "big.log", chunk_bytes=64 * 1024)
    assert [raw for _, _, raw in lines_with_offsets(chunks)] == [b"short", big, b"after"]


def test_non_utf8_bytes_are_kept_raw_and_replaced_in_text():
    lines = split_lines(b"caf\xe9\nok\n")
    assert lines.raw.to_pylist() == [b"caf\xe9", b"ok"]
    assert lines.text.to_pylist() == ["caf\ufffd", "ok"]
    assert not lines.valid_utf8


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=700))
def test_any_bytes_split_into_lines_that_rebuild_the_file(blob, chunk_bytes):
    chunks, _ = read_all(blob, "random.log", chunk_bytes)
    assert b"".join(c.data for c in chunks) == blob
    got = lines_with_offsets(chunks)
    assert len(got) == blob.count(b"\n") + (0 if blob.endswith(b"\n") or not blob else 1)
