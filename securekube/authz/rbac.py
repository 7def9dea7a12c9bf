"""The RBAC authorizer: upstream rbac.authorization.k8s.io/v1 semantics over an incremental index.

A decision never scans all bindings. Bindings are indexed by the identity they name — a
username (User and ServiceAccount subjects) or a group — separately for ClusterRoleBindings and
for the RoleBindings of each namespace, and roles are compiled `RuleSet`s looked up by name. A
request therefore touches only the bindings of its own user and groups.

Concurrency: everything a decision reads hangs off one immutable `_Snapshot`. A writer (apply /
remove, serialised by a lock readers never take) builds a new snapshot, copying only the maps it
changes, and publishes it with a single attribute assignment. A reader takes the reference once
and sees one consistent state for the whole decision.

Like upstream, RBAC never denies: it allows, or has no opinion.
"""
from __future__ import annotations

import threading
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Decision, Verdict
from securekube.authz.rbac_model import (
    BINDING_KINDS,
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    ROLE,
    ROLE_BINDING,
    ROLE_KINDS,
    BindingRecord,
    InvalidRBACObject,
    PolicyRule,
    RoleRecord,
    RuleSet,
    go_quote,
    parse_binding,
    parse_role,
    resource_forms,
)

__all__ = ["RBACAuthorizer", "InvalidRBACObject"]

_NO_OPINION = Decision(Verdict.NO_OPINION)


@dataclass(frozen=True, slots=True)
class _ScopeIndex:
    """The bindings of one scope (cluster-wide, or one namespace) by the identity they name.

    Each tuple is sorted by binding name so that which binding a reason names is deterministic.
    """

    by_user: Mapping[str, tuple[BindingRecord, ...]]
    by_group: Mapping[str, tuple[BindingRecord, ...]]

    def is_empty(self) -> bool:
        return not self.by_user and not self.by_group


