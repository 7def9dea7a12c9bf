"""The storage interface: a key-value store with etcd semantics.

Every backend (embedded SQLite, etcd) implements `Storage`, and every backend must pass
tests/conformance/test_storage.py. Keys are strings in the upstream layout
(`/registry/<resource>/<namespace>/<name>`); values are opaque bytes (already encrypted by
the registry's transformer where the resource asks for it).

Revisions are one cluster-wide, strictly increasing integer, as in etcd: every successful
create, update or delete takes the next revision. A key's `mod_revision` is the revision of its
last write; its `create_revision` the revision that created it. The API server exposes the
`mod_revision` as `metadata.resourceVersion`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class KeyValue:
    """One stored key at one revision."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class WatchEvent:
    """One change to a key.

    For PUT, `kv` is the new value and `prev_kv` the value it replaced (None on create).
    For DELETE, `kv.value` is the value that was deleted and `kv.mod_revision` the revision of
    the delete; `prev_kv` is the last stored value (same bytes, its own revisions).
    """

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev_kv: KeyValue | None


@dataclass(frozen=True)
class RangeResult:
    """A page of keys, read at one revision."""

    kvs: list[KeyValue]
    revision: int  # the store revision the page was read at
    more: bool  # True when `limit` cut the page short


class StorageError(Exception):
    """Base of the storage errors; the API server maps each one to a Status."""


class KeyExistsError(StorageError):
    """create() of a key that exists."""


class KeyNotFoundError(StorageError):
    """update()/delete() of a key that does not exist."""


class ConflictError(StorageError):
    """update()/delete() whose expected mod_revision is not the key's current one."""


class CompactedError(StorageError):
    """A read or watch from a revision older than the compacted revision."""


class Watcher(Protocol):
    """An open watch; events arrive in revision order, each exactly once."""

    def next(self, timeout: float) -> list[WatchEvent]:
        """Blocks up to `timeout` seconds; returns the events that arrived (maybe none)."""
        ...

    def close(self) -> None: ...


class Storage(Protocol):
    """A key-value store with etcd semantics. All methods are thread-safe."""

    def current_revision(self) -> int: ...

    def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """The key's value at `revision` (0 = now), or None if it did not exist then."""
        ...

    def range(
        self, prefix: str, *, limit: int = 0, start_after: str = "", revision: int = 0
    ) -> RangeResult:
        """Keys starting with `prefix`, sorted by key, strictly after `start_after`.

        `limit` 0 means all. `revision` 0 means now; otherwise the state as of that revision
        (CompactedError if it was compacted away), so paged lists stay consistent.
        """
        ...

    def create(self, key: str, value: bytes) -> KeyValue:
        """Stores a new key; KeyExistsError if it exists. Durable on return."""
        ...

    def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        """Compare-and-swap on mod_revision; ConflictError or KeyNotFoundError. Durable on return."""
        ...

    def delete(self, key: str, expected_mod_revision: int = 0) -> KeyValue:
        """Deletes the key, returning its last value with the delete's revision as mod_revision.

        `expected_mod_revision` 0 means unconditional. Durable on return.
        """
        ...

    def watch(self, prefix: str, from_revision: int) -> Watcher:
        """Events for keys under `prefix` with revision > `from_revision`.

        CompactedError if `from_revision` is older than the compacted revision.
        """
        ...

    def compact(self, revision: int) -> None:
        """Forgets history older than `revision`; current values are always kept."""
        ...

    def close(self) -> None: ...
