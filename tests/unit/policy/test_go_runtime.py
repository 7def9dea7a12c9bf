"""The Go collector setting of the embedded engine: when a command restarts for it, and who inherits it."""
from __future__ import annotations

import os

import pytest

from securekube.policy import go_runtime


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("GOGC", "GOMEMLIMIT", "SECUREKUBE_ENGINE_GOGC"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_process_without_a_setting_restarts_once(clean: pytest.MonkeyPatch) -> None:
    assert go_runtime.needs_restart()
    clean.setenv("GOGC", go_runtime.ENGINE_GOGC)
    clean.setenv("SECUREKUBE_ENGINE_GOGC", go_runtime.ENGINE_GOGC)
    assert not go_runtime.needs_restart()
    clean.delenv("GOGC")  # even were GOGC lost on the way, the marker stops a second restart
    assert not go_runtime.needs_restart()


@pytest.mark.parametrize("name", ["GOGC", "GOMEMLIMIT"])
def test_a_users_setting_is_kept(clean: pytest.MonkeyPatch, name: str) -> None:
    clean.setenv(name, "300" if name == "GOGC" else "1GiB")
    assert not go_runtime.needs_restart()
    go_runtime.keep_from_children()
    assert os.environ[name] in ("300", "1GiB")


def test_children_do_not_inherit_the_engines_setting(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("GOGC", go_runtime.ENGINE_GOGC)
    clean.setenv("SECUREKUBE_ENGINE_GOGC", go_runtime.ENGINE_GOGC)
    go_runtime.keep_from_children()
    assert "GOGC" not in os.environ and "SECUREKUBE_ENGINE_GOGC" not in os.environ


def test_a_gogc_the_user_changed_after_the_restart_stays(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("GOGC", "50")
    clean.setenv("SECUREKUBE_ENGINE_GOGC", go_runtime.ENGINE_GOGC)
    go_runtime.keep_from_children()
    assert os.environ["GOGC"] == "50" and "SECUREKUBE_ENGINE_GOGC" not in os.environ
