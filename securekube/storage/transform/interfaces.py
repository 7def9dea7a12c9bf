"""The value-transformer interface: how stored bytes are encrypted and decrypted at rest.

A transformer sits between the registry and `Storage`: `to_storage` turns the encoded object into
the bytes that are stored, `from_storage` turns stored bytes back. The byte format is upstream's
(k8s.io/apiserver `storage/value`), so kube-apiserver and securekube can read each other's values
when they share an `EncryptionConfiguration` file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

# Upstream reserves this prefix for encrypted values: JSON starts with "{" and protobuf with
# "k8s\x00", so a plaintext object can never begin with it.
ENCRYPTED_PREFIX = b"k8s:enc:"

# Returns exactly n cryptographically random bytes; injectable so tests can fix nonces and IVs.
RandomSource = Callable[[int], bytes]


class Transformer(Protocol):
    """Turns plaintext into stored bytes and back; `context` is the storage key.

    The context (e.g. b"/registry/secrets/default/s1") is bound into the ciphertext by the
    providers that authenticate it (aesgcm), so a value copied to another key fails to decrypt.
    """

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        """The bytes to store for `plaintext` at the storage key `context`."""
        ...

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        """The plaintext of stored `data`, and whether it is stale.

        Stale means the value was not written by the current write provider and key, so a
        re-encryption pass should rewrite it. Raises DecryptionError when it cannot be read.
        """
        ...


class DecryptionError(Exception):
    """A stored value cannot be decrypted with the configured providers.

    The message names the provider and key name involved; it never contains key material or
    plaintext, so it is safe to log and to return in a Status.
    """

    def __init__(self, message: str, *, provider: str = "", key_name: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.key_name = key_name


class EncryptionError(Exception):
    """A value could not be encrypted (e.g. the random source failed); nothing was written."""


def read_random(random_bytes: RandomSource, size: int, what: str) -> bytes:
    """`size` bytes from `random_bytes`, refusing a short or oversized answer.

    A nonce or IV of the wrong length would produce a value nobody can decrypt (or, worse, a
    reused nonce), so it fails closed instead of padding or truncating.
    """
    value = random_bytes(size)
    if not isinstance(value, bytes) or len(value) != size:
        raise EncryptionError(f"the random source did not return {size} bytes for the {what}")
    return value


def describe_key(provider: str, key_name: str) -> str:
    """The human-readable name of one provider key, used in every error message."""
    return f'provider {provider}, key "{key_name}"'
