"""A keyed blind index of who appears in which row group: selective IP and user lookups without a plaintext index.

For each archive file, the index lists, per indexed field, the 64-bit truncated
HMAC-SHA256 of every distinct value in each row group, as (token, row group)
pairs sorted by token.  A lookup computes the token of the value asked for and
reads only the row groups that may hold it (a token collision only costs an
extra row group read: the real predicate is always applied afterwards).

Keys: both the HMAC key and the key that encrypts the index file are derived
(HKDF) from the private half of the file's ``personal`` master key version.
So only a role that may read personal columns can compute a token or open an
index, an index says nothing to anyone else, and destroying a month's keys
shreds its indexes with its data.

An index file names the data file and its SHA-256; an index whose data file
changed (erasure, redaction, compaction) is ignored and rebuilt, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "logwarden-blind-index-v1"
INDEXED_FIELDS = ("source_ip", "user_name")
_HMAC_INFO = b"logwarden blind index hmac v1|"
_SEAL_INFO = b"logwarden blind index seal v1|"


class IndexError_(Exception):
    """An index file is damaged, for another file, or not openable with these keys."""


def normalise(field: str, value: str) -> str:
    """The form a value is indexed and compared in: IP addresses compressed (``2001:DB8::1`` = ``2001:db8::1``)."""
    if field == "source_ip":
        try:
            return ipaddress.ip_address(value.strip()).compressed
        except ValueError:
            return value
    return value


def _derive(private_key: bytes, info: bytes, key_id: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info + key_id.encode()).derive(private_key)


@dataclasses.dataclass(frozen=True)
class IndexKey:
    """The two keys of one ``personal`` key version's indexes."""

    key_id: str
    hmac_key: bytes
    seal_key: bytes

    @classmethod
    def from_private(cls, key_id: str, private_key: bytes) -> IndexKey:
        return cls(key_id, _derive(private_key, _HMAC_INFO, key_id), _derive(private_key, _SEAL_INFO, key_id))

    def token(self, field: str, value: str) -> int:
        digest = hmac.new(self.hmac_key, f"{field}\0{normalise(field, value)}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "little")

    def tokens(self, field: str, values: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.token(field, v) for v in values), dtype=np.uint64)


@dataclasses.dataclass
class FileIndex:
    """Per field, sorted tokens and the row group each (token, row group) pair points at."""

    file: str
    sha256: str
    key_id: str
    row_groups: int
    fields: dict[str, tuple[np.ndarray, np.ndarray]]

    def lookup(self, key: IndexKey, field: str, values: Iterable[str]) -> set[int]:
        """Row groups that may hold any of ``values`` in ``field``."""
        tokens, groups = self.fields.get(field, (np.empty(0, np.uint64), np.empty(0, np.uint32)))
        wanted = key.tokens(field, values)
        left = np.searchsorted(tokens, wanted, side="left")
        right = np.searchsorted(tokens, wanted, side="right")
        found: set[int] = set()
        for lo, hi in zip(left, right):
            found.update(int(g) for g in groups[lo:hi])
        return found


def build(parquet: pq.ParquetFile, key: IndexKey, file: str, sha256: str) -> FileIndex:
    """Read the indexed columns of every row group once and collect the distinct values' tokens."""
    names = [f for f in INDEXED_FIELDS if f in parquet.schema_arrow.names]
    pairs: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {f: ([], []) for f in names}
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=names) if names else None
        for name in names:
            values = pc.unique(table.column(name).drop_null()).to_pylist()
            tokens = np.unique(key.tokens(name, values))
            pairs[name][0].append(tokens)
            pairs[name][1].append(np.full(len(tokens), group, dtype=np.uint32))
    fields = {}
    for name, (tokens, groups) in pairs.items():
        all_tokens = np.concatenate(tokens) if tokens else np.empty(0, np.uint64)
        all_groups = np.concatenate(groups) if groups else np.empty(0, np.uint32)
        order = np.argsort(all_tokens, kind="stable")
        fields[name] = (all_tokens[order], all_groups[order])
    return FileIndex(file, sha256, key.key_id, parquet.num_row_groups, fields)


# --- the encrypted file ------------------------------------------------------------------------------------------


def _header(index: FileIndex) -> bytes:
    doc = {"format": FORMAT, "file": index.file, "sha256": index.sha256, "key_id": index.key_id}
    doc["row_groups"] = index.row_groups
    doc["fields"] = sorted(index.fields)
    return json.dumps(doc, sort_keys=True).encode()


def to_bytes(index: FileIndex, key: IndexKey) -> bytes:
    """``header-json \\n nonce ciphertext``: the header names the file and key, never a value or a token."""
    body = bytearray()
    for name in sorted(index.fields):
        tokens, groups = index.fields[name]
        body += struct.pack("<Q", len(tokens)) + tokens.astype("<u8").tobytes() + groups.astype("<u4").tobytes()
    header = _header(index)
    nonce = os.urandom(12)
    sealed = AESGCM(key.seal_key).encrypt(nonce, zstandard.ZstdCompressor(level=3).compress(bytes(body)), header)
    return header + b"\n" + nonce + sealed


def read_header(data: bytes) -> dict:
    try:
        header = json.loads(data[: data.index(b"\n")])
    except ValueError as error:
        raise IndexError_(f"not a logwarden index ({error})") from None
    if header.get("format") != FORMAT:
        raise IndexError_(f"unknown index format {header.get('format')!r}")
    return header


def from_bytes(data: bytes, key: IndexKey) -> FileIndex:
    header = read_header(data)
    raw_header, rest = data[: data.index(b"\n")], data[data.index(b"\n") + 1 :]
    try:
        body = zstandard.ZstdDecompressor().decompress(AESGCM(key.seal_key).decrypt(rest[:12], rest[12:], raw_header))
    except InvalidTag:
        raise IndexError_("index does not open with this key, or was altered") from None
    fields, offset = {}, 0
    for name in header["fields"]:
        (count,) = struct.unpack_from("<Q", body, offset)
        offset += 8
        tokens = np.frombuffer(body, dtype="<u8", count=count, offset=offset).astype(np.uint64)
        offset += 8 * count
        groups = np.frombuffer(body, dtype="<u4", count=count, offset=offset).astype(np.uint32)
        offset += 4 * count
        fields[name] = (tokens, groups)
    return FileIndex(header["file"], header["sha256"], header["key_id"], header["row_groups"], fields)


def write_file(path: Path, index: FileIndex, key: IndexKey) -> int:
    """Write an index file whole or not at all; returns its size."""
    data = to_bytes(index, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-index-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def token_table(index: FileIndex, field: str) -> pa.Table:
    """The (token, row group) pairs of one field, for inspection in tests."""
    tokens, groups = index.fields[field]
    return pa.table({"token": pa.array(tokens), "row_group": pa.array(groups)})
