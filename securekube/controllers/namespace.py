"""The namespace controller: empties a namespace that is being deleted, then lets it go.

A namespace marked for deletion (phase Terminating) keeps its `kubernetes` finalizer until
every namespaced object inside it is gone; then the controller clears the finalizer and the
store deletes the namespace.
"""
from __future__ import annotations

import logging
import queue
import threading

from securekube.api.errors import ApiError
from securekube.registry.informer import Informer, present_objects
from securekube.registry.registry import Registry

log = logging.getLogger("securekube.controllers.namespace")


class NamespaceController:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._namespaces = registry.store_for_kind("", "Namespace")
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.informer = Informer(self._namespaces, self._observe, name="namespace-controller")
        self._worker = threading.Thread(target=self._work, name="namespace-controller", daemon=True)

    def start(self) -> None:
        self._worker.start()
        self.informer.start()

    def stop(self) -> None:
        self.informer.stop()
        self._queue.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout=5)

    def _observe(self, event_type: str, obj: dict) -> None:
        objects = present_objects(event_type, obj)
        for ns in objects:
            if ns["metadata"].get("deletionTimestamp"):
                self._queue.put(ns["metadata"]["name"])

    def _work(self) -> None:
        while (name := self._queue.get()) is not None:
            try:
                self.finalize(name)
            except ApiError as exc:
                if exc.code != 404:
                    log.warning("namespace %s: %s; will retry", name, exc.message)
                    threading.Timer(1.0, self._queue.put, (name,)).start()

    def finalize(self, name: str) -> None:
        """Deletes everything in the namespace, then removes the namespace's own finalizer."""
        remaining = 0
        for store in self.registry.stores:
            if not store.type.namespaced:
                continue
            for obj in store.list(name).items:
                try:
                    _, gone = store.delete(name, obj["metadata"]["name"], grace_period=0)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
                    continue
                remaining += 0 if gone else 1
        if remaining:
            raise ApiError(409, "Conflict", f"{remaining} objects in namespace {name} still have finalizers")

        def drop_kubernetes_finalizer(ns: dict) -> dict:
            spec = ns.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
            return ns

        self._namespaces.guaranteed_update("", name, drop_kubernetes_finalizer, subresource="finalize")
