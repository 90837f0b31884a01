"""The Parquet KMS client over the local keyring, and how a cloud KMS takes its place.

Parquet Modular Encryption (pyarrow.parquet.encryption) encrypts each file's
columns and footer with fresh data keys, wraps those with key-encryption keys
(double wrapping), and asks a ``KmsClient`` to wrap the key-encryption keys
with a *master key* named by id.  The wrapped result is stored in the file.
logwarden's master key ids are versioned per month (``personal-2026-01@v1``),
see ``retention.keyring``.

``KeyringKmsClient`` wraps asymmetrically (``retention.sealing``): ``wrap_key``
needs only the master key's public half, ``unwrap_key`` its private half.  The
ingest pipeline gets a client over ``WriterKeys`` and so cannot read the files
it writes.

Plugging in a cloud KMS: subclass ``pyarrow.parquet.encryption.KmsClient`` with
the same two methods and hand it to ``crypto_factory``:

* AWS KMS: create one asymmetric key (``RSA_4096``, ``ENCRYPT_DECRYPT``) per
  master key id (alias ``alias/logwarden/personal-2026-01``); ``wrap_key``
  encrypts locally with the downloaded public key (``GetPublicKey``, RSAES_OAEP_SHA_256),
  ``unwrap_key`` calls ``Decrypt``.  The ingest role gets ``kms:GetPublicKey``
  only, readers ``kms:Decrypt``; destroying a month is ``ScheduleKeyDeletion``.
* Google Cloud KMS: an ``ASYMMETRIC_DECRYPT`` key per id; ``GetPublicKey`` to
  wrap, ``AsymmetricDecrypt`` to unwrap; ``DestroyCryptoKeyVersion`` to shred.
* HashiCorp Vault transit: Vault's transit engine has no asymmetric encrypt, so
  either wrap with the ``rsa-4096`` key's exported public key locally and
  ``decrypt`` through Vault, or accept symmetric ``encrypt``/``decrypt`` policies
  per role (then the writer's token must be limited to the ``encrypt`` path).

Other readers (Spark / parquet-mr, DuckDB's own Parquet reader) need a KMS
client in their language that opens ``retention.sealing``'s format
(X25519 + HKDF-SHA256 + AES-256-GCM, context ``"logwarden parquet key " + key id``);
DuckDB is served here through Arrow (``retention.archive_reader.query_archive``).

The master key id passed by pyarrow is the versioned id, so a cloud client maps
it to a key *version* and old files keep opening after rotation.  Keep
``double_wrapping`` on: the KMS is then called once per master key per cache
lifetime, not once per file.
"""

from __future__ import annotations

import pyarrow.parquet.encryption as pe

from retention import sealing
from retention.keyring import ArchiveKeys, KeyAccessError

_CONTEXT = "logwarden parquet key "


class KeyringKmsClient(pe.KmsClient):
    """Wraps Parquet key-encryption keys to a period key's public half; unwraps with its private half."""

    def __init__(self, keys: ArchiveKeys):
        super().__init__()
        self._keys = keys

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        public = self._keys.public_key(master_key_identifier)
        return sealing.seal(public, bytes(key_bytes), _CONTEXT + master_key_identifier)

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        private = self._keys.private_key(master_key_identifier)
        try:
            return sealing.unseal(private, wrapped_key, _CONTEXT + master_key_identifier)
        except sealing.SealError as error:
            raise KeyAccessError(
                f"key {master_key_identifier} of this keyring does not open this file ({error}); "
                "the file was written with another keyring, or its key material was altered"
            ) from None


def crypto_factory(keys: ArchiveKeys) -> pe.CryptoFactory:
    """A pyarrow ``CryptoFactory`` over ``keys``.  Not picklable: build it where it is used (``DoFn.setup``)."""
    return pe.CryptoFactory(lambda _connection: KeyringKmsClient(keys))