_EMPTY_SCOPE = _ScopeIndex(types.MappingProxyType({}), types.MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything a decision reads. Never mutated once published: writers copy, then swap."""

    cluster_roles: Mapping[str, RuleSet]  # effective rules, aggregation already resolved
    roles: Mapping[str, Mapping[str, RuleSet]]  # namespace -> Role name -> rules
    cluster_bindings: _ScopeIndex
    role_bindings: Mapping[str, _ScopeIndex]  # namespace -> its RoleBindings


class RBACAuthorizer:
    """Authorizes requests from Roles, ClusterRoles, RoleBindings and ClusterRoleBindings.

    Feed it objects with `apply` / `remove` as they change (e.g. from a watch). It implements
    `securekube.authz.interfaces.Authorizer`; `rules_for` serves SelfSubjectRulesReview.
    """

    def __init__(self) -> None:
        self._write_lock = threading.Lock()
        self._snapshot = _Snapshot({}, {}, _EMPTY_SCOPE, {})
        # Writer-side state, only touched under the lock: the records needed to replace or
        # remove an object and to re-resolve aggregated ClusterRoles.
        self._cluster_role_records: dict[str, RoleRecord] = {}
        self._binding_records: dict[tuple[str, str, str], BindingRecord] = {}  # (kind, namespace, name)

    # ------------------------------------------------------------------ updates
    #
    # Each update computes the complete new snapshot first and only then commits it (and the
    # writer-side records), so an update that fails half-way leaves nothing half-applied.

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        """Add or replace (by namespace and name) one Role, ClusterRole, RoleBinding or ClusterRoleBinding.

        Raises InvalidRBACObject (a ValueError) for an object upstream validation would reject;
        the authorizer is then left exactly as it was.
        """
        if kind == ROLE:
            role = parse_role(kind, obj)
            with self._write_lock:
                self._snapshot = _with_role(self._snapshot, role.namespace, role.name, RuleSet.compile(role.rules))
        elif kind == CLUSTER_ROLE:
            role = parse_role(kind, obj)
            with self._write_lock:
                records = {**self._cluster_role_records, role.name: role}
                self._snapshot = _with_cluster_roles(self._snapshot, records)
                self._cluster_role_records = records
        elif kind in BINDING_KINDS:
            binding = parse_binding(kind, obj)
            key = (binding.kind, binding.namespace, binding.name)
            with self._write_lock:
                old = self._binding_records.get(key)
                self._snapshot = _with_binding(self._snapshot, key, old, binding)
                self._binding_records[key] = binding
        else:
            raise InvalidRBACObject(f"kind: must be one of {', '.join(sorted(ROLE_KINDS | BINDING_KINDS))}")

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """Forget one object; removing one that is not known does nothing (deletes may repeat)."""
        if kind not in ROLE_KINDS | BINDING_KINDS:
            raise InvalidRBACObject(f"kind: must be one of {', '.join(sorted(ROLE_KINDS | BINDING_KINDS))}")
        namespace = namespace if kind in (ROLE, ROLE_BINDING) else ""
        with self._write_lock:
            if kind == ROLE:
                if name in self._snapshot.roles.get(namespace, {}):
                    self._snapshot = _with_role(self._snapshot, namespace, name, None)
            elif kind == CLUSTER_ROLE:
                if name in self._cluster_role_records:
                    records = {k: v for k, v in self._cluster_role_records.items() if k != name}
                    self._snapshot = _with_cluster_roles(self._snapshot, records)
                    self._cluster_role_records = records
            else:
                key = (kind, namespace, name)
                old = self._binding_records.get(key)
                if old is not None:
                    self._snapshot = _with_binding(self._snapshot, key, old, None)
                    del self._binding_records[key]

    # ------------------------------------------------------------------ decisions

    def authorize(self, attrs: Attributes) -> Decision:
        """ALLOW with upstream's reason if some binding of this user grants the request, else NO_OPINION."""
        snap = self._snapshot
        if attrs.resource_request:
            verb, api_group, name = attrs.verb, attrs.api_group, attrs.name
            forms = resource_forms(attrs.resource, attrs.subresource)

            def allows(rules: RuleSet) -> bool:
                return rules.allows_resource(verb, api_group, forms, name)

        else:
            verb, path = attrs.verb, attrs.path

            def allows(rules: RuleSet) -> bool:
                return rules.allows_non_resource(verb, path)

        user = attrs.user
        missing: list[str] = []
        # Upstream order: ClusterRoleBindings first, then the RoleBindings of the request's namespace.
        binding = _first_granting(snap.cluster_bindings, user, snap, allows, missing)
        if binding is None and attrs.namespace:
            scope = snap.role_bindings.get(attrs.namespace)
            if scope is not None:
                binding = _first_granting(scope, user, snap, allows, missing)
        if binding is not None:
            return Decision(Verdict.ALLOW, _describe_allow(binding, user))
        if missing:
            # Upstream reports unresolvable role references with its NO_OPINION.
            errors = missing[0] if len(missing) == 1 else f"[{', '.join(missing)}]"
            return Decision(Verdict.NO_OPINION, f"RBAC: {errors}")
        return _NO_OPINION

    def cluster_role_rules(self, name: str) -> list[dict[str, Any]] | None:
        """A ClusterRole's effective rules (aggregation resolved), or None if it is unknown."""
        resolved = self._snapshot.cluster_roles.get(name)
        return None if resolved is None else [rule.to_dict() for rule in resolved.rules]

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict[str, Any]]:
        """Every rule granted to `user` cluster-wide and, if `namespace` is set, in that namespace.

        In upstream's visiting order (ClusterRoleBindings, then RoleBindings), one entry per rule
        per binding, as PolicyRule dicts; for SelfSubjectRulesReview. The dicts are fresh copies.
        """
        snap = self._snapshot
        rules: list[dict[str, Any]] = []
        scopes = [snap.cluster_bindings]
        if namespace and namespace in snap.role_bindings:
            scopes.append(snap.role_bindings[namespace])
        for scope in scopes:
            seen: set[str] = set()
            for binding in _bindings_of(scope, user):
                if binding.name in seen:
                    continue
                seen.add(binding.name)
                role = _role_of(snap, binding)
                if role is not None:
                    rules.extend(rule.to_dict() for rule in role.rules)
        return rules


# ---------------------------------------------------------------------- snapshot builders
# Each returns a new snapshot sharing every map it does not change.


def _with_role(snap: _Snapshot, namespace: str, name: str, rules: RuleSet | None) -> _Snapshot:
    """`snap` with Role namespace/name set to `rules`, or dropped when `rules` is None."""
    in_namespace = dict(snap.roles.get(namespace, {}))
    if rules is None:
        in_namespace.pop(name, None)
    else:
        in_namespace[name] = rules
    roles = dict(snap.roles)
    if in_namespace:
        roles[namespace] = in_namespace
    else:
        roles.pop(namespace, None)
    return replace(snap, roles=roles)


def _with_cluster_roles(snap: _Snapshot, records: Mapping[str, RoleRecord]) -> _Snapshot:
    """`snap` with the ClusterRoles `records`.

    Any ClusterRole change can alter what an aggregated ClusterRole selects, so aggregation is
    re-resolved as a whole; compiled rule sets whose rules did not change are reused.
    """
    old = snap.cluster_roles
    cluster_roles = {
        name: old[name] if name in old and old[name].rules == rules else RuleSet.compile(rules)
        for name, rules in _resolve_aggregation(records).items()
    }
    return replace(snap, cluster_roles=cluster_roles)


