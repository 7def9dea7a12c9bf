"""Shared test configuration: how tests that need a system part behave when it is missing."""
from __future__ import annotations

import os

import pytest


def require(condition: bool, reason: str) -> None:
    """Skip with `reason` when a system part is missing, except in CI (CI=true), where it fails."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
