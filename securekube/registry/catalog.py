"""Every kind the API serves: one line per kind."""
from __future__ import annotations

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


class Catalog:
    """Looks kinds up by (group, version, plural) and by (group, kind).

    The built-in kinds are fixed; kinds defined at run time (the Constraint kinds of
    ConstraintTemplates) come and go through `register`/`unregister`. Each change publishes new
    lookup tables at once, so a reader never sees half of one.
    """

    def __init__(self, strategies: tuple[type[Strategy], ...] = STRATEGIES,
                 virtual: tuple[ResourceType, ...] = VIRTUAL_TYPES) -> None:
        self.virtual = virtual
        self._virtual_by_resource = {(t.group, t.version, t.plural): t for t in virtual}
        self._builtin = tuple(s() for s in strategies)
        self._publish(self._builtin)

    def _publish(self, strategies: tuple[Strategy, ...]) -> None:
        by_resource = {(s.type.group, s.type.version, s.type.plural): s for s in strategies}
        by_kind = {(s.type.group, s.type.kind): s for s in strategies}
        self._by_resource, self._by_kind, self.strategies = by_resource, by_kind, strategies

    def register(self, strategy: Strategy) -> None:
        """Serves a kind defined at run time; a kind or resource already served is refused."""
        t = strategy.type
        if (t.group, t.kind) in self._by_kind or (t.group, t.version, t.plural) in self._by_resource:
            raise ValueError(f"{t.kind}.{t.group} is already served")
        self._publish((*self.strategies, strategy))

    def unregister(self, group: str, kind: str) -> None:
        """Stops serving a kind registered at run time (built-in kinds stay)."""
        self._publish(tuple(s for s in self.strategies
                            if s in self._builtin or (s.type.group, s.type.kind) != (group, kind)))

    def by_resource(self, group: str, version: str, plural: str) -> Strategy | None:
        return self._by_resource.get((group, version, plural))

    def virtual_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._virtual_by_resource.get((group, version, plural))

    @property
    def types(self) -> tuple[ResourceType, ...]:
        """Every kind served, stored or virtual, in a stable order."""
        return tuple(s.type for s in self.strategies) + self.virtual

    def by_kind(self, group: str, kind: str) -> Strategy | None:
        return self._by_kind.get((group, kind))

    def groups(self) -> dict[str, list[str]]:
        """group -> versions served, in a stable order (core group is "")."""
        result: dict[str, list[str]] = {}
        for t in self.types:
            versions = result.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return result
