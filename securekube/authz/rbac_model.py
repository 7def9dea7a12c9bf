"""RBAC objects (rbac.authorization.k8s.io/v1) as frozen records, and rule sets compiled for matching.

`parse_role` / `parse_binding` turn an API object (a dict) into an immutable record, checking
everything the authorizer relies on first, so a malformed object raises `InvalidRBACObject` and is
never half-applied. `RuleSet` is a role's rules indexed so that a decision costs a few dict
look-ups no matter how many rules the role has. Matching follows upstream's evaluation helpers
(k8s.io/kubernetes pkg/apis/rbac/v1) exactly; the comments note where that is surprising.
"""
from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
SERVICE_ACCOUNT_USER_PREFIX = "system:serviceaccount:"

ROLE = "Role"
CLUSTER_ROLE = "ClusterRole"
ROLE_BINDING = "RoleBinding"
CLUSTER_ROLE_BINDING = "ClusterRoleBinding"
ROLE_KINDS = frozenset({ROLE, CLUSTER_ROLE})
BINDING_KINDS = frozenset({ROLE_BINDING, CLUSTER_ROLE_BINDING})

USER = "User"
GROUP = "Group"
SERVICE_ACCOUNT = "ServiceAccount"

# Upstream's ValidateServiceAccountName: a DNS-1123 subdomain. It also keeps the
# "system:serviceaccount:<ns>:<name>" form unambiguous, since a name cannot hold ':'.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_SUBDOMAIN_MAX = 253


class InvalidRBACObject(ValueError):
    """An RBAC object that upstream validation would reject; it grants nothing and is not applied."""


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rbac/v1 PolicyRule, with list fields as tuples in the order written."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, list[str]]:
        """The rule in API form; empty lists are left out, as upstream's omitempty does."""
        out: dict[str, list[str]] = {}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        out["verbs"] = list(self.verbs)
        return out


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One matchExpressions entry of a metav1.LabelSelector."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            # Upstream: a missing key satisfies NotIn.
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist; other operators are rejected when parsed


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A metav1.LabelSelector; all its parts must hold. An empty selector matches everything (upstream)."""

    match_labels: tuple[tuple[str, str], ...]
    match_expressions: tuple[LabelRequirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )


@dataclass(frozen=True, slots=True)
class RoleRecord:
    """A Role or ClusterRole. `aggregation` is None unless a ClusterRole has an aggregationRule."""

    kind: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    rules: tuple[PolicyRule, ...]
    aggregation: tuple[LabelSelector, ...] | None


@dataclass(frozen=True, slots=True)
class Subject:
    """One binding subject. `namespace` is as written; `user_name` is the username a
    ServiceAccount subject stands for (empty for User and Group subjects)."""

    kind: str
    name: str
    namespace: str
    user_name: str

    def describe(self) -> str:
        """Upstream's subject description for reasons: kind plus the quoted name (name/namespace for SAs)."""
        if self.kind == SERVICE_ACCOUNT:
            return f"{self.kind} {go_quote(self.name + '/' + self.namespace)}"
        return f"{self.kind} {go_quote(self.name)}"

    def index_key(self) -> tuple[str, str]:
        """("user", username) or ("group", group): what a request's identity is looked up by."""
        if self.kind == GROUP:
            return ("group", self.name)
        if self.kind == USER:
            return ("user", self.name)
        return ("user", self.user_name)

    def applies_to(self, username: str, groups: Iterable[str]) -> bool:
        kind, key = self.index_key()
        return key == username if kind == "user" else key in groups


@dataclass(frozen=True, slots=True)
class BindingRecord:
    """A RoleBinding or ClusterRoleBinding."""

    kind: str
    namespace: str
    name: str
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...]

    def index_keys(self) -> frozenset[tuple[str, str]]:
        return frozenset(s.index_key() for s in self.subjects)

    def first_subject_for(self, username: str, groups: Iterable[str]) -> Subject | None:
        """The first subject (in written order) that names this identity, as upstream reports it."""
        group_set = frozenset(groups)
        for subject in self.subjects:
            if subject.applies_to(username, group_set):
                return subject
        return None


# --------------------------------------------------------------------------- parsing


