"""Small archives with recognisable personal data, written and read through the real keyring and pyarrow."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest

from parsers.lines import LineChunk
from parsers.registry import parse_chunk
from retention import commit
from retention.encryption import ArchiveEncryptor
from retention.keyring import WriterKeys, default_signing_key_file
from retention.layout import partition_name
from retention.parquet_files import ParquetFileWriter, WrittenFile
from retention.signing import Signer, read_signer

#: Personal values planted in the test logs; none may ever appear in an archive file's bytes.
SECRETS = {
    "ips": ["203.0.113.77", "198.51.100.23", "2001:db8::beef"],
    "users": ["alice.secret", "bob.hidden"],
    "agents": ["SecretAgent/9.9 (PlantedBrowser)", "Mozilla/5.0 (X11; Planted; rv:109.0) Gecko/20100101"],
    "queries": ["email=carol%40example.org&token=s3cr3tT0ken", "ssn=078-05-1120"],
}
PLAINTEXT_SAFE = ["/search", "/account"]  # not personal, for a control


def secret_values() -> list[str]:
    return [value for values in SECRETS.values() for value in values]


def combined_lines(month: str = "Jan", year: int = 2026, days: tuple[int, ...] = (5,), repeat: int = 20) -> bytes:
    """Combined-format lines carrying every planted secret, on each of ``days``."""
    lines = []
    for day in days:
        for n in range(repeat):
            ip = SECRETS["ips"][n % 3]
            user = SECRETS["users"][n % 2]
            agent = SECRETS["agents"][n % 2]
            query = SECRETS["queries"][n % 2]
            path = PLAINTEXT_SAFE[n % 2]
            lines.append(
                f'{ip} - {user} [{day:02d}/{month}/{year}:10:{n % 60:02d}:00 +0000] "GET {path}?{query} HTTP/1.1" '
                f'200 {100 + n} "https://referrer.example/?{query}" "{agent}"'
            )
    return ("\n".join(lines) + "\n").encode()


def access_batch(data: bytes) -> pa.RecordBatch:
    result = parse_chunk(LineChunk("/logs/access.log", 0, 1, data, "combined"))
    assert result.dead_letters.num_rows == 0
    return result.events


def write_partition(
    root: Path, keys: WriterKeys, day: str, batch: pa.RecordBatch, commit_id: str = "test", dataset: str = "events"
) -> WrittenFile:
    """One encrypted file committed to ``root/<dataset>/dt=<day>/``, as the pipeline's writer makes it."""
    writer = ParquetFileWriter(
        commit.staging_path(str(root), commit_id.split(".")[0]),
        batch.schema,
        commit.create,
        encryption=ArchiveEncryptor(keys).for_day(batch.schema, day),
    )
    writer.write(batch)
    written = writer.close()
    manifest = commit.commit(str(root), dataset, day, commit_id, [written], signer=signer_of(keys))
    commit.clear_staging(str(root), commit_id.split(".")[0])
    return dataclasses.replace(written, path=str(root / dataset / partition_name(day) / manifest.names[0]))


def signer_of(keys: WriterKeys) -> Signer:
    """The ingest signing key ``init_keyring`` made and trusted beside ``keys``' keyring."""
    return read_signer(default_signing_key_file(keys.directory))


@pytest.fixture
def writer(archive_config) -> WriterKeys:
    return WriterKeys(archive_config.keys.keyring)
