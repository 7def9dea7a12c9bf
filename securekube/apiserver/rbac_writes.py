"""Escalation prevention for writes of RBAC objects, as upstream's RBAC REST storage does it.

Creating or updating a Role/ClusterRole needs its permissions or the `escalate` verb; a binding
needs the role's permissions or the `bind` verb. Runs before anything is stored.
"""
from __future__ import annotations

from typing import Any, Mapping

from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo
from securekube.authz.escalation import allowed_by, check_binding_write, check_role_write
from securekube.authz.interfaces import Authorizer
from securekube.authz.rbac import RBACAuthorizer
from securekube.registry.registry import Registry
from securekube.registry.store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"


class RbacWriteGuard:
    def __init__(self, registry: Registry, rbac: RBACAuthorizer, authorizer: Authorizer) -> None:
        self._registry, self._rbac, self._can = registry, rbac, allowed_by(authorizer)

    def _lookup_role(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            return self._registry.store_for_kind(RBAC_GROUP, kind).get(namespace if kind == "Role" else "", name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def __call__(self, store: Store, namespace: str, obj: dict, old: dict | None, user: UserInfo) -> None:
        kind = store.type.kind
        if store.type.group != RBAC_GROUP:
            return
        if kind in ("Role", "ClusterRole"):
            check_role_write(self._rbac, user, namespace, obj, self._can, old_obj=old)
        else:
            check_binding_write(self._rbac, user, namespace, obj, self._lookup_role, self._can, old_obj=old)
