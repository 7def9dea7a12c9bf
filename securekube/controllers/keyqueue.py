"""A work queue of object keys, processed one at a time by a worker thread, with delayed retries.

Controllers put a key on the queue for every informer event that may need work and decide in
`handle(key)` from a fresh read of the object, so a burst of events for one object is one piece
of work (keys waiting in the queue are not added twice) and a stale event can do no harm. A
`handle` that raises is retried after `retry_seconds` (an ApiError 404 means the object is gone:
nothing to retry).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from securekube.api.errors import ApiError
from securekube.registry.informer import Informer, present_objects

log = logging.getLogger("securekube.controllers")
Key = TypeVar("Key", bound=Hashable)


class KeyQueue(Generic[Key]):
    """Runs `handle(key)` in one thread for each key added; `start()` it, `stop()` it."""

    def __init__(self, name: str, handle: Callable[[Key], None], retry_seconds: float = 1.0) -> None:
        self.name = name
        self._handle = handle
        self._retry_seconds = retry_seconds
        self._cond = threading.Condition()
        self._ready: list[Key] = []
        self._queued: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []  # (due, tie-breaker, key) heap
        self._order = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def add(self, key: Key) -> None:
        """Queues `key` unless it is already waiting."""
        with self._cond:
            if key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify_all()

    def add_after(self, key: Key, seconds: float) -> None:
        """Queues `key` once `seconds` have passed."""
        with self._cond:
            heapq.heappush(self._delayed, (time.monotonic() + seconds, next(self._order), key))
            self._cond.notify_all()

    def _next(self) -> Key | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    key = heapq.heappop(self._delayed)[2]
                    if key not in self._queued:
                        self._queued.add(key)
                        self._ready.append(key)
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    return key
                timeout = self._delayed[0][0] - now if self._delayed else None
                self._cond.wait(timeout)
            return None

    def _run(self) -> None:
        while (key := self._next()) is not None:
            try:
                self._handle(key)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                log.warning("%s: %s: %s; will retry", self.name, key, exc.message)
                self.add_after(key, self._retry_seconds)
            except Exception:  # keep the controller alive; the retry may succeed
                log.exception("%s: %s failed; will retry", self.name, key)
                self.add_after(key, self._retry_seconds)


class WatchedNames:
    """An informer on one store feeding the names of the objects `wanted(obj)` picks into a KeyQueue.

    A controller owns one, passing the function that does the work for a name (`handle`).
    """

    def __init__(self, store: Any, name: str, wanted: Callable[[dict], bool], handle: Callable[[str], None]) -> None:
        self._wanted = wanted
        self._queue: KeyQueue[str] = KeyQueue(name, handle)
        self.informer = Informer(store, self._observe, name=name)

    def start(self) -> None:
        self._queue.start()
        self.informer.start()

    def stop(self) -> None:
        self.informer.stop()
        self._queue.stop()

    def _observe(self, event_type: str, obj: dict) -> None:
        for item in present_objects(event_type, obj):
            if self._wanted(item):
                self._queue.add(item["metadata"]["name"])
