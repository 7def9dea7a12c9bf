"""The parsed EncryptionConfiguration: frozen rules, providers and keys, and its error type."""

from __future__ import annotations

from dataclasses import dataclass, field

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"

IDENTITY = "identity"
AESCBC = "aescbc"
AESGCM = "aesgcm"
SECRETBOX = "secretbox"
KMS = "kms"

# Valid secret lengths in bytes, as upstream validates them (aescbc accepts 16/24/32 too, even
# though the upstream docs only mention 32).
KEY_SIZES: dict[str, tuple[int, ...]] = {
    AESCBC: (16, 24, 32),
    AESGCM: (16, 24, 32),
    SECRETBOX: (32,),
}
# Every provider field upstream knows, in upstream's order; kms is recognised but refused.
PROVIDER_FIELDS = (KMS, AESGCM, AESCBC, SECRETBOX, IDENTITY)


class EncryptionConfigError(Exception):
    """An encryption configuration file is missing, unsafe or invalid.

    `problems` lists each complaint with its field path (e.g.
    "resources[0].providers[0].aescbc.keys[0].secret: ..."); secrets are never included.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class KeySpec:
    """One named key; the secret is the decoded key material and never appears in a repr."""

    name: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class ProviderSpec:
    """One provider entry; identity has no keys, the others have at least one (first writes)."""

    type: str
    keys: tuple[KeySpec, ...] = ()


@dataclass(frozen=True)
class ResourceRule:
    """One `resources[]` entry: the resources it covers and their providers (first writes)."""

    resources: tuple[str, ...]
    providers: tuple[ProviderSpec, ...]
