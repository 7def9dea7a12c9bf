"""Helpers unit tests share: waiting for something another thread does, and a clock moved by hand."""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Polls `predicate` until it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


class FakeClock:
    """A clock the test moves by hand (call it for the time, `advance` to move it)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
