"""Loading an upstream EncryptionConfiguration file and choosing a transformer per resource.

`load_encryption_config` reads and validates the file (see validation.py and configfile.py) and
builds one prefix-routed transformer per configured resource. A resource listed in several
entries gets the providers of all of them, in file order, as upstream does; a resource that no
entry covers is stored as plaintext (identity), also as upstream does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from securekube.storage.transform.aescbc import AESCBCTransformer
from securekube.storage.transform.aesgcm import AESGCMTransformer
from securekube.storage.transform.configfile import (
    atomic_write,
    dump_yaml,
    parse_yaml,
    read_config_bytes,
)
from securekube.storage.transform.identity import IdentityTransformer
from securekube.storage.transform.interfaces import RandomSource, Transformer
from securekube.storage.transform.keygen import Clock, new_key_name, new_key_secret, utc_now
from securekube.storage.transform.model import (
    AESCBC,
    AESGCM,
    API_VERSION,
    IDENTITY,
    KIND,
    SECRETBOX,
    EncryptionConfigError,
    ProviderSpec,
    ResourceRule,
)
from securekube.storage.transform.prefix import PrefixedTransformer, PrefixTransformers, key_prefix
from securekube.storage.transform.resources import GroupResource, lookup_order, parse_group_resource
from securekube.storage.transform.secretbox import SecretboxTransformer
from securekube.storage.transform.validation import parse_document

__all__ = [
    "EncryptionConfig",
    "EncryptionConfigError",
    "describe",
    "generate_default_config",
    "load_encryption_config",
]

# Each takes (key, key_name, *, random_bytes) and returns a single-key transformer.
_KEYED_TRANSFORMERS: dict[str, Callable[..., Transformer]] = {
    AESCBC: AESCBCTransformer,
    AESGCM: AESGCMTransformer,
    SECRETBOX: SecretboxTransformer,
}

# Upstream's own cautions about each provider, shown by `describe`.
_PROVIDER_NOTES = {
    AESCBC: "not recommended upstream: CBC has no integrity check (padding-oracle risk)",
    AESGCM: "rotate keys often: upstream asks for a new key every 200,000 writes",
}


@dataclass(frozen=True)
class EncryptionConfig:
    """A validated encryption configuration and the transformer for each configured resource."""

    source: str
    rules: tuple[ResourceRule, ...]
    transformers: Mapping[GroupResource, PrefixTransformers] = field(repr=False, compare=False)

    @classmethod
    def from_rules(
        cls,
        rules: tuple[ResourceRule, ...],
        source: str,
        *,
        random_bytes: RandomSource = os.urandom,
    ) -> EncryptionConfig:
        """Builds the transformers for already validated rules."""
        entries: dict[GroupResource, list[PrefixedTransformer]] = {}
        for rule in rules:
            built = [
                entry for provider in rule.providers for entry in _entries(provider, random_bytes)
            ]
            for text in rule.resources:
                entries.setdefault(parse_group_resource(text), []).extend(built)
        transformers = {name: PrefixTransformers(chain) for name, chain in entries.items()}
        return cls(source=source, rules=rules, transformers=MappingProxyType(transformers))

    def transformer_for(self, resource: str, group: str = "") -> Transformer:
        """The transformer for a resource (plural name, e.g. "secrets") in an API group.

        Lookup order is upstream's: exact entry, then `*.<group>`, then `*.*`; identity when
        nothing matches. Pass the group separately ("deployments", "apps").
        """
        if not resource or "." in resource or "/" in resource:
            # "deployments.apps" would silently match nothing and store plaintext: refuse it.
            raise ValueError(
                f"resource must be a plural resource name without group, got {resource!r}; "
                "pass the API group as `group`"
            )
        for candidate in lookup_order(resource, group):
            transformer = self.transformers.get(candidate)
            if transformer is not None:
                return transformer
        return IdentityTransformer()

    def configured_keys(self) -> tuple[tuple[str, str], ...]:
        """Every (provider, key name) pair in the file, in file order, without duplicates."""
        pairs: dict[tuple[str, str], None] = {}
        for rule in self.rules:
            for provider in rule.providers:
                for key in provider.keys:
                    pairs[(provider.type, key.name)] = None
        return tuple(pairs)


def _entries(provider: ProviderSpec, random_bytes: RandomSource) -> list[PrefixedTransformer]:
    if provider.type == IDENTITY:
        return [PrefixedTransformer(b"", IDENTITY, "", IdentityTransformer())]
    make = _KEYED_TRANSFORMERS[provider.type]
    return [
        PrefixedTransformer(
            prefix=key_prefix(provider.type, key.name),
            provider=provider.type,
            key_name=key.name,
            transformer=make(key.secret, key.name, random_bytes=random_bytes),
        )
        for key in provider.keys
    ]


def load_encryption_config(path: str | os.PathLike[str]) -> EncryptionConfig:
    """Reads, checks and validates an EncryptionConfiguration file.

    Raises EncryptionConfigError (with field paths, never secrets) if the file is missing,
    readable or writable by other users, not valid YAML, or not a valid configuration.
    """
    source = repr(os.fspath(path))
    document = parse_yaml(read_config_bytes(path), source)
    return EncryptionConfig.from_rules(parse_document(document, source), source)


def default_document(key_name: str, secret: str) -> dict[str, Any]:
    """The default configuration: secretbox for secrets, identity second to read old plaintext."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {SECRETBOX: {"keys": [{"name": key_name, "secret": secret}]}},
                    {IDENTITY: {}},
                ],
            }
        ],
    }


def generate_default_config(
    path: str | os.PathLike[str],
    *,
    clock: Clock = utc_now,
    random_bytes: RandomSource = os.urandom,
) -> EncryptionConfig:
    """Writes a new default configuration (mode 0600) with a fresh secretbox key.

    Refuses to overwrite an existing file: that would destroy the only copy of its keys.
    """
    document = default_document(new_key_name(clock(), ()), new_key_secret(SECRETBOX, random_bytes))
    source = repr(os.fspath(path))
    parse_document(document, source)  # never write a file that would not load
    atomic_write(path, dump_yaml(document), exclusive=True)
    return load_encryption_config(path)


def describe(config: EncryptionConfig) -> list[dict[str, Any]]:
    """What each entry does, for a status command: providers and key names, never secrets.

    One item per `resources[]` entry: its resources, which provider/key writes, every
    provider with its key names (in read order), and upstream's cautions that apply.
    """
    described = []
    for rule in config.rules:
        writer = rule.providers[0]
        notes = []
        if writer.type == IDENTITY:
            notes.append("new values are written unencrypted (identity is the first provider)")
        notes.extend(
            f"{provider.type}: {_PROVIDER_NOTES[provider.type]}"
            for provider in _unique_types(rule.providers)
            if provider.type in (AESCBC, AESGCM)
        )
        described.append(
            {
                "resources": list(rule.resources),
                "writes_with": writer.type
                if writer.type == IDENTITY
                else f"{writer.type}:{writer.keys[0].name}",
                "providers": [
                    {"type": provider.type, "keys": [key.name for key in provider.keys]}
                    for provider in rule.providers
                ],
                "notes": notes,
            }
        )
    return described


def _unique_types(providers: tuple[ProviderSpec, ...]) -> list[ProviderSpec]:
    seen: dict[str, ProviderSpec] = {}
    for provider in providers:
        seen.setdefault(provider.type, provider)
    return list(seen.values())
