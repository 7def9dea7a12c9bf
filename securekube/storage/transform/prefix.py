"""Prefix routing: the first provider key writes, every configured provider key reads.

Upstream nests two levels of prefix routers (provider prefix `k8s:enc:<provider>:v1:`, then key
prefix `<key name>:`) and marks a read stale unless both levels picked their first entry. A flat
list of full prefixes in configuration order behaves the same way and is easier to follow:

- `to_storage` uses entry 0 and prepends its prefix (empty for identity).
- `from_storage` tries every entry whose prefix the data starts with, in order; the first that
  decrypts wins and the value is stale unless that entry is entry 0. A failing entry with a
  non-empty prefix does not stop the search, since two providers of one type share a prefix.
- The identity entry (empty prefix) matches everything but refuses `k8s:enc:` data, so an
  encrypted value never comes back as plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from securekube.storage.transform.interfaces import (
    ENCRYPTED_PREFIX,
    DecryptionError,
    Transformer,
)

# Upstream stores every built-in provider under version "v1" (only kms has a "v2").
PROVIDER_VERSION = "v1"
# Longest key name echoed back from stored bytes in an error; longer is cut, never trusted.
_MAX_ECHOED_NAME = 64


def key_prefix(provider: str, key_name: str) -> bytes:
    """The prefix upstream writes ahead of a value encrypted by one provider key."""
    return f"k8s:enc:{provider}:{PROVIDER_VERSION}:{key_name}:".encode()


def parse_encrypted_prefix(data: bytes) -> tuple[str, str] | None:
    """(provider, key name) read from an encrypted value's prefix, or None for plaintext.

    Best effort for messages and counts: a key name that itself contains ":" cannot be told
    apart from the ciphertext here, so callers that know the configured names match those first.
    """
    if not data.startswith(ENCRYPTED_PREFIX):
        return None
    fields = data[len(ENCRYPTED_PREFIX) :].split(b":", 3)
    provider = _printable(fields[0]) if fields else ""
    key_name = _printable(fields[2]) if len(fields) > 3 else ""
    return provider, key_name


def _printable(raw: bytes) -> str:
    text = raw[:_MAX_ECHOED_NAME].decode("utf-8", errors="replace")
    return "".join(ch if ch.isprintable() else "?" for ch in text)


@dataclass(frozen=True)
class PrefixedTransformer:
    """One provider key: the prefix it owns and the transformer for the bytes after it."""

    prefix: bytes
    provider: str
    key_name: str
    transformer: Transformer


class PrefixTransformers:
    """Routes values between several provider keys by prefix (see the module docstring)."""

    def __init__(self, entries: Sequence[PrefixedTransformer]) -> None:
        if not entries:
            raise ValueError("a prefix transformer needs at least one provider")
        self.entries = tuple(entries)

    @property
    def writer(self) -> PrefixedTransformer:
        """The provider key every new value is written with."""
        return self.entries[0]

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        writer = self.entries[0]
        return writer.prefix + writer.transformer.to_storage(plaintext, context)

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        first_error: DecryptionError | None = None
        for index, entry in enumerate(self.entries):
            if not data.startswith(entry.prefix):
                continue
            try:
                plaintext, stale = entry.transformer.from_storage(
                    data[len(entry.prefix) :], context
                )
            except DecryptionError as error:
                # Identity refusing encrypted data is not a failure: another entry may own it.
                if entry.prefix and first_error is None:
                    first_error = error
                continue
            return plaintext, stale or index != 0
        if first_error is not None:
            raise first_error
        raise self._unmatched_error(data)

    def _unmatched_error(self, data: bytes) -> DecryptionError:
        parsed = parse_encrypted_prefix(data)
        if parsed is None:
            return DecryptionError(
                "the value is stored unencrypted but identity is not among the configured "
                "providers; the value cannot be read"
            )
        provider, key_name = parsed
        if any(entry.provider == provider for entry in self.entries):
            message = f'no key named "{key_name}" for provider {provider} is configured'
        else:
            message = f'provider {provider} (key "{key_name}") is not configured'
        return DecryptionError(
            f"{message}; the value cannot be decrypted", provider=provider, key_name=key_name
        )

    def __repr__(self) -> str:
        names = ", ".join(
            entry.provider + (f":{entry.key_name}" if entry.key_name else "")
            for entry in self.entries
        )
        return f"PrefixTransformers([{names}])"
