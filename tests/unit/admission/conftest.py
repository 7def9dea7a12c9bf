"""Fixtures for the admission tests: a real embedded OPA engine (skip, or fail in CI, without it)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from securekube.policy.embedded import EmbeddedOpaEngine, embedded_engine_available
from tests.conftest import require


@pytest.fixture
def opa_available() -> None:
    require(embedded_engine_available(),
            "the embedded OPA engine needs opa-golib-python-bindings (module opa_bindings): "
            ".venv/bin/pip install --ignore-requires-python opa-golib-python-bindings")


@pytest.fixture
def engine(opa_available: None) -> Iterator[EmbeddedOpaEngine]:
    with EmbeddedOpaEngine() as opa:
        yield opa
