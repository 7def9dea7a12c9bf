"""Rewriting stored values with the current write key, and counting which key wrote what.

`reencrypt` is rotation stage 3 and `key_usage` the check behind stage 4 (see rotation.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from securekube.storage.interfaces import ConflictError, KeyNotFoundError, KeyValue, Storage
from securekube.storage.transform.config import EncryptionConfig
from securekube.storage.transform.interfaces import DecryptionError, Transformer
from securekube.storage.transform.model import IDENTITY
from securekube.storage.transform.prefix import key_prefix, parse_encrypted_prefix

REGISTRY_PREFIX = "/registry/"
# The label `key_usage` gives values stored without any encryption prefix.
PLAINTEXT_LABEL = IDENTITY
_PAGE_SIZE = 500


class ReencryptError(Exception):
    """A value kept changing under a re-encryption pass; values done so far stay done."""


@dataclass(frozen=True)
class ReencryptResult:
    """What a re-encryption pass did."""

    examined: int  # values read
    rewritten: int  # values rewritten with the write key
    current: int  # values already written by the write key
    vanished: int  # values deleted while the pass ran (nothing to do)
    conflicts: int  # compare-and-swap conflicts retried (concurrent writers)


def reencrypt(
    storage: Storage,
    config: EncryptionConfig,
    prefix: str = "/registry/secrets/",
    *,
    resource: str | None = None,
    group: str = "",
    page_size: int = _PAGE_SIZE,
    max_attempts: int = 10,
) -> ReencryptResult:
    """Rewrites every stale value under `prefix` with the current write key.

    The resource defaults to the one the prefix names ("/registry/<resource>/"); pass
    `resource`/`group` for resources in API groups. Each rewrite is a compare-and-swap on the
    value's mod_revision: on conflict the latest value is read again and re-checked, so a
    concurrent write is never overwritten and a deleted value is never recreated. A value that
    cannot be decrypted stops the pass with DecryptionError naming its storage key.
    """
    if not prefix.endswith("/"):
        raise ValueError(f"prefix must end with '/', got {prefix!r}")
    transformer = config.transformer_for(resource or _resource_from_prefix(prefix), group)
    counts = {"examined": 0, "rewritten": 0, "current": 0, "vanished": 0, "conflicts": 0}
    for kv in scan(storage, prefix, page_size):
        counts["examined"] += 1
        outcome, conflicts = _reencrypt_one(storage, transformer, kv, max_attempts)
        counts[outcome] += 1
        counts["conflicts"] += conflicts
    return ReencryptResult(**counts)


def key_usage(
    storage: Storage, config: EncryptionConfig, prefix: str = "/registry/secrets/"
) -> dict[str, int]:
    """How many values under `prefix` each provider key wrote, from the prefixes alone.

    Labels are "<provider>:<key name>" ("identity" for unencrypted values); nothing is
    decrypted. Keys named in `config` are matched first, so a key name containing ":" is
    counted correctly; values from keys no longer configured are still counted by their prefix.
    """
    known = sorted(
        (
            (key_prefix(provider, name), f"{provider}:{name}")
            for provider, name in config.configured_keys()
        ),
        key=lambda item: len(item[0]),
        reverse=True,
    )
    usage: dict[str, int] = {}
    for kv in scan(storage, prefix, _PAGE_SIZE):
        label = _usage_label(kv.value, known)
        usage[label] = usage.get(label, 0) + 1
    return dict(sorted(usage.items()))


def scan(storage: Storage, prefix: str, page_size: int) -> Iterator[KeyValue]:
    """Every current key under `prefix`, a page at a time (memory stays bounded)."""
    start_after = ""
    while True:
        page = storage.range(prefix, limit=page_size, start_after=start_after)
        yield from page.kvs
        if not page.more or not page.kvs:
            return
        start_after = page.kvs[-1].key


def _reencrypt_one(
    storage: Storage, transformer: Transformer, kv: KeyValue, max_attempts: int
) -> tuple[str, int]:
    current, conflicts = kv, 0
    for _ in range(max_attempts):
        context = current.key.encode()
        try:
            plaintext, stale = transformer.from_storage(current.value, context)
        except DecryptionError as error:
            raise DecryptionError(
                f"{current.key}: {error}", provider=error.provider, key_name=error.key_name
            ) from None
        if not stale:
            return "current", conflicts
        replacement = transformer.to_storage(plaintext, context)
        try:
            storage.update(current.key, replacement, current.mod_revision)
        except KeyNotFoundError:
            return "vanished", conflicts
        except ConflictError:
            # Someone wrote (or deleted) it since we read it: re-decide on the latest value.
            conflicts += 1
            latest = storage.get(current.key)
            if latest is None:
                return "vanished", conflicts
            current = latest
            continue
        return "rewritten", conflicts
    raise ReencryptError(
        f"{kv.key}: gave up after {max_attempts} attempts; it kept changing during re-encryption"
    )


def _usage_label(value: bytes, known: list[tuple[bytes, str]]) -> str:
    for prefix, label in known:
        if value.startswith(prefix):
            return label
    parsed = parse_encrypted_prefix(value)
    if parsed is None:
        return PLAINTEXT_LABEL
    return f"{parsed[0]}:{parsed[1]}"


def _resource_from_prefix(prefix: str) -> str:
    resource = ""
    if prefix.startswith(REGISTRY_PREFIX):
        resource = prefix[len(REGISTRY_PREFIX) :].rstrip("/")
    if not resource or "/" in resource:
        raise ValueError(f"cannot tell the resource from prefix {prefix!r}; pass resource=")
    return resource
