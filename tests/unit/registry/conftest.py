"""Stores for the registry tests: the real SQLite storage in a temporary directory, plaintext values."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from securekube.registry.registry import Registry
from securekube.registry.resource import Strategy
from securekube.registry.store import Store
from securekube.storage.sqlite import SqliteStorage
from securekube.storage.transform.identity import IdentityTransformer

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
NOW_TEXT = "2024-05-01T12:00:00Z"


@pytest.fixture
def now_text() -> str:
    """The creation/deletion timestamp every `make_store` store writes."""
    return NOW_TEXT


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqliteStorage]:
    backend = SqliteStorage(tmp_path / "state.db")
    yield backend
    backend.close()


@pytest.fixture
def make_store(storage: SqliteStorage) -> Callable[[type[Strategy]], Store]:
    """A store for one kind, with a fixed clock so timestamps can be asserted."""

    def make(strategy: type[Strategy]) -> Store:
        return Store(storage, strategy(), IdentityTransformer(), clock=lambda: NOW)

    return make


@pytest.fixture
def registry(storage: SqliteStorage) -> Registry:
    """Every kind, built the way the API server builds them (identity transformer for all)."""
    return Registry(storage, lambda resource, group: IdentityTransformer())
