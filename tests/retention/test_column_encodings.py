"""How the archive writer encodes columns: smaller files, the same values."""

from __future__ import annotations

import pyarrow.parquet as pq

from retention.encryption import ArchiveDecryptor
from tests.retention.conftest import access_batch, combined_lines
from tests.retention.test_row_groups import write_file


def chunks(parquet: pq.ParquetFile, name: str) -> list[pq.ColumnChunkMetaData]:
    metadata = parquet.metadata
    index = next(i for i in range(metadata.num_columns) if metadata.schema.column(i).path == name)
    return [metadata.row_group(g).column(index) for g in range(metadata.num_row_groups)]


def column_bytes(parquet: pq.ParquetFile, name: str) -> int:
    return sum(chunk.total_compressed_size for chunk in chunks(parquet, name))


def test_times_and_offsets_take_a_few_bytes_a_row_and_read_back_unchanged(tmp_path, writer, reader):
    batch = access_batch(combined_lines(days=(5, 6, 7), repeat=2000))  # 6,000 distinct offsets, 180 distinct times
    path = write_file(tmp_path, writer, [batch])
    parquet = pq.ParquetFile(path, decryption_properties=ArchiveDecryptor(reader).file_properties())
    assert parquet.read().to_pylist() == batch.to_pylist()
    for name in ("log_offset", "timestamp", "http_response_body_bytes"):
        assert column_bytes(parquet, name) < 2 * batch.num_rows, name  # with a dictionary: 4-8 bytes a row


def test_text_columns_nested_ones_too_keep_their_dictionary(tmp_path, writer, reader):
    data = b"".join(line + b' "extra-field"\n' for line in combined_lines(repeat=3000).splitlines())
    batch = access_batch(data)
    assert batch.column("labels").to_pylist()[0] == [("extra_fields", '"extra-field"')]
    path = write_file(tmp_path, writer, [batch])
    parquet = pq.ParquetFile(path, decryption_properties=ArchiveDecryptor(reader).file_properties())
    assert parquet.read().to_pylist() == batch.to_pylist()
    for name in ("user_agent_original", "labels.key_value.key", "labels.key_value.value"):
        assert all("RLE_DICTIONARY" in chunk.encodings for chunk in chunks(parquet, name)), name
