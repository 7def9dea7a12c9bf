"""The aesgcm provider: AES-GCM with the storage key as additional authenticated data, one key.

Stored layout after the `k8s:enc:aesgcm:v1:<key name>:` prefix (upstream
`storage/value/encrypt/aes`): a 12-byte random nonce, then the GCM ciphertext with its 16-byte
tag appended. The storage key (e.g. "/registry/secrets/default/s1") is the additional data, so a
value copied under another key does not decrypt. Random 96-bit nonces limit how many values one
key may encrypt; upstream asks for rotation every 200,000 writes.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from securekube.storage.transform.interfaces import (
    DecryptionError,
    RandomSource,
    describe_key,
    read_random,
)

PROVIDER = "aesgcm"
KEY_SIZES = (16, 24, 32)
NONCE_SIZE = 12
TAG_SIZE = 16


class AESGCMTransformer:
    """Encrypts with one AES-GCM key; `key_name` is used only in error messages."""

    provider = PROVIDER

    def __init__(
        self, key: bytes, key_name: str, *, random_bytes: RandomSource = os.urandom
    ) -> None:
        if len(key) not in KEY_SIZES:
            raise ValueError(f"an {PROVIDER} key must be 16, 24 or 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.key_name = key_name
        self._random_bytes = random_bytes

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = read_random(self._random_bytes, NONCE_SIZE, "AES-GCM nonce")
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        if len(data) < NONCE_SIZE + TAG_SIZE:
            raise self._error("the stored data is shorter than the required size")
        try:
            plaintext = self._aead.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], context)
        except InvalidTag:
            raise self._error(
                "authentication failed (wrong key, the value was altered, "
                "or it was copied from another storage key)"
            ) from None
        return plaintext, False

    def _error(self, reason: str) -> DecryptionError:
        return DecryptionError(
            f"{describe_key(PROVIDER, self.key_name)}: {reason}; the value cannot be decrypted",
            provider=PROVIDER,
            key_name=self.key_name,
        )

    def __repr__(self) -> str:
        return f"AESGCMTransformer(key_name={self.key_name!r})"
