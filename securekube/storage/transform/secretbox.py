"""The secretbox provider: NaCl secretbox (XSalsa20-Poly1305), one 32-byte key.

Stored layout after the `k8s:enc:secretbox:v1:<key name>:` prefix (upstream
`storage/value/encrypt/secretbox`): a 24-byte random nonce, then the secretbox output (16-byte
Poly1305 tag followed by the ciphertext). Upstream passes no additional data, so unlike aesgcm
the value is not bound to its storage key; `context` is deliberately unused to stay compatible.
"""

from __future__ import annotations

import os

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from securekube.storage.transform.interfaces import (
    DecryptionError,
    RandomSource,
    describe_key,
    read_random,
)

PROVIDER = "secretbox"
KEY_SIZES = (32,)
NONCE_SIZE = SecretBox.NONCE_SIZE  # 24
TAG_SIZE = SecretBox.MACBYTES  # 16


class SecretboxTransformer:
    """Encrypts with one secretbox key; `key_name` is used only in error messages."""

    provider = PROVIDER

    def __init__(
        self, key: bytes, key_name: str, *, random_bytes: RandomSource = os.urandom
    ) -> None:
        if len(key) not in KEY_SIZES:
            raise ValueError(f"a {PROVIDER} key must be 32 bytes, got {len(key)}")
        self._box = SecretBox(key)
        self.key_name = key_name
        self._random_bytes = random_bytes

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = read_random(self._random_bytes, NONCE_SIZE, "secretbox nonce")
        # SecretBox.encrypt returns nonce || tag || ciphertext: exactly upstream's layout.
        return bytes(self._box.encrypt(plaintext, nonce))

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        if len(data) < NONCE_SIZE + TAG_SIZE:
            raise self._error("the stored data is shorter than the required size")
        try:
            plaintext = self._box.decrypt(data[NONCE_SIZE:], data[:NONCE_SIZE])
        except CryptoError:
            raise self._error(
                "authentication failed (wrong key, or the value was altered)"
            ) from None
        return plaintext, False

    def _error(self, reason: str) -> DecryptionError:
        return DecryptionError(
            f"{describe_key(PROVIDER, self.key_name)}: {reason}; the value cannot be decrypted",
            provider=PROVIDER,
            key_name=self.key_name,
        )

    def __repr__(self) -> str:
        return f"SecretboxTransformer(key_name={self.key_name!r})"
