"""rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding, ClusterRoleBinding."""
from __future__ import annotations

from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.rbac import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ["User", "Group", "ServiceAccount"]


def _validate_rules(obj: dict, allow_non_resource: bool) -> list[Cause]:
    rules = obj.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [v.type_error("rules", rules, "a list")]
    causes: list[Cause] = []
    for i, rule in enumerate(rules):
        field = f"rules[{i}]"
        if not isinstance(rule, dict):
            causes.append(v.type_error(field, rule, "an object"))
            continue
        for key in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"):
            value = rule.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
                causes.append(v.type_error(f"{field}.{key}", value, "a list of strings"))
        if not rule.get("verbs"):
            causes.append(v.required(f"{field}.verbs", "verbs must contain at least one value"))
        if rule.get("nonResourceURLs"):
            if not allow_non_resource:
                causes.append(v.invalid(f"{field}.nonResourceURLs", rule["nonResourceURLs"],
                                        "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("resources") or rule.get("apiGroups"):
                causes.append(v.invalid(f"{field}.nonResourceURLs", rule["nonResourceURLs"],
                                        "rules cannot apply to both regular resources and non-resource URLs"))
        elif not rule.get("resources") or rule.get("apiGroups") is None:
            if not rule.get("resources"):
                causes.append(v.required(f"{field}.resources", "resource rules must supply at least one resource"))
            if rule.get("apiGroups") is None:
                causes.append(v.required(f"{field}.apiGroups", "resource rules must supply at least one api group"))
    return causes


def _validate_binding(obj: dict, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        return [v.required("roleRef")]
    allowed = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("apiGroup") != GROUP:
        causes.append(v.unsupported("roleRef.apiGroup", ref.get("apiGroup"), [GROUP]))
    if ref.get("kind") not in allowed:
        causes.append(v.unsupported("roleRef.kind", ref.get("kind"), allowed))
    if not ref.get("name"):
        causes.append(v.required("roleRef.name"))
    for i, subject in enumerate(obj.get("subjects") or []):
        field = f"subjects[{i}]"
        if not isinstance(subject, dict):
            causes.append(v.type_error(field, subject, "an object"))
            continue
        if subject.get("kind") not in SUBJECT_KINDS:
            causes.append(v.unsupported(f"{field}.kind", subject.get("kind"), SUBJECT_KINDS))
        if not subject.get("name"):
            causes.append(v.required(f"{field}.name"))
        if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
            causes.append(v.required(f"{field}.namespace"))
    return causes


def _role_ref(obj: dict, now) -> str:
    ref = obj.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


class RoleStrategy(Strategy):
    type = ResourceType(GROUP, "v1", "Role", "roles", "role", True)
    name_check = staticmethod(v.path_segment_name)  # upstream allows e.g. "system:discovery"
    schema = field_paths(ROLE)
    columns = (NAME_COLUMN, Column("Created At", "string", lambda o, now: (o.get("metadata") or {}).get("creationTimestamp", "")))

    def validate(self, obj: dict) -> list[Cause]:
        return _validate_rules(obj, allow_non_resource=False)


class ClusterRoleStrategy(RoleStrategy):
    type = ResourceType(GROUP, "v1", "ClusterRole", "clusterroles", "clusterrole", False)
    schema = field_paths(CLUSTER_ROLE)

    def validate(self, obj: dict) -> list[Cause]:
        return _validate_rules(obj, allow_non_resource=True)


class RoleBindingStrategy(Strategy):
    type = ResourceType(GROUP, "v1", "RoleBinding", "rolebindings", "rolebinding", True)
    name_check = staticmethod(v.path_segment_name)
    schema = field_paths(ROLE_BINDING)
    columns = (NAME_COLUMN, Column("Role", "string", _role_ref), AGE_COLUMN)

    def validate(self, obj: dict) -> list[Cause]:
        return _validate_binding(obj, namespaced=True)

    def validate_update(self, new: dict, old: dict) -> list[Cause]:
        if new.get("roleRef") != old.get("roleRef"):
            return [v.Cause("FieldValueInvalid", "Invalid value: cannot change roleRef", "roleRef")]
        return []


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    type = ResourceType(GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", False)
    schema = field_paths(CLUSTER_ROLE_BINDING)

    def validate(self, obj: dict) -> list[Cause]:
        return _validate_binding(obj, namespaced=False)
