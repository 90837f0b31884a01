"""Who wrote an archive file: manifests signed with an ingest signing key that the keyring's custodian trusts.

Anyone holding the exported public keyring can encrypt a file for the archive,
so encryption alone does not say who wrote it.  Every writer therefore signs
the manifests it publishes with its own Ed25519 key, and readers and ``archive
verify`` believe only manifests signed by a key the custodian registered.

The custodian's own signing key is derived from the root private key (HKDF),
so whoever holds the root key can register writers, and a reader, who holds it
too, derives the custodian's public key itself instead of trusting a file.  A
registration (``keyring/signers/<id>.json``) is the writer's public key signed
by the custodian; a copied or edited keyring cannot add one without the root key.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from retention.secret_files import create_secret_file

ALGORITHM = "ed25519"
_CUSTODIAN_INFO = b"logwarden custodian signing key v1"


class SigningError(Exception):
    """A signing key cannot be used (missing, unreadable, readable by others)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(doc: dict) -> bytes:
    """The bytes a signature covers: the document without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signer_id(public_key: bytes) -> str:
    return f"{ALGORITHM}-{hashlib.sha256(public_key).hexdigest()[:16]}"


@dataclasses.dataclass(frozen=True)
class Signer:
    """A private Ed25519 key (32-byte seed) that signs documents."""

    seed: bytes

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def public_key(self) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()

    @property
    def id(self) -> str:
        return signer_id(self.public_key)

    def sign(self, doc: dict) -> dict:
        """``doc`` with a ``signature`` over the rest of it."""
        value = Ed25519PrivateKey.from_private_bytes(self.seed).sign(canonical(doc))
        return {**doc, "signature": {"signer": self.id, "algorithm": ALGORITHM, "value": _b64(value)}}

    def __getstate__(self):  # Beam pickles writers; the seed travels as bytes, never logged
        return {"seed": self.seed}

    def __setstate__(self, state):
        object.__setattr__(self, "seed", state["seed"])


def custodian(root_private_key: bytes) -> Signer:
    """The custodian's signing key: derived from the root key, so it exists wherever the root key does."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CUSTODIAN_INFO).derive(root_private_key)
    return Signer(seed)


def verify(doc: dict, public_keys: dict[str, bytes]) -> str | None:
    """The id of the trusted signer whose valid signature ``doc`` carries, else None."""
    signature = doc.get("signature")
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        return None
    public = public_keys.get(signature.get("signer"))
    if public is None:
        return None
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(_unb64(str(signature.get("value", ""))), canonical(doc))
    except (InvalidSignature, ValueError):
        return None
    return signature["signer"]


def encode_public(public_key: bytes) -> str:
    return _b64(public_key)


def decode_public(text: str) -> bytes:
    raw = _unb64(text.strip())
    if len(raw) != 32:
        raise ValueError(f"expected a 32-byte Ed25519 public key, got {len(raw)} bytes")
    return raw


def read_signer(path: str | os.PathLike) -> Signer:
    """An ingest signing key from an owner-only file (as ``write_signer`` makes it)."""
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SigningError(
            f"no signing key at {path}: create one with 'logwarden keys signer --signing-key-file {path}' "
            "and have the custodian trust it ('logwarden keys trust --archive DIR')"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningError(f"signing key file {path} is accessible by other users; run: chmod 600 {path}")
    try:
        seed = _unb64(path.read_text(encoding="utf-8").strip())
    except ValueError as error:
        raise SigningError(f"{path}: not a signing key ({error})") from None
    if len(seed) != 32:
        raise SigningError(f"{path}: not a signing key (expected 32 bytes)")
    return Signer(seed)


def write_signer(path: str | os.PathLike, signer: Signer) -> None:
    """A new owner-only key file; never overwrites one."""
    try:
        create_secret_file(path, (_b64(signer.seed) + "\n").encode())
    except FileExistsError:
        raise SigningError(f"{path} already exists; refusing to overwrite a signing key") from None


def load_or_create_signer(path: str | os.PathLike) -> tuple[Signer, bool]:
    """The signing key at ``path``, made there first if there is none (True when made)."""
    try:
        return read_signer(path), False
    except SigningError:
        if Path(path).expanduser().exists():
            # a bad key file, or one another process linked into place since the read: read it again
            return read_signer(path), False
    signer = Signer.generate()
    try:
        write_signer(path, signer)
    except SigningError:  # another process made it at the same moment
        return read_signer(path), False
    return signer, True
