"""Staged key rotation, following upstream's documented procedure.

1. `add_key`     — a new key becomes the SECOND key of the write provider: every server can
                   read it before any server writes with it. Restart/reload every server.
2. `promote_key` — the new key moves first and starts writing; the old key still reads.
                   Restart/reload every server.
3. `reencrypt`   — every stored value not written by the write key is rewritten with it
                   (compare-and-swap, so a concurrent write is never lost).
4. `prune_key`   — the old key is removed, but only if `key_usage` finds no stored value that
                   still uses it.

The file steps validate the edited configuration before writing it atomically, so a refused or
failed step leaves the file as it was. The file is rewritten as plain YAML: comments are lost.
"""

from __future__ import annotations

import os

from securekube.storage.interfaces import Storage
from securekube.storage.transform.config import load_encryption_config
from securekube.storage.transform.configedit import (
    RotationError,
    all_key_names,
    entry_for,
    locate_key,
    provider_keys,
    provider_type,
    read_document,
    write_document,
)
from securekube.storage.transform.interfaces import RandomSource
from securekube.storage.transform.keygen import Clock, new_key_name, new_key_secret, utc_now
from securekube.storage.transform.model import KEY_SIZES
from securekube.storage.transform.reencrypt import (
    REGISTRY_PREFIX,
    ReencryptError,
    ReencryptResult,
    key_usage,
    reencrypt,
)

__all__ = [
    "ReencryptError",
    "ReencryptResult",
    "RotationError",
    "add_key",
    "key_usage",
    "promote_key",
    "prune_key",
    "reencrypt",
]


def add_key(
    path: str | os.PathLike[str],
    provider: str = "secretbox",
    *,
    resource: str = "secrets",
    group: str = "",
    clock: Clock = utc_now,
    random_bytes: RandomSource = os.urandom,
) -> str:
    """Stage 1: adds a fresh key that every server can read but none writes with yet.

    The key goes second in the write provider's key list. If the write provider is of another
    type (identity while encryption is off, or a provider being replaced), a new `provider`
    entry holding the key is inserted as the second provider instead. Returns the key name.
    """
    if provider not in KEY_SIZES:
        raise RotationError(f"add_key supports {', '.join(sorted(KEY_SIZES))}, not {provider!r}")
    document, source = read_document(path)
    entry = entry_for(document, resource, group, source)
    name = new_key_name(clock(), all_key_names(document))
    new_key = {"name": name, "secret": new_key_secret(provider, random_bytes)}
    providers = entry["providers"]
    if provider_type(providers[0]) == provider:
        provider_keys(providers[0]).insert(1, new_key)
    else:
        providers.insert(1, {provider: {"keys": [new_key]}})
    write_document(path, document, source)
    return name


def promote_key(
    path: str | os.PathLike[str], name: str, *, resource: str = "secrets", group: str = ""
) -> bool:
    """Stage 2: makes key `name` the write key (first key of the first provider).

    Run it only once every server has loaded the stage-1 file, or a server that does not know
    the key yet cannot read what the others write. Returns False if the key already writes.
    """
    document, source = read_document(path)
    entry = entry_for(document, resource, group, source)
    provider_index, key_index = locate_key(entry, name, source)
    if (provider_index, key_index) == (0, 0):
        return False
    providers = entry["providers"]
    provider = providers.pop(provider_index)
    keys = provider_keys(provider)
    keys.insert(0, keys.pop(key_index))
    providers.insert(0, provider)
    write_document(path, document, source)
    return True


def prune_key(
    path: str | os.PathLike[str],
    name: str,
    storage: Storage,
    *,
    resource: str = "secrets",
    group: str = "",
    prefix: str = REGISTRY_PREFIX,
) -> None:
    """Stage 4: removes key `name`, refusing while any stored value still uses it.

    Usage is counted under `prefix` (default: the whole registry, since one entry may cover
    many resources). The write key cannot be pruned; a provider left without keys is removed.
    Run it only after every server writes with the new key, or a straggler could still write
    with the old one.
    """
    document, source = read_document(path)
    entry = entry_for(document, resource, group, source)
    provider_index, key_index = locate_key(entry, name, source)
    if (provider_index, key_index) == (0, 0):
        raise RotationError(
            f'key "{name}" is the write key in {source}; promote another key before pruning it'
        )
    provider = entry["providers"][provider_index]
    kind = provider_type(provider)
    in_use = key_usage(storage, load_encryption_config(path), prefix).get(f"{kind}:{name}", 0)
    if in_use:
        raise RotationError(
            f'key "{name}" ({kind}) still encrypts {in_use} stored value(s) under {prefix!r}; '
            "run reencrypt first, then prune"
        )
    keys = provider_keys(provider)
    del keys[key_index]
    if not keys:
        del entry["providers"][provider_index]
    write_document(path, document, source)
