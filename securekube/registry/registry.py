"""All stores of a cluster, built from the catalog, plus the namespace lifecycle rule for creates."""
from __future__ import annotations

from typing import Callable

from securekube.api import errors
from securekube.registry.catalog import Catalog
from securekube.registry.resource import Strategy
from securekube.registry.store import Store, ValueTransformer
from securekube.storage.interfaces import Storage


class Registry:
    def __init__(self, storage: Storage, transformer_for: Callable[[str, str], ValueTransformer],
                 catalog: Catalog | None = None) -> None:
        """`transformer_for(resource, group)` picks the encryption-at-rest transformer of each kind."""
        self.storage = storage
        self.catalog = catalog or Catalog()
        self._stores = {s.type: Store(storage, s, transformer_for(s.type.plural, s.type.group))
                        for s in self.catalog.strategies}

        self._transformer_for = transformer_for

    def store(self, group: str, version: str, plural: str) -> Store | None:
        strategy = self.catalog.by_resource(group, version, plural)
        return self._store_of(strategy) if strategy else None

    def store_for_kind(self, group: str, kind: str) -> Store:
        strategy = self.catalog.by_kind(group, kind)
        if strategy is None:
            raise KeyError(f"{kind}.{group}")
        return self._store_of(strategy)

    def _store_of(self, strategy: Strategy) -> Store:
        store = self._stores.get(strategy.type)
        if store is None or store.strategy is not strategy:  # a kind registered at run time
            t = strategy.type
            store = self._stores[t] = Store(self.storage, strategy, self._transformer_for(t.plural, t.group))
        return store

    @property
    def stores(self) -> list[Store]:
        return [self._store_of(s) for s in self.catalog.strategies]

    def check_namespace_accepts_content(self, namespace: str) -> None:
        """NamespaceLifecycle: no new objects in a namespace that is missing or being deleted."""
        ns = self.store_for_kind("", "Namespace").get("", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden",
                                  f"unable to create new content in namespace {namespace} because it is being terminated",
                                  {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                               "message": f"namespace {namespace} is being terminated"}]})
