"""The aescbc provider: AES in CBC mode with PKCS#7 padding, one key.

Stored layout after the `k8s:enc:aescbc:v1:<key name>:` prefix (upstream
`storage/value/encrypt/aes`): a 16-byte random IV, then the CBC ciphertext of the PKCS#7-padded
plaintext. There is no integrity check and the storage key is not bound in, which is why upstream
recommends against aescbc; securekube reads and writes it for compatibility.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from securekube.storage.transform.interfaces import (
    DecryptionError,
    RandomSource,
    describe_key,
    read_random,
)

PROVIDER = "aescbc"
KEY_SIZES = (16, 24, 32)
BLOCK_SIZE = 16


class AESCBCTransformer:
    """Encrypts with one AES-CBC key; `key_name` is used only in error messages."""

    provider = PROVIDER

    def __init__(
        self, key: bytes, key_name: str, *, random_bytes: RandomSource = os.urandom
    ) -> None:
        if len(key) not in KEY_SIZES:
            raise ValueError(f"an {PROVIDER} key must be 16, 24 or 32 bytes, got {len(key)}")
        self._key = key
        self.key_name = key_name
        self._random_bytes = random_bytes

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        iv = read_random(self._random_bytes, BLOCK_SIZE, "AES-CBC IV")
        padder = padding.PKCS7(BLOCK_SIZE * 8).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        body = data[BLOCK_SIZE:]
        if len(data) < BLOCK_SIZE or not body:
            raise self._error("the stored data is shorter than the required size")
        if len(body) % BLOCK_SIZE:
            raise self._error("the stored data is not a multiple of the block size")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(data[:BLOCK_SIZE])).decryptor()
        padded = decryptor.update(body) + decryptor.finalize()
        unpadder = padding.PKCS7(BLOCK_SIZE * 8).unpadder()
        try:
            plaintext = unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            # Without a MAC, bad padding is the only sign of a wrong key or altered bytes.
            raise self._error("invalid padding (wrong key, or the value was altered)") from None
        return plaintext, False

    def _error(self, reason: str) -> DecryptionError:
        return DecryptionError(
            f"{describe_key(PROVIDER, self.key_name)}: {reason}; the value cannot be decrypted",
            provider=PROVIDER,
            key_name=self.key_name,
        )

    def __repr__(self) -> str:
        return f"AESCBCTransformer(key_name={self.key_name!r})"
