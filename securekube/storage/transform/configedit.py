"""Editing the raw configuration document for rotation: find the entry, find a key, save.

Edits work on the decoded YAML document (not the frozen model) so fields are kept as written.
The file is validated before it is edited and again before it is written.
"""

from __future__ import annotations

import os
from typing import Any

from securekube.storage.transform.configfile import (
    atomic_write,
    dump_yaml,
    parse_yaml,
    read_config_bytes,
)
from securekube.storage.transform.model import IDENTITY, PROVIDER_FIELDS
from securekube.storage.transform.resources import lookup_order, parse_group_resource
from securekube.storage.transform.validation import parse_document

Document = dict[str, Any]


class RotationError(Exception):
    """A rotation step was refused; the configuration file was not changed."""


def read_document(path: str | os.PathLike[str]) -> tuple[Document, str]:
    """The decoded file and its name for messages; refuses a file that does not load today."""
    source = repr(os.fspath(path))
    document = parse_yaml(read_config_bytes(path), source)
    parse_document(document, source)
    return document, source


def write_document(path: str | os.PathLike[str], document: Document, source: str) -> None:
    """Validates the edited document, then replaces the file atomically (mode 0600)."""
    parse_document(document, source)
    atomic_write(path, dump_yaml(document))


def entry_for(document: Document, resource: str, group: str, source: str) -> Document:
    """The one `resources[]` entry that governs the resource, by upstream's lookup order."""
    for candidate in lookup_order(resource, group):
        matching = [
            entry
            for entry in document["resources"]
            if any(parse_group_resource(text) == candidate for text in entry["resources"])
        ]
        if len(matching) > 1:
            # Upstream merges such entries; which one to edit is the user's call.
            raise RotationError(
                f'resource "{candidate}" is listed in more than one entry of {source}; '
                "edit the file by hand"
            )
        if matching:
            found: Document = matching[0]
            return found
    shown = f"{resource}.{group}" if group else resource
    raise RotationError(f'no entry in {source} covers resource "{shown}"')


def locate_key(entry: Document, name: str, source: str) -> tuple[int, int]:
    """(provider index, key index) of key `name` in the entry; it must appear exactly once."""
    found = [
        (provider_index, key_index)
        for provider_index, provider in enumerate(entry["providers"])
        for key_index, key in enumerate(provider_keys(provider))
        if key["name"] == name
    ]
    if not found:
        raise RotationError(f'no key named "{name}" in the entry for this resource in {source}')
    if len(found) > 1:
        raise RotationError(
            f'key name "{name}" appears more than once in {source}; edit the file by hand'
        )
    return found[0]


def all_key_names(document: Document) -> set[str]:
    """Every key name in the file, across entries and providers."""
    return {
        key["name"]
        for entry in document["resources"]
        for provider in entry["providers"]
        for key in provider_keys(provider)
    }


def provider_type(provider: Document) -> str:
    """The provider's type; validation guarantees exactly one non-null provider field."""
    return next(name for name in PROVIDER_FIELDS if provider.get(name) is not None)


def provider_keys(provider: Document) -> list[Document]:
    """The provider's key list (mutable, part of the document); empty for identity."""
    kind = provider_type(provider)
    return [] if kind == IDENTITY else provider[kind]["keys"]
