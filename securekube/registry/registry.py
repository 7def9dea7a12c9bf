"""All stores of a cluster, built from the catalog, plus the namespace lifecycle rule for creates."""
from __future__ import annotations

from typing import Callable

from securekube.api import errors
from securekube.registry.catalog import Catalog
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

    def store(self, group: str, version: str, plural: str) -> Store | None:
        strategy = self.catalog.by_resource(group, version, plural)
        return self._stores[strategy.type] if strategy else None

    def store_for_kind(self, group: str, kind: str) -> Store:
        strategy = self.catalog.by_kind(group, kind)
        if strategy is None:
            raise KeyError(f"{kind}.{group}")
        return self._stores[strategy.type]

    @property
    def stores(self) -> list[Store]:
        return list(self._stores.values())

    def check_namespace_accepts_content(self, namespace: str) -> None:
        """NamespaceLifecycle: no new objects in a namespace that is missing or being deleted."""
        ns = self.store_for_kind("", "Namespace").get("", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden",
                                  f"unable to create new content in namespace {namespace} because it is being terminated",
                                  {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                               "message": f"namespace {namespace} is being terminated"}]})