def parse_role(kind: str, obj: Mapping[str, Any]) -> RoleRecord:
    """A Role/ClusterRole API object as a record; raises InvalidRBACObject if malformed."""
    namespace, name = _parse_metadata(kind, obj)
    labels = _string_map(obj["metadata"].get("labels"), "metadata.labels")
    raw_rules = _list(obj.get("rules"), "rules")
    rules = tuple(_parse_rule(r, f"rules[{i}]") for i, r in enumerate(raw_rules))
    aggregation: tuple[LabelSelector, ...] | None = None
    raw_aggregation = obj.get("aggregationRule")
    if raw_aggregation is not None:
        if kind != CLUSTER_ROLE:
            raise InvalidRBACObject("aggregationRule: only a ClusterRole may aggregate")
        if not isinstance(raw_aggregation, Mapping):
            raise InvalidRBACObject("aggregationRule: must be an object")
        selectors = _list(raw_aggregation.get("clusterRoleSelectors"), "aggregationRule.clusterRoleSelectors")
        aggregation = tuple(
            _parse_selector(s, f"aggregationRule.clusterRoleSelectors[{i}]") for i, s in enumerate(selectors)
        )
    return RoleRecord(
        kind=kind,
        namespace=namespace,
        name=name,
        labels=types.MappingProxyType(labels),
        rules=rules,
        aggregation=aggregation,
    )


def parse_binding(kind: str, obj: Mapping[str, Any]) -> BindingRecord:
    """A RoleBinding/ClusterRoleBinding API object as a record; raises InvalidRBACObject if malformed."""
    namespace, name = _parse_metadata(kind, obj)
    role_ref = obj.get("roleRef")
    if not isinstance(role_ref, Mapping):
        raise InvalidRBACObject("roleRef: required")
    allowed_role_kinds = (ROLE, CLUSTER_ROLE) if kind == ROLE_BINDING else (CLUSTER_ROLE,)
    role_kind = role_ref.get("kind")
    if not isinstance(role_kind, str) or role_kind not in allowed_role_kinds:
        raise InvalidRBACObject(f"roleRef.kind: must be one of {', '.join(allowed_role_kinds)}")
    if role_ref.get("apiGroup") != RBAC_GROUP:
        raise InvalidRBACObject(f"roleRef.apiGroup: must be {RBAC_GROUP}")
    role_name = _path_segment_name(role_ref.get("name"), "roleRef.name")
    raw_subjects = _list(obj.get("subjects"), "subjects")
    subjects = tuple(
        _parse_subject(s, f"subjects[{i}]", binding_namespace=namespace) for i, s in enumerate(raw_subjects)
    )
    return BindingRecord(kind, namespace, name, role_kind, role_name, subjects)


def _parse_metadata(kind: str, obj: Mapping[str, Any]) -> tuple[str, str]:
    if not isinstance(obj, Mapping):
        raise InvalidRBACObject("object: must be a mapping")
    if obj.get("kind", kind) != kind:
        raise InvalidRBACObject(f"kind: expected {kind}")
    if obj.get("apiVersion", RBAC_API_VERSION) != RBAC_API_VERSION:
        raise InvalidRBACObject(f"apiVersion: expected {RBAC_API_VERSION}")
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        raise InvalidRBACObject("metadata: required")
    name = _path_segment_name(metadata.get("name"), "metadata.name")
    namespace = metadata.get("namespace") or ""
    if not isinstance(namespace, str):
        raise InvalidRBACObject("metadata.namespace: must be a string")
    namespaced = kind in (ROLE, ROLE_BINDING)
    if namespaced and not namespace:
        raise InvalidRBACObject(f"metadata.namespace: required for a {kind}")
    if not namespaced and namespace:
        raise InvalidRBACObject(f"metadata.namespace: a {kind} is cluster-scoped")
    return namespace, name


def _parse_rule(raw: Any, path: str) -> PolicyRule:
    if not isinstance(raw, Mapping):
        raise InvalidRBACObject(f"{path}: must be an object")
    return PolicyRule(
        verbs=_string_list(raw.get("verbs"), f"{path}.verbs"),
        api_groups=_string_list(raw.get("apiGroups"), f"{path}.apiGroups"),
        resources=_string_list(raw.get("resources"), f"{path}.resources"),
        resource_names=_string_list(raw.get("resourceNames"), f"{path}.resourceNames"),
        non_resource_urls=_string_list(raw.get("nonResourceURLs"), f"{path}.nonResourceURLs"),
    )