def _with_binding(
    snap: _Snapshot, key: tuple[str, str, str], old: BindingRecord | None, new: BindingRecord | None
) -> _Snapshot:
    """`snap` with binding `key` = (kind, namespace, name) changed from `old` to `new` (None: absent)."""
    kind, namespace, name = key
    if kind == CLUSTER_ROLE_BINDING:
        return replace(snap, cluster_bindings=_updated_scope(snap.cluster_bindings, name, old, new))
    scope = _updated_scope(snap.role_bindings.get(namespace, _EMPTY_SCOPE), name, old, new)
    role_bindings = dict(snap.role_bindings)
    if scope.is_empty():
        role_bindings.pop(namespace, None)
    else:
        role_bindings[namespace] = scope
    return replace(snap, role_bindings=role_bindings)


# ---------------------------------------------------------------------- helpers


def _bindings_of(scope: _ScopeIndex, user: UserInfo) -> Iterator[BindingRecord]:
    """The scope's bindings naming this user or one of its groups (a binding may repeat)."""
    yield from scope.by_user.get(user.username, ())
    for group in user.groups:
        yield from scope.by_group.get(group, ())


def _first_granting(
    scope: _ScopeIndex,
    user: UserInfo,
    snap: _Snapshot,
    allows: Callable[[RuleSet], bool],
    missing: list[str],
) -> BindingRecord | None:
    for binding in _bindings_of(scope, user):
        role = _role_of(snap, binding)
        if role is None:
            missing.append(_not_found(binding))
        elif allows(role):
            return binding
    return None


def _role_of(snap: _Snapshot, binding: BindingRecord) -> RuleSet | None:
    if binding.role_kind == CLUSTER_ROLE:
        return snap.cluster_roles.get(binding.role_name)
    return snap.roles.get(binding.namespace, {}).get(binding.role_name)


def _not_found(binding: BindingRecord) -> str:
    resource = "clusterrole" if binding.role_kind == CLUSTER_ROLE else "role"
    return f"{resource}.rbac.authorization.k8s.io {go_quote(binding.role_name)} not found"


def _describe_allow(binding: BindingRecord, user: UserInfo) -> str:
    """Upstream's reason: `RBAC: allowed by <Kind> "<name>" of <RoleKind> "<role>" to <subject>`."""
    subject = binding.first_subject_for(user.username, user.groups)
    # The binding was found through one of its subjects, so `subject` cannot be None; fail
    # loudly rather than write a misleading reason if that ever stops being true.
    if subject is None:
        raise RuntimeError("RBAC index names a binding that does not apply to the user")
    binding_name = binding.name if binding.kind == CLUSTER_ROLE_BINDING else f"{binding.name}/{binding.namespace}"
    return (
        f"RBAC: allowed by {binding.kind} {go_quote(binding_name)} of "
        f"{binding.role_kind} {go_quote(binding.role_name)} to {subject.describe()}"
    )


def _updated_scope(
    scope: _ScopeIndex, name: str, old: BindingRecord | None, new: BindingRecord | None
) -> _ScopeIndex:
    """A copy of `scope` with binding `name` replaced by `new` (or dropped when `new` is None)."""
    by_user = dict(scope.by_user)
    by_group = dict(scope.by_group)
    old_keys = old.index_keys() if old is not None else frozenset()
    new_keys = new.index_keys() if new is not None else frozenset()
    for index_kind, identity in old_keys | new_keys:
        table = by_user if index_kind == "user" else by_group
        kept = [b for b in table.get(identity, ()) if b.name != name]
        if new is not None and (index_kind, identity) in new_keys:
            kept.append(new)
            kept.sort(key=lambda b: b.name)
        if kept:
            table[identity] = tuple(kept)
        else:
            table.pop(identity, None)
    return _ScopeIndex(by_user, by_group)


def _resolve_aggregation(records: Mapping[str, RoleRecord]) -> dict[str, tuple[PolicyRule, ...]]:
    """Each ClusterRole's effective rules.

    Upstream's aggregation controller overwrites an aggregated ClusterRole's rules with the
    de-duplicated union of the rules of every other ClusterRole matching any of its selectors
    (per selector, matches in name order). Since aggregated roles can select each other
    (admin selects edit, edit selects view), this iterates to the state the controller
    converges to, starting from empty rules; the rule sets only grow, so it terminates.
    """
    effective = {name: record.rules for name, record in records.items() if record.aggregation is None}
    aggregated = {name: record for name, record in records.items() if record.aggregation is not None}
    ordered_names = sorted(records)
    sources = {
        name: [
            other
            for selector in record.aggregation or ()
            for other in ordered_names
            if other != name and selector.matches(records[other].labels)
        ]
        for name, record in aggregated.items()
    }
    current: dict[str, tuple[PolicyRule, ...]] = {name: () for name in aggregated}
    for _ in range(len(aggregated) + 1):
        changed = False
        for name in aggregated:
            merged = dict.fromkeys(
                rule
                for source in sources[name]
                for rule in (current[source] if source in current else effective[source])
            )
            rules = tuple(merged)
            if set(rules) != set(current[name]):
                changed = True
            current[name] = rules
        if not changed:
            break
    effective.update(current)
    return effective
