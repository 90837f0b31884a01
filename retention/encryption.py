"""Encryption and decryption settings of archive files: every column and the footer encrypted, nothing left out.

pyarrow writes a column in plaintext when column keys are given and the column
is not listed, even with an encrypted footer.  ``column_keys`` therefore
assigns every top-level column of the schema to a key (nested children follow
their parent) and ``check_covers`` refuses a mapping that misses one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet.encryption as pe

from retention.keyring import ArchiveKeys, period_of_day
from retention.kms import crypto_factory
from schemas.personal import other_columns, personal_columns

if TYPE_CHECKING:  # pyarrow.dataset (~15 MiB of libraries) is for readers; writers never load it
    import pyarrow.dataset as ds

ALGORITHM = "AES_GCM_V1"  # authenticates every page too: a flipped byte fails the read
DATA_KEY_BITS = 256
KEY_CACHE = dt.timedelta(minutes=10)
ENCRYPTED_MAGIC = b"PARE"  # an encrypted footer; plaintext-footer files end in b"PAR1"


class UnencryptedColumnError(ValueError):
    """An encryption mapping would leave a column in plaintext."""


def column_keys(schema: pa.Schema, personal_key: str, data_key: str) -> dict[str, list[str]]:
    """Personal columns under ``personal_key``, all the others under ``data_key``."""
    mapping = {personal_key: personal_columns(schema), data_key: other_columns(schema)}
    mapping = {key: columns for key, columns in mapping.items() if columns}
    check_covers(schema, mapping)
    return mapping


def check_covers(schema: pa.Schema, mapping: dict[str, list[str]]) -> None:
    """Raise unless each top-level column of ``schema`` is under exactly one key."""
    listed = [column for columns in mapping.values() for column in columns]
    missing = [name for name in schema.names if name not in listed]
    doubled = sorted({name for name in listed if listed.count(name) > 1})
    unknown = sorted(set(listed) - set(schema.names))
    if missing or doubled or unknown:
        raise UnencryptedColumnError(
            f"refusing to write: column keys must cover every column exactly once "
            f"(unencrypted: {missing}, under two keys: {doubled}, not in the schema: {unknown})"
        )


def encryption_configuration(schema: pa.Schema, key_ids: dict[str, str]) -> pe.EncryptionConfiguration:
    """Footer under the ``data`` key, columns split by ``schema.personal``; ``key_ids`` by purpose."""
    return pe.EncryptionConfiguration(
        footer_key=key_ids["data"],
        column_keys=column_keys(schema, key_ids["personal"], key_ids["data"]),
        encryption_algorithm=ALGORITHM,
        plaintext_footer=False,
        double_wrapping=True,
        cache_lifetime=KEY_CACHE,
        internal_key_material=True,
        data_key_length_bits=DATA_KEY_BITS,
    )


def decryption_configuration() -> pe.DecryptionConfiguration:
    config = pe.DecryptionConfiguration()
    config.cache_lifetime = KEY_CACHE  # the constructor ignores its argument (pyarrow 25)
    return config


@dataclasses.dataclass(frozen=True)
class FileEncryption:
    """What one file is written with: pyarrow's properties and the master key ids they name."""

    properties: pe.FileEncryptionProperties
    key_ids: tuple[str, ...]


class ArchiveEncryptor:
    """Hands out encryption properties per file; one per worker (holds a non-picklable CryptoFactory)."""

    def __init__(self, keys: ArchiveKeys):
        self._keys = keys
        self._factory = crypto_factory(keys)
        self._connection = pe.KmsConnectionConfig()

    def for_day(self, schema: pa.Schema, day: str) -> FileEncryption:
        """Fresh data keys for a file of partition ``day``, wrapped by the current keys of its month."""
        key_ids = self._keys.current_ids(period_of_day(day))
        config = encryption_configuration(schema, key_ids)
        properties = self._factory.file_encryption_properties(self._connection, config)
        return FileEncryption(properties, tuple(sorted(set(key_ids.values()))))


class ArchiveDecryptor:
    """Decryption settings for one reader role, for single files and for datasets."""

    def __init__(self, keys: ArchiveKeys):
        self.keys = keys
        self._factory = crypto_factory(keys)
        self._connection = pe.KmsConnectionConfig()
        self._config = decryption_configuration()

    def file_properties(self) -> pe.FileDecryptionProperties:
        return self._factory.file_decryption_properties(self._connection, self._config)

    def dataset_config(self) -> ds.ParquetDecryptionConfig:
        import pyarrow.dataset as ds

        return ds.ParquetDecryptionConfig(self._factory, self._connection, self._config)