def _parse_subject(raw: Any, path: str, binding_namespace: str) -> Subject:
    if not isinstance(raw, Mapping):
        raise InvalidRBACObject(f"{path}: must be an object")
    kind = raw.get("kind")
    name = raw.get("name")
    namespace = raw.get("namespace") or ""
    api_group = raw.get("apiGroup") or ""
    if not isinstance(name, str) or not name:
        raise InvalidRBACObject(f"{path}.name: required")
    if not isinstance(namespace, str) or not isinstance(api_group, str):
        raise InvalidRBACObject(f"{path}: namespace and apiGroup must be strings")
    if kind in (USER, GROUP):
        # rbac/v1 defaulting fills an empty apiGroup for User and Group subjects.
        if api_group not in ("", RBAC_GROUP):
            raise InvalidRBACObject(f"{path}.apiGroup: must be {RBAC_GROUP}")
        return Subject(kind, name, namespace, "")
    if kind == SERVICE_ACCOUNT:
        if api_group:
            raise InvalidRBACObject(f'{path}.apiGroup: must be "" for a ServiceAccount')
        if len(name) > _DNS_SUBDOMAIN_MAX or not _DNS_SUBDOMAIN.match(name):
            raise InvalidRBACObject(f"{path}.name: a ServiceAccount name must be a DNS-1123 subdomain")
        # Upstream: inside a RoleBinding an empty namespace means the binding's own namespace;
        # a ClusterRoleBinding has none to fall back to, so validation requires it there.
        effective_namespace = namespace or binding_namespace
        if not effective_namespace:
            raise InvalidRBACObject(f"{path}.namespace: required for a ServiceAccount subject")
        if ":" in effective_namespace:
            raise InvalidRBACObject(f"{path}.namespace: must not contain ':'")
        user_name = f"{SERVICE_ACCOUNT_USER_PREFIX}{effective_namespace}:{name}"
        return Subject(kind, name, effective_namespace, user_name)
    raise InvalidRBACObject(f"{path}.kind: must be one of User, Group, ServiceAccount")


def _parse_selector(raw: Any, path: str) -> LabelSelector:
    if not isinstance(raw, Mapping):
        raise InvalidRBACObject(f"{path}: must be an object")
    match_labels = _string_map(raw.get("matchLabels"), f"{path}.matchLabels")
    requirements = []
    for i, expr in enumerate(_list(raw.get("matchExpressions"), f"{path}.matchExpressions")):
        expr_path = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str) or not expr["key"]:
            raise InvalidRBACObject(f"{expr_path}.key: required")
        operator = expr.get("operator")
        values = _string_list(expr.get("values"), f"{expr_path}.values")
        if operator in ("In", "NotIn"):
            if not values:
                raise InvalidRBACObject(f"{expr_path}.values: required for operator {operator}")
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                raise InvalidRBACObject(f"{expr_path}.values: must be empty for operator {operator}")
        else:
            raise InvalidRBACObject(f"{expr_path}.operator: must be In, NotIn, Exists or DoesNotExist")
        requirements.append(LabelRequirement(expr["key"], operator, frozenset(values)))
    return LabelSelector(tuple(sorted(match_labels.items())), tuple(requirements))


def _path_segment_name(value: Any, path: str) -> str:
    # Upstream's minimal name rule for RBAC objects (path.IsValidPathSegmentName).
    if not isinstance(value, str) or not value:
        raise InvalidRBACObject(f"{path}: required")
    if value in (".", "..") or "/" in value or "%" in value:
        raise InvalidRBACObject(f"{path}: may not be '.' or '..' and may not contain '/' or '%'")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRBACObject(f"{path}: must be a list")
    return value


def _string_list(value: Any, path: str) -> tuple[str, ...]:
    items = _list(value, path)
    if not all(isinstance(v, str) for v in items):
        raise InvalidRBACObject(f"{path}: must be a list of strings")
    return tuple(items)


def _string_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRBACObject(f"{path}: must map strings to strings")
    return dict(value)


# --------------------------------------------------------------------------- matching

_ALL = "*"


