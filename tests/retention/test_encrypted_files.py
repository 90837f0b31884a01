"""Encrypted archive files: who can read them, what a byte scan finds, and what tampering and shredding do."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from retention.archive_reader import ArchiveReadError, open_archive, query_archive
from retention.encryption import ArchiveDecryptor, ArchiveEncryptor, UnencryptedColumnError, column_keys
from retention.keyring import KeyAccessError, Keyring, WriterKeys, init_keyring, reader_keys
from schemas import ACCESS_EVENT, ALERT, DEAD_LETTER, ERROR_EVENT
from schemas.personal import PERSONAL_FIELDS, personal_columns
from tests.retention.conftest import access_batch, combined_lines, secret_values, write_partition


def read_file(path, keys) -> pa.Table:
    return pq.read_table(path, decryption_properties=ArchiveDecryptor(keys).file_properties())


def test_round_trip_with_the_reader_keys(tmp_path, writer, reader):
    batch = access_batch(combined_lines())
    written = write_partition(tmp_path, writer, "2026-01-05", batch)
    assert written.key_ids == ("data-2026-01@v1", "personal-2026-01@v1")
    table = read_file(written.path, reader)
    assert table.to_pylist() == pa.Table.from_batches([batch]).to_pylist()
    assert open_archive(tmp_path, reader).to_table().num_rows == batch.num_rows


def test_without_keys_nothing_reads_and_the_message_says_why(tmp_path, writer):
    written = write_partition(tmp_path, writer, "2026-01-05", access_batch(combined_lines()))
    with pytest.raises(OSError, match="encrypted metadata"):
        pq.read_table(written.path)
    with pytest.raises(ArchiveReadError, match="the archive is encrypted: reading it needs the reader role's keys"):
        open_archive(tmp_path, None)


def test_the_writer_role_cannot_read_what_it_wrote_not_even_a_plain_column(tmp_path, writer):
    written = write_partition(tmp_path, writer, "2026-01-05", access_batch(combined_lines()))
    with pytest.raises(KeyAccessError, match="can write the archive but cannot read it"):
        read_file(written.path, writer)
    with pytest.raises(KeyAccessError):
        pq.read_table(
            written.path,
            columns=["http_response_status_code"],
            decryption_properties=ArchiveDecryptor(writer).file_properties(),
        )
    with pytest.raises(KeyAccessError):
        open_archive(tmp_path, writer).to_table(columns=["url_path"])


def test_another_keyring_with_the_same_key_ids_is_a_wrong_key(tmp_path, writer):
    written = write_partition(tmp_path, writer, "2026-01-05", access_batch(combined_lines()))
    other = init_keyring(tmp_path / "other", tmp_path / "other.key", ["2026-01"], environ={})
    stranger = reader_keys(other.keyring, other.root_key_file, environ={})
    with pytest.raises(KeyAccessError, match="does not open this file"):
        read_file(written.path, stranger)


def test_a_flipped_byte_in_a_data_page_is_detected(tmp_path, writer, reader):
    written = write_partition(tmp_path, writer, "2026-01-05", access_batch(combined_lines(repeat=200)))
    meta = pq.ParquetFile(written.path, decryption_properties=ArchiveDecryptor(reader).file_properties()).metadata
    chunk = max((meta.row_group(0).column(i) for i in range(meta.num_columns)), key=lambda c: c.total_compressed_size)
    data = bytearray(Path(written.path).read_bytes())
    data[chunk.data_page_offset + chunk.total_compressed_size // 2] ^= 0x01
    Path(written.path).write_bytes(data)
    with pytest.raises(OSError, match=r"(?i)decrypt|tag|corrupt"):
        read_file(written.path, reader)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_byte_scan_finds_no_personal_value_in_any_file(tmp_path, writer, compression):
    batch = access_batch(combined_lines(repeat=60))
    path = tmp_path / f"{compression}.parquet"
    encryption = ArchiveEncryptor(writer).for_day(batch.schema, "2026-01-05")
    with pq.ParquetWriter(
        path, batch.schema, compression=compression, encryption_properties=encryption.properties
    ) as w:
        w.write_batch(batch)
    data = path.read_bytes()
    assert [value for value in secret_values() if value.encode() in data] == []

    # Control: the same scan on the same rows written in plaintext finds them all.
    plain = io.BytesIO()
    pq.write_table(pa.Table.from_batches([batch]), plain, compression="none")
    assert [value for value in secret_values() if value.encode() not in plain.getvalue()] == []


def test_pyarrow_leaves_unlisted_columns_in_plaintext_so_every_column_is_listed(tmp_path, writer):
    batch = access_batch(combined_lines())
    keys = writer.current_ids("2026-01")
    partial = {keys["personal"]: ["source_ip"], keys["data"]: ["url_path"]}
    import pyarrow.parquet.encryption as pe

    from retention.kms import crypto_factory

    config = pe.EncryptionConfiguration(footer_key=keys["data"], column_keys=partial)
    properties = crypto_factory(writer).file_encryption_properties(pe.KmsConnectionConfig(), config)
    leaky = io.BytesIO()
    with pq.ParquetWriter(leaky, batch.schema, compression="none", encryption_properties=properties) as w:
        w.write_batch(batch)
    assert b"alice.secret" in leaky.getvalue(), "pyarrow's behaviour changed: revisit the guard"

    mapping = column_keys(ACCESS_EVENT, keys["personal"], keys["data"])
    assert sorted(c for cols in mapping.values() for c in cols) == sorted(ACCESS_EVENT.names)
    with pytest.raises(UnencryptedColumnError, match=r"unencrypted: \['user_name'\]"):
        from retention.encryption import check_covers

        check_covers(ACCESS_EVENT, {k: [c for c in v if c != "user_name"] for k, v in mapping.items()})


def test_personal_fields_are_defined_once_and_exist_in_the_archived_schemas():
    archived = set(ACCESS_EVENT.names) | set(ERROR_EVENT.names) | set(DEAD_LETTER.names) | set(ALERT.names)
    assert archived >= PERSONAL_FIELDS, PERSONAL_FIELDS - archived
    assert "message" in personal_columns(ERROR_EVENT) and personal_columns(DEAD_LETTER) == ["raw", "reason"]
    # every column that can quote raw input (issue 18): the reason quotes raw bytes, paths and labels can name people
    assert {"url_path", "labels", "url_domain"} <= set(personal_columns(ACCESS_EVENT))
    assert {"group_key", "evidence", "distinct_sample", "source_ip", "user_name"} <= set(personal_columns(ALERT))
    assert {"url_query", "url_original", "http_request_line", "http_request_referrer"} <= set(
        personal_columns(ACCESS_EVENT)
    )


def test_error_events_and_dead_letters_hide_messages_and_raw_lines(tmp_path, writer):
    error = pa.RecordBatch.from_pylist(
        [
            {
                "timestamp": pa.scalar(1767225600000000, pa.timestamp("us", tz="UTC")).as_py(),
                "message": "client denied by server configuration: 203.0.113.77",
                "event_dataset": "apache.error",
                "log_file_path": "/var/log/error.log",
                "log_offset": 0,
            }
        ],
        schema=ERROR_EVENT,
    )
    dead = pa.RecordBatch.from_pylist(
        [
            {
                "raw": b"198.51.100.23 garbage alice.secret",
                "log_file_path": "/x",
                "log_offset": 0,
                "line_number": 1,
                "reason": "no match",
            }
        ],
        schema=DEAD_LETTER,
    )
    for batch in (error, dead):
        path = tmp_path / "f.parquet"
        encryption = ArchiveEncryptor(writer).for_day(batch.schema, "2026-01-01")
        with pq.ParquetWriter(path, batch.schema, compression="none", encryption_properties=encryption.properties) as w:
            w.write_batch(batch)
        assert [v for v in secret_values() if v.encode() in path.read_bytes()] == []


def test_rotation_keeps_old_files_readable(tmp_path, writer, archive_config):
    old_batch = access_batch(combined_lines(days=(5,)))
    old = write_partition(tmp_path, writer, "2026-01-05", old_batch, "a")
    Keyring(writer.directory).add_version("personal", "2026-01")
    Keyring(writer.directory).add_version("data", "2026-01")
    new_batch = access_batch(combined_lines(days=(6,)))
    new = write_partition(tmp_path, WriterKeys(writer.directory), "2026-01-06", new_batch, "b")
    assert old.key_ids == ("data-2026-01@v1", "personal-2026-01@v1")
    assert new.key_ids == ("data-2026-01@v2", "personal-2026-01@v2")
    reader = reader_keys(archive_config.keys.keyring, archive_config.keys.root_key_file, environ={})
    assert open_archive(tmp_path, reader).count_rows() == 40
    assert read_file(old.path, reader).num_rows == 20


def test_destroying_a_month_shreds_exactly_that_month(tmp_path, writer, archive_config):
    jan = write_partition(tmp_path, writer, "2026-01-31", access_batch(combined_lines("Jan", days=(31,))))
    write_partition(tmp_path, writer, "2026-02-01", access_batch(combined_lines("Feb", days=(1,))))
    write_partition(tmp_path, writer, "2025-12-31", access_batch(combined_lines("Dec", 2025, days=(31,))))
    backup = tmp_path / "backup.parquet"
    backup.write_bytes(Path(jan.path).read_bytes())  # a copy that file deletion would never reach

    Keyring(archive_config.keys.keyring).destroy_period("2026-01")
    reader = reader_keys(archive_config.keys.keyring, archive_config.keys.root_key_file, environ={})
    for copy in (jan.path, backup):
        with pytest.raises(KeyAccessError, match=r"destroyed on .*2026-01 data it protected is crypto-shredded"):
            read_file(copy, reader)
    remaining = open_archive(tmp_path, reader).to_table()
    assert sorted(set(remaining["dt"].to_pylist())) == ["2025-12-31", "2026-02-01"]
    assert remaining.num_rows == 40
    with pytest.raises(KeyAccessError, match="crypto-shredded"):
        open_archive(tmp_path, reader, include_shredded=True).to_table()


def test_duckdb_queries_the_archive_through_the_reader_keys(tmp_path, writer, reader):
    write_partition(tmp_path, writer, "2026-01-05", access_batch(combined_lines()))
    write_partition(tmp_path, writer, "2026-02-05", access_batch(combined_lines("Feb")))
    sql = "SELECT dt, count(*) AS n, count(DISTINCT source_ip) AS ips FROM events GROUP BY dt ORDER BY dt"
    assert query_archive(sql, tmp_path, reader).to_pylist() == [
        {"dt": "2026-01-05", "n": 20, "ips": 3},
        {"dt": "2026-02-05", "n": 20, "ips": 3},
    ]
    february = query_archive(sql, tmp_path, reader, where=ds.field("dt") >= "2026-02-01")
    assert february["dt"].to_pylist() == ["2026-02-05"]
