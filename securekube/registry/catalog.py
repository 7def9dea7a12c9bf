"""Every kind the API serves: one line per kind."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from securekube.registry.kinds.certificatesigningrequests import CertificateSigningRequestStrategy
from securekube.registry.kinds.configmaps import ConfigMapStrategy
from securekube.registry.kinds.events import EventStrategy
from securekube.registry.kinds.gatekeeper import ConstraintTemplateStrategy
from securekube.registry.kinds.leases import LeaseStrategy
from securekube.registry.kinds.namespaces import NamespaceStrategy
from securekube.registry.kinds.nodes import NodeStrategy
from securekube.registry.kinds.pods import PodStrategy
from securekube.registry.kinds.rbac import (ClusterRoleBindingStrategy, ClusterRoleStrategy, RoleBindingStrategy,
                                            RoleStrategy)
from securekube.registry.kinds.secrets import SecretStrategy
from securekube.registry.kinds.serviceaccounts import ServiceAccountStrategy
from securekube.registry.resource import ResourceType, Strategy

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
    CertificateSigningRequestStrategy,
    LeaseStrategy,
    ConstraintTemplateStrategy,
)


_REVIEW_VERBS = ("create",)
# Kinds that are computed per request and never stored (the review APIs).
VIRTUAL_TYPES: tuple[ResourceType, ...] = (
    ResourceType("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", False, verbs=_REVIEW_VERBS),
    ResourceType("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", False,
                 verbs=_REVIEW_VERBS),
    ResourceType("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview",
                 False, verbs=_REVIEW_VERBS),
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
                 "selfsubjectaccessreview", False, verbs=_REVIEW_VERBS),
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
                 "selfsubjectrulesreview", False, verbs=_REVIEW_VERBS),
    ResourceType("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
                 "localsubjectaccessreview", True, verbs=_REVIEW_VERBS),
)


@dataclass(frozen=True)
class _Tables:
    """One published state of the catalog: replaced whole, so readers never see half of a change."""

    strategies: tuple[Strategy, ...]
    by_resource: Mapping[tuple[str, str, str], Strategy]
    by_kind: Mapping[tuple[str, str], Strategy]

    @classmethod
    def of(cls, strategies: tuple[Strategy, ...]) -> _Tables:
        return cls(strategies, {(s.type.group, s.type.version, s.type.plural): s for s in strategies},
                   {(s.type.group, s.type.kind): s for s in strategies})


class Catalog:
    """Looks kinds up by (group, version, plural) and by (group, kind).

    The built-in kinds are fixed; kinds defined at run time (the Constraint kinds of
    ConstraintTemplates) come and go through `register`/`unregister`, which callers serialise.
    Each change publishes new lookup tables in one assignment.
    """

    def __init__(self, strategies: tuple[type[Strategy], ...] = STRATEGIES,
                 virtual: tuple[ResourceType, ...] = VIRTUAL_TYPES) -> None:
        self.virtual = virtual
        self._virtual_by_resource = {(t.group, t.version, t.plural): t for t in virtual}
        self._builtin = tuple(s() for s in strategies)
        self._tables = _Tables.of(self._builtin)

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        return self._tables.strategies

    def register(self, strategy: Strategy) -> None:
        """Serves a kind defined at run time; a kind or resource already served is refused."""
        t, tables = strategy.type, self._tables
        if (t.group, t.kind) in tables.by_kind or (t.group, t.version, t.plural) in tables.by_resource:
            raise ValueError(f"{t.kind}.{t.group} is already served")
        self._tables = _Tables.of((*tables.strategies, strategy))

    def unregister(self, group: str, kind: str) -> None:
        """Stops serving a kind registered at run time (built-in kinds stay)."""
        self._tables = _Tables.of(tuple(s for s in self._tables.strategies
                                        if s in self._builtin or (s.type.group, s.type.kind) != (group, kind)))

    def by_resource(self, group: str, version: str, plural: str) -> Strategy | None:
        return self._tables.by_resource.get((group, version, plural))

    def virtual_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._virtual_by_resource.get((group, version, plural))

    @property
    def types(self) -> tuple[ResourceType, ...]:
        """Every kind served, stored or virtual, in a stable order."""
        return tuple(s.type for s in self._tables.strategies) + self.virtual

    def by_kind(self, group: str, kind: str) -> Strategy | None:
        return self._tables.by_kind.get((group, kind))

    def groups(self) -> dict[str, list[str]]:
        """group -> versions served, in a stable order (core group is "")."""
        result: dict[str, list[str]] = {}
        for t in self.types:
            versions = result.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return result
