"""An informer: keeps a consumer in step with one kind by listing it, then watching it, in a thread.

Used for caches that authorization reads on every request (RBAC) and for controllers.
`wait_for(revision)` lets a writer wait until its own write has reached the consumer, so
a client that creates a RoleBinding and then uses it is not refused by a stale cache.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from securekube.api.errors import ApiError
from securekube.registry.store import Store

log = logging.getLogger("securekube.informer")
RETRY_SECONDS = 1.0


def present_objects(event_type: str, obj: dict) -> list[dict]:
    """The objects an informer event says exist now: all of a SYNC, the one ADDED/MODIFIED, none on DELETED."""
    if event_type == "SYNC":
        return obj["items"]
    return [] if event_type == "DELETED" else [obj]


class Informer:
    def __init__(self, store: Store, on_event: Callable[[str, dict], None], *, name: str = "") -> None:
        """`on_event(type, obj)` gets ADDED/MODIFIED/DELETED; "SYNC" marks a full re-list that starts over."""
        self.store = store
        self._on_event = on_event
        self._revision = 0
        self._synced = False
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{name or store.type.plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def synced(self) -> bool:
        return self._synced

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Blocks until events up to `revision` were delivered; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._revision >= revision, timeout)

    def wait_synced(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._synced, timeout)

    def _advance(self, revision: int, synced: bool = True) -> None:
        with self._cond:
            self._revision = max(self._revision, revision)
            self._synced = synced
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._list_and_watch()
            except ApiError as exc:  # e.g. 410 after compaction: start over from a fresh list
                log.warning("informer for %s restarts: %s", self.store.type.plural, exc.message)
            except Exception:  # keep the cache alive; the next list repairs it
                log.exception("informer for %s failed", self.store.type.plural)
                self._stopping.wait(RETRY_SECONDS)

    def _list_and_watch(self) -> None:
        listed = self.store.list("")
        self._on_event("SYNC", {"items": listed.items})
        self._advance(int(listed.resource_version))
        watch = self.store.watch("", listed.resource_version)
        try:
            while not self._stopping.is_set():
                for event in watch.next(0.5):
                    self._on_event(event.type, event.object)
                self._advance(watch.revision)
        finally:
            watch.close()
