"""Every kind the API serves: one line per kind."""
from __future__ import annotations

from securekube.registry.kinds.configmaps import ConfigMapStrategy
from securekube.registry.kinds.events import EventStrategy
from securekube.registry.kinds.namespaces import NamespaceStrategy
from securekube.registry.kinds.nodes import NodeStrategy
from securekube.registry.kinds.pods import PodStrategy
from securekube.registry.kinds.rbac import (ClusterRoleBindingStrategy, ClusterRoleStrategy, RoleBindingStrategy,
                                            RoleStrategy)
from securekube.registry.kinds.secrets import SecretStrategy
from securekube.registry.kinds.serviceaccounts import ServiceAccountStrategy
from securekube.registry.resource import Strategy

STRATEGIES: tuple[type[Strategy], ...] = (
    NamespaceStrategy,
    PodStrategy,
    SecretStrategy,
    ConfigMapStrategy,
    ServiceAccountStrategy,
    EventStrategy,
    NodeStrategy,
    RoleStrategy,
    ClusterRoleStrategy,
    RoleBindingStrategy,
    ClusterRoleBindingStrategy,
)


class Catalog:
    """Looks kinds up by (group, version, plural) and by (group, kind)."""

    def __init__(self, strategies: tuple[type[Strategy], ...] = STRATEGIES) -> None:
        self.strategies = tuple(s() for s in strategies)
        self._by_resource = {(s.type.group, s.type.version, s.type.plural): s for s in self.strategies}
        self._by_kind = {(s.type.group, s.type.kind): s for s in self.strategies}

    def by_resource(self, group: str, version: str, plural: str) -> Strategy | None:
        return self._by_resource.get((group, version, plural))

    def by_kind(self, group: str, kind: str) -> Strategy | None:
        return self._by_kind.get((group, kind))

    def groups(self) -> dict[str, list[str]]:
        """group -> versions served, in a stable order (core group is "")."""
        result: dict[str, list[str]] = {}
        for s in self.strategies:
            versions = result.setdefault(s.type.group, [])
            if s.type.version not in versions:
                versions.append(s.type.version)
        return result
