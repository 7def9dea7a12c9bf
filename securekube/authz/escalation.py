"""Privilege-escalation prevention for RBAC writes, with upstream's rules and messages.

RBAC would be pointless if anyone allowed to write Roles or bindings could grant themselves
more than they hold. Upstream (k8s.io/kubernetes pkg/registry/rbac) therefore checks every
create and update of a Role, ClusterRole, RoleBinding or ClusterRoleBinding:

- a Role/ClusterRole write is allowed if the writer already holds every permission it grants
  (in the role's namespace, or cluster-wide for a ClusterRole), or may `escalate` that role;
  setting or changing an aggregationRule needs full authority (`*` on everything), because
  aggregation can gather any permission that exists now or later;
- a binding write is allowed if the writer may `bind` the referenced role, or already holds
  every permission of that role in the binding's namespace (cluster-wide for a ClusterRoleBinding);
- members of `system:masters` skip both checks;
- an update that only changes what the garbage collector needs (owner references, finalizers,
  deletion fields) is not checked, so the collector can clean up roles it could not create.

"Holds" means granted by RBAC alone (upstream's rule resolver), never by another authorizer.
The checks are pure functions of the RBAC state, the written object and an access-check
callback; the API handler calls them after decoding and before storing.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from securekube.api import errors
from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Authorizer, Verdict
from securekube.authz.rbac import RBACAuthorizer
from securekube.authz.rbac_model import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    RBAC_GROUP,
    ROLE,
    ROLE_BINDING,
    InvalidRBACObject,
    PolicyRule,
    go_quote,
)

__all__ = [
    "SUPERUSER_GROUP",
    "AccessCheck",
    "EscalationError",
    "RoleLookup",
    "allowed_by",
    "check_binding_write",
    "check_role_write",
    "compact_rules",
    "compact_string",
    "covers",
]

# Upstream's privileged group: the API server's own loopback client is in it, so its members
# can already do anything and checking them would only break bootstrapping.
SUPERUSER_GROUP = "system:masters"

AGGREGATION_NEEDS_FULL_AUTHORITY = "must have cluster-admin privileges to use the aggregationRule"

_ALL = "*"
_FULL_AUTHORITY = (
    PolicyRule(verbs=(_ALL,), api_groups=(_ALL,), resources=(_ALL,)),
    PolicyRule(verbs=(_ALL,), non_resource_urls=(_ALL,)),
)
# metadata fields the garbage collector writes; an update touching only these is not checked.
_GC_METADATA_FIELDS = ("ownerReferences", "finalizers", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")

AccessCheck = Callable[[Attributes], bool]
"""Asks the real authorizer chain whether a request is allowed (ALLOW only), e.g. `allowed_by(chain)`."""

RoleLookup = Callable[[str, str, str], Mapping[str, Any] | None]
"""(kind, namespace, name) -> the stored Role/ClusterRole object, or None if there is none."""


class EscalationError(ApiError):
    """An RBAC write refused by escalation prevention, carrying upstream's Status.

    403 Forbidden with upstream's message (`<resource> "<name>" is forbidden: user "x"
    (groups=[...]) is attempting to grant RBAC permissions not currently held: ...`), or 404
    NotFound when a binding names a role that does not exist. The message lists RBAC rules and
    the writer's identity only — nothing secret.
    """


def allowed_by(authorizer: Authorizer) -> AccessCheck:
    """An `AccessCheck` that asks `authorizer` and accepts only an explicit ALLOW."""

    def check(attrs: Attributes) -> bool:
        return authorizer.authorize(attrs).verdict is Verdict.ALLOW

    return check


# ---------------------------------------------------------------------------- rule coverage


def covers(owner_rules: Iterable[Mapping[str, Any]], requested_rules: Iterable[Mapping[str, Any]]
           ) -> tuple[bool, list[dict[str, list[str]]]]:
    """Whether `owner_rules` allow everything `requested_rules` do, and the pieces they do not.

    Upstream's check: every requested rule is broken down into atomic pieces — one verb on one
    (apiGroup, resource[, resourceName]), or one verb on one nonResourceURL — and each piece must
    be allowed by a single owner rule, counting "*" verbs, groups and resources, "*/<subresource>"
    resources, trailing-"*" URLs, and owner rules without resourceNames as covering every name.
    The uncovered pieces come back as PolicyRule dicts, in the order of the requested rules.
    Raises InvalidRBACObject if a rule is not PolicyRule-shaped.
    """
    owners = [_OwnerRule.of(_policy_rule(rule, f"owner rules[{i}]")) for i, rule in enumerate(owner_rules)]
    uncovered = [
        piece.to_dict()
        for i, rule in enumerate(requested_rules)
        for piece in _breakdown(_policy_rule(rule, f"rules[{i}]"))
        if not any(owner.covers(piece) for owner in owners)
    ]
    return not uncovered, uncovered


def compact_rules(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, list[str]]]:
    """Upstream's CompactRules: merges the verbs of "simple" rules naming the same target.

    A simple rule has verbs, exactly one apiGroup and one resource, at most one resourceName and
    nothing else; it is what `covers` reports. Other rules are kept as they are, simple ones follow.
    """
    kept: list[PolicyRule] = []
    merged: dict[tuple[str, str, str | None], PolicyRule] = {}
    for i, raw in enumerate(rules):
        rule = _policy_rule(raw, f"rules[{i}]")
        target = _simple_target(rule)
        if target is None:
            kept.append(rule)
        elif target in merged:
            earlier = merged[target]
            merged[target] = PolicyRule(earlier.verbs + rule.verbs, earlier.api_groups, earlier.resources,
                                        earlier.resource_names)
        else:
            merged[target] = rule
    return [rule.to_dict() for rule in kept + list(merged.values())]


def compact_string(rule: Mapping[str, Any]) -> str:
    """Upstream's compact form of a rule for messages: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.

    Fields are in upstream's order and left out when empty; each list is printed like Go's %q
    of a []string (quoted items separated by spaces), so control characters are escaped.
    """
    parsed = _policy_rule(rule, "rule")
    parts = [
        f"{label}:[{' '.join(go_quote(item) for item in values)}]"
        for label, values in (
            ("APIGroups", parsed.api_groups),
            ("Resources", parsed.resources),
            ("NonResourceURLs", parsed.non_resource_urls),
            ("ResourceNames", parsed.resource_names),
            ("Verbs", parsed.verbs),
        )
        if values
    ]
    return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True, slots=True)
class _OwnerRule:
    """An owner's PolicyRule as sets, for answering many coverage questions quickly."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    non_resource_urls: tuple[str, ...]

    @classmethod
    def of(cls, rule: PolicyRule) -> _OwnerRule:
        return cls(frozenset(rule.verbs), frozenset(rule.api_groups), frozenset(rule.resources),
                   frozenset(rule.resource_names), rule.non_resource_urls)

    def covers(self, piece: PolicyRule) -> bool:
        """Upstream's ruleCovers for one atomic piece (at most one verb, resource, name or URL)."""
        if not (_ALL in self.verbs or self.verbs.issuperset(piece.verbs)):
            return False
        if not (_ALL in self.api_groups or self.api_groups.issuperset(piece.api_groups)):
            return False
        if not all(self._covers_resource(resource) for resource in piece.resources):
            return False
        if piece.resource_names:
            names_covered = not self.resource_names or self.resource_names.issuperset(piece.resource_names)
        else:
            # A rule limited to names cannot cover a grant on every name.
            names_covered = not self.resource_names
        if not names_covered:
            return False
        return all(any(_url_covers(owner, url) for owner in self.non_resource_urls)
                   for url in piece.non_resource_urls)

    def _covers_resource(self, resource: str) -> bool:
        if _ALL in self.resources or resource in self.resources:
            return True
        # "pods/log" is also covered by "*/log" (upstream); a plain resource only by itself or "*".
        _, slash, subresource = resource.partition("/")
        return bool(slash) and f"*/{subresource}" in self.resources


def _url_covers(owner: str, url: str) -> bool:
    return owner == url or (owner.endswith(_ALL) and url.startswith(owner.rstrip(_ALL)))


def _breakdown(rule: PolicyRule) -> Iterator[PolicyRule]:
    """Upstream's BreakdownRule: one piece per verb x (group, resource[, name]) and per verb x URL."""
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    for name in rule.resource_names:
                        yield PolicyRule((verb,), (group,), (resource,), (name,))
                else:
                    yield PolicyRule((verb,), (group,), (resource,))
    for url in rule.non_resource_urls:
        for verb in rule.verbs:
            yield PolicyRule((verb,), non_resource_urls=(url,))


def _simple_target(rule: PolicyRule) -> tuple[str, str, str | None] | None:
    if len(rule.api_groups) != 1 or len(rule.resources) != 1:
        return None
    if len(rule.resource_names) > 1 or rule.non_resource_urls:
        return None
    name = rule.resource_names[0] if rule.resource_names else None
    return (rule.api_groups[0], rule.resources[0], name)


def _policy_rule(raw: Any, path: str) -> PolicyRule:
    if not isinstance(raw, Mapping):
        raise InvalidRBACObject(f"{path}: must be an object")

    def strings(field: str) -> tuple[str, ...]:
        value = raw.get(field)
        if value is None:
            return ()
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise InvalidRBACObject(f"{path}.{field}: must be a list of strings")
        return tuple(value)

    return PolicyRule(
        verbs=strings("verbs"),
        api_groups=strings("apiGroups"),
        resources=strings("resources"),
        resource_names=strings("resourceNames"),
        non_resource_urls=strings("nonResourceURLs"),
    )


# ---------------------------------------------------------------------------- write checks


def check_role_write(
    authorizer: RBACAuthorizer,
    user: UserInfo,
    namespace: str,
    role_obj: Mapping[str, Any],
    can: AccessCheck,
    *,
    old_obj: Mapping[str, Any] | None = None,
) -> None:
    """Refuses (EscalationError) a Role/ClusterRole create or update that would escalate.

    `namespace` is the request's namespace ("" for a ClusterRole). Pass `old_obj`, the stored
    object, for an update: an update that changes only garbage-collector fields is then allowed,
    and an aggregationRule being removed also needs full authority (upstream). `can` asks the
    real authorizer chain about the `escalate` verb. Raises InvalidRBACObject for a malformed object.
    """
    kind = _object_kind(role_obj, namespace, namespaced=ROLE, cluster=CLUSTER_ROLE)
    name = _object_name(role_obj)
    resource = "roles" if kind == ROLE else "clusterroles"
    scope = namespace if kind == ROLE else ""
    if kind == ROLE and not scope:
        raise InvalidRBACObject("metadata.namespace: required for a Role")
    if old_obj is not None and _only_gc_fields_change(role_obj, old_obj):
        return
    if SUPERUSER_GROUP in user.groups:
        return
    # Upstream asks about the request itself: on create the request names no object yet.
    request_name = name if old_obj is not None else ""
    if _asks(can, _resource_attributes(user, "escalate", resource, scope, request_name)):
        return
    rules = _list_field(role_obj, "rules")
    owner_rules = authorizer.rules_for(user, scope)
    held, missing = covers(owner_rules, rules)
    if not held:
        raise _forbidden(resource, name, _not_held_message(user, missing))
    if kind == CLUSTER_ROLE and (_has_aggregation(role_obj) or (old_obj is not None and _has_aggregation(old_obj))):
        full, _ = covers(owner_rules, [rule.to_dict() for rule in _FULL_AUTHORITY])
        if not full:
            raise _forbidden(resource, name, AGGREGATION_NEEDS_FULL_AUTHORITY)


def check_binding_write(
    authorizer: RBACAuthorizer,
    user: UserInfo,
    namespace: str,
    binding_obj: Mapping[str, Any],
    lookup_role: RoleLookup,
    can: AccessCheck,
    *,
    old_obj: Mapping[str, Any] | None = None,
) -> None:
    """Refuses (EscalationError) a RoleBinding/ClusterRoleBinding create or update that would escalate.

    Allowed when the writer may `bind` the referenced role (asked through `can`, in the binding's
    namespace, "" for a ClusterRoleBinding) or already holds all of its permissions there. A
    binding to a role `lookup_role` cannot find is refused with upstream's 404 unless the writer
    may `bind` it. For an aggregated ClusterRole the rules counted are those aggregation resolves
    to, as the authorizer grants them, not whatever the stored object lists.
    """
    kind = _object_kind(binding_obj, namespace, namespaced=ROLE_BINDING, cluster=CLUSTER_ROLE_BINDING)
    name = _object_name(binding_obj)
    resource = "rolebindings" if kind == ROLE_BINDING else "clusterrolebindings"
    scope = namespace if kind == ROLE_BINDING else ""
    if kind == ROLE_BINDING and not scope:
        raise InvalidRBACObject("metadata.namespace: required for a RoleBinding")
    role_kind, role_name = _role_ref(binding_obj, kind)
    if old_obj is not None and _only_gc_fields_change(binding_obj, old_obj):
        return
    if SUPERUSER_GROUP in user.groups:
        return
    role_resource = "roles" if role_kind == ROLE else "clusterroles"
    if _asks(can, _resource_attributes(user, "bind", role_resource, scope, role_name)):
        return
    role = lookup_role(role_kind, scope if role_kind == ROLE else "", role_name)
    if role is None:
        raise _not_found(role_resource, role_name)
    rules = _granted_rules(authorizer, role_kind, role_name, role)
    if rules is None:
        # An aggregated ClusterRole the authorizer has not resolved yet: what it grants is unknown.
        raise _forbidden(resource, name, f"{CLUSTER_ROLE} {go_quote(role_name)} is not resolved yet; retry")
    held, missing = covers(authorizer.rules_for(user, scope), rules)
    if not held:
        raise _forbidden(resource, name, _not_held_message(user, missing))


def _granted_rules(
    authorizer: RBACAuthorizer, role_kind: str, role_name: str, role: Mapping[str, Any]
) -> list[Mapping[str, Any]] | None:
    """The rules a binding to this role grants.

    Upstream reads them from the stored object because its aggregation controller writes the
    aggregated rules there. securekube resolves aggregation inside RBACAuthorizer instead, so for
    an aggregated ClusterRole the stored rules may be empty or stale and the authorizer's
    resolved rules are the ones that count.
    """
    if role_kind == CLUSTER_ROLE and _has_aggregation(role):
        return authorizer.cluster_role_rules(role_name)
    return _list_field(role, "rules")


# ---------------------------------------------------------------------------- helpers


def _asks(can: AccessCheck, attrs: Attributes) -> bool:
    try:
        return can(attrs) is True
    except Exception:  # as upstream, an authorizer error means "not allowed", never "allowed"
        return False


def _resource_attributes(user: UserInfo, verb: str, resource: str, namespace: str, name: str) -> Attributes:
    # Upstream asks with APIVersion "*": the permission is about the role, whatever the version.
    return Attributes(user=user, verb=verb, resource_request=True, namespace=namespace, api_group=RBAC_GROUP,
                      api_version=_ALL, resource=resource, name=name)


def _not_held_message(user: UserInfo, missing: list[dict[str, list[str]]]) -> str:
    lines = sorted({compact_string(rule) for rule in compact_rules(missing)})
    groups = "[" + " ".join(go_quote(group) for group in user.groups) + "]"
    return (f"user {go_quote(user.username)} (groups={groups}) is attempting to grant RBAC permissions "
            "not currently held:\n" + "\n".join(lines))


def _forbidden(resource: str, name: str, detail: str) -> EscalationError:
    status = errors.forbidden(resource, name, detail, group=RBAC_GROUP)
    return EscalationError(status.code, status.reason, status.message, status.details)


def _not_found(resource: str, name: str) -> EscalationError:
    status = errors.not_found(resource, name, group=RBAC_GROUP)
    return EscalationError(status.code, status.reason, status.message, status.details)


def _object_kind(obj: Mapping[str, Any], namespace: str, *, namespaced: str, cluster: str) -> str:
    if not isinstance(obj, Mapping):
        raise InvalidRBACObject("object: must be a mapping")
    kind = obj.get("kind")
    if kind is None:
        # A body may omit kind; the request's scope says which of the two it is.
        return namespaced if namespace else cluster
    if kind not in (namespaced, cluster):
        raise InvalidRBACObject(f"kind: must be {namespaced} or {cluster}")
    return kind


def _object_name(obj: Mapping[str, Any]) -> str:
    # On create with generateName there is no name yet; upstream's message then names none.
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else ""


def _role_ref(binding: Mapping[str, Any], binding_kind: str) -> tuple[str, str]:
    ref = binding.get("roleRef")
    if not isinstance(ref, Mapping):
        raise InvalidRBACObject("roleRef: required")
    allowed = (ROLE, CLUSTER_ROLE) if binding_kind == ROLE_BINDING else (CLUSTER_ROLE,)
    if ref.get("kind") not in allowed:
        raise InvalidRBACObject(f"roleRef.kind: must be one of {', '.join(allowed)}")
    if ref.get("apiGroup") != RBAC_GROUP:
        raise InvalidRBACObject(f"roleRef.apiGroup: must be {RBAC_GROUP}")
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRBACObject("roleRef.name: required")
    return ref["kind"], name


def _list_field(obj: Mapping[str, Any], field: str) -> list[Any]:
    value = obj.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRBACObject(f"{field}: must be a list")
    return value


def _has_aggregation(role: Mapping[str, Any]) -> bool:
    """Upstream's hasAggregationRule; a malformed aggregationRule counts as one (fail closed)."""
    rule = role.get("aggregationRule")
    if rule is None:
        return False
    return not isinstance(rule, Mapping) or bool(rule.get("clusterRoleSelectors"))


def _only_gc_fields_change(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Upstream's IsOnlyMutatingGCFields: equal once the GC-owned metadata is taken from `old`.

    Absent, null and empty values compare equal, as they do for upstream's Go structs.
    """
    stomped = copy.deepcopy(dict(new))
    new_meta = stomped.get("metadata")
    old_meta = old.get("metadata")
    if not isinstance(new_meta, dict) or not isinstance(old_meta, Mapping):
        return False
    for field in _GC_METADATA_FIELDS:
        new_meta.pop(field, None)
        if field in old_meta:
            new_meta[field] = copy.deepcopy(old_meta[field])
    return _normalized(stomped) == _normalized(old)


def _normalized(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list | tuple):
        return [_normalized(v) for v in value]
    return value
