"""Asymmetric sealing: X25519 + HKDF-SHA256 + AES-256-GCM, so whoever holds a public key can encrypt but not decrypt.

Used twice, with the same code: period keys seal Parquet key-encryption keys
(``wrap_key`` of the KMS client), and the root key seals the private halves of
the period keys.  A writer therefore needs public halves only, and a sealed
value says nothing to anyone without the matching private half.  ``context``
(for instance the master key id) is bound into the derivation and authenticated,
so a sealed value cannot be replayed under another key id.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = "x25519-hkdf-aesgcm-v1"
_INFO = b"logwarden seal v1|"
_NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value cannot be opened: wrong private key, wrong context, or altered bytes."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_private_key() -> bytes:
    """32 random bytes: an X25519 private key."""
    return X25519PrivateKey.generate().private_bytes_raw()


def public_key_of(private_key: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


def encode_key(raw: bytes) -> str:
    """A key as printable text (URL-safe base64), for files, JSON and environment variables."""
    return _b64(raw)


def decode_key(text: str) -> bytes:
    """The inverse of ``encode_key``; raises ValueError unless the text is 32 bytes of base64."""
    try:
        raw = _unb64(text.strip())
    except (ValueError, TypeError) as error:
        raise ValueError(f"not base64: {error}") from None
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return raw


def _derive(shared: bytes, ephemeral_public: bytes, recipient_public: bytes, context: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=_INFO + context
    ).derive(shared)


def seal(recipient_public: bytes, plaintext: bytes, context: str) -> str:
    """Encrypt ``plaintext`` so that only the holder of the private half of ``recipient_public`` can read it."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    key = _derive(shared, ephemeral_public, recipient_public, context.encode())
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, context.encode())
    return ".".join([FORMAT, _b64(ephemeral_public), _b64(nonce), _b64(ciphertext)])


def unseal(private_key: bytes, sealed: str, context: str) -> bytes:
    """Open a value made by ``seal``; raises ``SealError`` when it was not sealed to this key and context."""
    try:
        fmt, ephemeral_text, nonce_text, ciphertext_text = sealed.split(".")
        ephemeral_public, nonce, ciphertext = _unb64(ephemeral_text), _unb64(nonce_text), _unb64(ciphertext_text)
    except (ValueError, AttributeError):
        raise SealError("not a sealed value (malformed)") from None
    if fmt != FORMAT:
        raise SealError(f"unknown sealing format {fmt!r}")
    me = X25519PrivateKey.from_private_bytes(private_key)
    try:
        shared = me.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        key = _derive(shared, ephemeral_public, me.public_key().public_bytes_raw(), context.encode())
        return AESGCM(key).decrypt(nonce, ciphertext, context.encode())
    except (InvalidTag, ValueError):
        raise SealError("wrong key, or the sealed value was altered") from None
