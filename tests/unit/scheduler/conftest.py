"""A registry on real SQLite storage for the scheduler tests."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from securekube.registry.registry import Registry
from securekube.storage.sqlite import SqliteStorage
from securekube.storage.transform.identity import IdentityTransformer


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    storage = SqliteStorage(tmp_path / "state.db")
    yield Registry(storage, lambda resource, group: IdentityTransformer())
    storage.close()