@dataclass(frozen=True, slots=True)
class _Grant:
    """Verbs granted on one (apiGroup, resource) pair, limited to `names` unless that is None."""

    verbs: frozenset[str]
    names: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A role's rules compiled for matching: apiGroup -> resource -> grants, and URL tables.

    A request is looked up under its own group and "*", and under its own resource
    ("pods/log"), "*" and "*/<subresource>" — the only forms upstream matches — so the cost
    does not grow with the number of rules.
    """

    rules: tuple[PolicyRule, ...]
    by_group: Mapping[str, Mapping[str, tuple[_Grant, ...]]]
    url_exact: Mapping[str, frozenset[str]]
    url_prefixes: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def compile(cls, rules: tuple[PolicyRule, ...]) -> RuleSet:
        unnamed: dict[str, dict[str, set[str]]] = {}
        named: dict[str, dict[str, list[_Grant]]] = {}
        url_exact: dict[str, set[str]] = {}
        url_prefixes: dict[str, set[str]] = {}
        for rule in rules:
            for group in rule.api_groups:
                for resource in rule.resources:
                    if rule.resource_names:
                        grant = _Grant(frozenset(rule.verbs), frozenset(rule.resource_names))
                        named.setdefault(group, {}).setdefault(resource, []).append(grant)
                    else:
                        unnamed.setdefault(group, {}).setdefault(resource, set()).update(rule.verbs)
            for url in rule.non_resource_urls:
                if url.endswith(_ALL):
                    # Upstream trims every trailing '*' and prefix-matches; "*" alone matches all.
                    url_prefixes.setdefault(url.rstrip(_ALL), set()).update(rule.verbs)
                else:
                    url_exact.setdefault(url, set()).update(rule.verbs)
        by_group: dict[str, dict[str, tuple[_Grant, ...]]] = {}
        for group in unnamed.keys() | named.keys():
            resources = unnamed.get(group, {}).keys() | named.get(group, {}).keys()
            by_group[group] = {
                resource: tuple(
                    ([_Grant(frozenset(unnamed[group][resource]), None)] if resource in unnamed.get(group, {}) else [])
                    + named.get(group, {}).get(resource, [])
                )
                for resource in resources
            }
        return cls(
            rules=rules,
            by_group=by_group,
            url_exact={url: frozenset(verbs) for url, verbs in url_exact.items()},
            url_prefixes=tuple((prefix, frozenset(verbs)) for prefix, verbs in url_prefixes.items()),
        )

    def allows_resource(self, verb: str, api_group: str, resource_forms: tuple[str, ...], name: str) -> bool:
        """Whether a rule grants `verb` on a resource request.

        `resource_forms` is what the request may be matched under (see `resource_forms`).
        A rule with resourceNames matches only a request whose name is listed, so it never
        matches create, list, watch or deletecollection without a name (upstream behaviour).
        """
        for group in (api_group, _ALL):
            by_resource = self.by_group.get(group)
            if by_resource is None:
                continue
            for form in resource_forms:
                grants = by_resource.get(form)
                if grants is None:
                    continue
                for grant in grants:
                    if (verb in grant.verbs or _ALL in grant.verbs) and (grant.names is None or name in grant.names):
                        return True
        return False

    def allows_non_resource(self, verb: str, path: str) -> bool:
        """Whether a rule grants `verb` on a non-resource URL (exact, or a trailing-'*' prefix)."""
        verbs = self.url_exact.get(path)
        if verbs is not None and (verb in verbs or _ALL in verbs):
            return True
        for prefix, verbs in self.url_prefixes:
            if path.startswith(prefix) and (verb in verbs or _ALL in verbs):
                return True
        return False


def resource_forms(resource: str, subresource: str) -> tuple[str, ...]:
    """The rule resources that can match a request: "pods/log", "*" and "*/log"; or "pods" and "*"."""
    if subresource:
        return (f"{resource}/{subresource}", _ALL, f"*/{subresource}")
    return (resource, _ALL)


def go_quote(value: str) -> str:
    """`value` quoted like Go's %q, so reasons match upstream and cannot smuggle control
    characters (a newline in a username, say) into an audit log line."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = types.MappingProxyType(
    {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
     "\\": "\\\\", '"': '\\"'}
)
