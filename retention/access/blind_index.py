"""A keyed blind index of who appears in which row group: selective IP and user lookups without a plaintext index.

For each archive file, the index holds, per indexed field, the sorted 32-bit
truncated HMAC-SHA256 tokens of the file's distinct values and, per token, a
bitmap of the row groups holding it.  A lookup computes the token of the value
asked for and reads only those row groups.  A token collision (about one in
2^32 per distinct value) only costs an extra row group read: the real
predicate is always applied afterwards, so answers are exact.

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

FORMAT = "logwarden-blind-index-v2"
INDEXED_FIELDS = ("source_ip", "user_name")
_HMAC_INFO = b"logwarden blind index hmac v1|"
_SEAL_INFO = b"logwarden blind index seal v1|"


class BlindIndexError(Exception):
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
        return int.from_bytes(digest[:4], "little")

    def tokens(self, field: str, values: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.token(field, v) for v in values), dtype=np.uint32)


@dataclasses.dataclass
class FileIndex:
    """Per field: sorted distinct tokens, and per token a bitmap of the row groups (``row_groups`` bits)."""

    file: str
    sha256: str
    key_id: str
    row_groups: int
    fields: dict[str, tuple[np.ndarray, np.ndarray]]  # tokens (uint32, sorted), bitmaps (uint8, tokens x bytes)

    def lookup(self, key: IndexKey, field: str, values: Iterable[str]) -> set[int]:
        """Row groups that may hold any of ``values`` in ``field``."""
        if field not in self.fields:
            return set(range(self.row_groups))  # not indexed here: every row group may hold it
        tokens, bitmaps = self.fields[field]
        found: set[int] = set()
        for token in key.tokens(field, values):
            at = int(np.searchsorted(tokens, token))
            while at < len(tokens) and tokens[at] == token:
                bits = np.unpackbits(bitmaps[at], bitorder="little")[: self.row_groups]
                found.update(int(g) for g in np.flatnonzero(bits))
                at += 1
        return found


def _bitmap_bytes(row_groups: int) -> int:
    return max(1, (row_groups + 7) // 8)


def build(parquet: pq.ParquetFile, key: IndexKey, file: str, sha256: str) -> FileIndex:
    """Read the indexed columns once; hash each distinct value of the file once; note its row groups."""
    names = [f for f in INDEXED_FIELDS if f in parquet.schema_arrow.names]
    groups = parquet.num_row_groups
    width = _bitmap_bytes(groups)
    per_field: dict[str, tuple[list, list]] = {name: ([], []) for name in names}
    for group in range(groups):
        table = parquet.read_row_group(group, columns=names)
        for name in names:
            per_field[name][0].append(table.column(name))
            per_field[name][1].append(np.full(table.num_rows, group, dtype=np.int64))
    fields = {}
    for name in names:
        column = pa.chunked_array([chunk for col in per_field[name][0] for chunk in col.chunks], pa.string())
        encoded = pc.dictionary_encode(column).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        valid = encoded.is_valid().to_numpy(zero_copy_only=False)
        row_group = np.concatenate(per_field[name][1]) if per_field[name][1] else np.empty(0, np.int64)
        value_tokens = key.tokens(name, encoded.dictionary.to_pylist())
        pairs = np.unique(np.stack([codes[valid].astype(np.int64), row_group[valid]]), axis=1)
        tokens = value_tokens[pairs[0]] if len(value_tokens) else np.empty(0, np.uint32)
        distinct, slot = np.unique(tokens, return_inverse=True)
        bitmaps = np.zeros((len(distinct), width * 8), dtype=np.uint8)
        bitmaps[slot, pairs[1]] = 1
        fields[name] = (distinct.astype(np.uint32), np.packbits(bitmaps, axis=1, bitorder="little"))
    return FileIndex(file, sha256, key.key_id, groups, fields)


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
        tokens, bitmaps = index.fields[name]
        body += struct.pack("<Q", len(tokens)) + tokens.astype("<u4").tobytes() + bitmaps.tobytes()
    header = _header(index)
    nonce = os.urandom(12)
    sealed = AESGCM(key.seal_key).encrypt(nonce, zstandard.ZstdCompressor(level=3).compress(bytes(body)), header)
    return header + b"\n" + nonce + sealed


def read_header(data: bytes) -> dict:
    try:
        header = json.loads(data[: data.index(b"\n")])
    except ValueError as error:
        raise BlindIndexError(f"not a logwarden index ({error})") from None
    if header.get("format") != FORMAT:
        raise BlindIndexError(f"unknown index format {header.get('format')!r}")
    return header


def from_bytes(data: bytes, key: IndexKey) -> FileIndex:
    header = read_header(data)
    raw_header, rest = data[: data.index(b"\n")], data[data.index(b"\n") + 1 :]
    try:
        body = zstandard.ZstdDecompressor().decompress(AESGCM(key.seal_key).decrypt(rest[:12], rest[12:], raw_header))
    except InvalidTag:
        raise BlindIndexError("index does not open with this key, or was altered") from None
    fields, offset = {}, 0
    width = _bitmap_bytes(header["row_groups"])
    for name in header["fields"]:
        (count,) = struct.unpack_from("<Q", body, offset)
        offset += 8
        tokens = np.frombuffer(body, dtype="<u4", count=count, offset=offset).astype(np.uint32)
        offset += 4 * count
        bitmaps = np.frombuffer(body, dtype=np.uint8, count=count * width, offset=offset).reshape(count, width)
        offset += count * width
        fields[name] = (tokens, bitmaps)
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
