"""How the archive writer cuts row groups: by rows, and by the bytes of rows it would otherwise hold in memory."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from retention import commit
from retention.encryption import ArchiveDecryptor, ArchiveEncryptor
from retention.parquet_files import ParquetFileWriter
from tests.retention.conftest import access_batch, combined_lines


def write_file(tmp_path, keys, batches: list[pa.RecordBatch], **sizes) -> str:
    writer = ParquetFileWriter(
        commit.staging_path(str(tmp_path), "run"),
        batches[0].schema,
        commit.create,
        encryption=ArchiveEncryptor(keys).for_day(batches[0].schema, "2026-01-05"),
        **sizes,
    )
    for batch in batches:
        writer.write(batch)
    return writer.close().path


def row_groups(path: str, keys) -> tuple[list[int], pa.Table]:
    parquet = pq.ParquetFile(path, decryption_properties=ArchiveDecryptor(keys).file_properties())
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    return sizes, parquet.read()


def test_rows_are_held_only_up_to_the_byte_limit_then_written_as_a_row_group(tmp_path, writer, reader):
    batch = access_batch(combined_lines(repeat=50))
    batches = [batch] * 5
    path = write_file(tmp_path, writer, batches, row_group_rows=1 << 20, row_group_bytes=2 * batch.nbytes)
    sizes, table = row_groups(path, reader)
    assert sizes == [2 * batch.num_rows, 2 * batch.num_rows, batch.num_rows]
    assert table.to_pylist() == pa.Table.from_batches(batches).to_pylist()


def test_small_batches_still_fill_row_groups_of_row_group_rows(tmp_path, writer, reader):
    batch = access_batch(combined_lines(repeat=10))
    path = write_file(tmp_path, writer, [batch] * 6, row_group_rows=3 * batch.num_rows, row_group_bytes=1 << 30)
    sizes, table = row_groups(path, reader)
    assert sizes == [3 * batch.num_rows, 3 * batch.num_rows]
    assert table.num_rows == 6 * batch.num_rows
