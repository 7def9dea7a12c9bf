"""The identity provider: values are stored as plaintext.

Like upstream's "encrypt check" identity transformer it refuses to return data that carries the
`k8s:enc:` prefix, so an encrypted value is never handed to the decoder as if it were plaintext.
"""

from __future__ import annotations

from securekube.storage.transform.interfaces import ENCRYPTED_PREFIX, DecryptionError

PROVIDER = "identity"


class IdentityTransformer:
    """Stores plaintext unchanged; reads anything that is not marked as encrypted."""

    provider = PROVIDER

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        return plaintext

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        if data.startswith(ENCRYPTED_PREFIX):
            raise DecryptionError(
                "the identity provider cannot read an encrypted value", provider=PROVIDER
            )
        return data, False

    def __repr__(self) -> str:
        return "IdentityTransformer()"
