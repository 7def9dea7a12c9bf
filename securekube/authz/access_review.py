"""Access review over a set of RBAC objects: who can do something, and why one user can or cannot.

Every answer comes from `RBACAuthorizer` itself, so a review can never disagree with what the
API server decides; nothing here re-implements RBAC matching. Two authorizers are built from the
objects:

- the *real* one, holding the objects as they are, gives the verdict for a user;
- a *probe* one, holding the same roles but each binding re-pointed at its own synthetic user,
  answers "does this one binding grant the request?" with an ordinary `authorize` call. That
  keeps upstream's scoping (a RoleBinding grants only in its namespace, also when it refers to
  a ClusterRole) and aggregation in the authorizer, and `rules_for` on that synthetic user
  yields the binding's effective rules (aggregation resolved).

Which rule of a role matched is found by compiling each effective rule alone into a `RuleSet`
and asking it; the first that allows the request is the one reported.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.rbac import RBACAuthorizer
from securekube.authz.rbac_model import (
    BINDING_KINDS,
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    RBAC_GROUP,
    ROLE,
    ROLE_KINDS,
    SERVICE_ACCOUNT,
    SERVICE_ACCOUNT_USER_PREFIX,
    USER,
    BindingRecord,
    InvalidRBACObject,
    PolicyRule,
    RoleRecord,
    RuleSet,
    Subject,
    go_quote,
    parse_binding,
    parse_role,
    resource_forms,
)

__all__ = [
    "BindingRef",
    "Explanation",
    "Finding",
    "Grant",
    "InvalidRBACObject",
    "InvalidTarget",
    "RuleOrigin",
    "Target",
    "dangling_bindings",
    "effective_groups",
    "explain",
    "parse_target",
    "render_rule",
    "who_can",
]

ANONYMOUS_USER = "system:anonymous"
AUTHENTICATED_GROUP = "system:authenticated"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
# Upstream kube-apiserver lets this group do anything before RBAC is asked; securekube does not.
SUPERUSER_GROUP = "system:masters"


class InvalidTarget(ValueError):
    """A resource, URL, namespace or name combination that cannot form an access request."""


# ------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Target:
    """What is asked about, without the verb and the user: a resource request or a non-resource URL.

    The fields are those of a SubjectAccessReview's resourceAttributes; `path` is set (and the
    rest empty) for a non-resource request. An empty namespace is the cluster scope, which only
    ClusterRoleBindings can grant (as for a request across all namespaces).
    """

    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    @property
    def resource_request(self) -> bool:
        return not self.path

    def attributes(self, user: UserInfo, verb: str) -> Attributes:
        """The authorizer's view of `user` doing `verb` to this target."""
        if not self.resource_request:
            return Attributes(user=user, verb=verb, resource_request=False, path=self.path)
        return Attributes(
            user=user, verb=verb, resource_request=True, namespace=self.namespace, api_group=self.api_group,
            resource=self.resource, subresource=self.subresource, name=self.name,
        )

    def allowed_by(self, rules: RuleSet, verb: str) -> bool:
        """Whether the compiled `rules` grant `verb` on this target (the authorizer's per-role test)."""
        if not self.resource_request:
            return rules.allows_non_resource(verb, self.path)
        return rules.allows_resource(
            verb, self.api_group, resource_forms(self.resource, self.subresource), self.name
        )

    def describe(self, verb: str) -> str:
        """The request in words, e.g. `get secrets in API group "" in namespace "team-a"`.

        Values are quoted Go-style (verb and resource only when not plain words), so no control
        character (a terminal escape, say) reaches the person reviewing.
        """
        if not self.resource_request:
            return f"{_word(verb)} {_word(self.path)}"
        resource = self.resource + (f"/{self.subresource}" if self.subresource else "")
        text = f"{_word(verb)} {_word(resource)} in API group {go_quote(self.api_group)}"
        if self.name:
            text += f" named {go_quote(self.name)}"
        if self.namespace:
            return f"{text} in namespace {go_quote(self.namespace)}"
        return f"{text} at the cluster scope"

    def to_dict(self) -> dict[str, str]:
        """SubjectAccessReview-style attributes: {"nonResourceURL": ...} or resourceAttributes fields."""
        if not self.resource_request:
            return {"nonResourceURL": self.path}
        return {"namespace": self.namespace, "group": self.api_group, "resource": self.resource,
                "subresource": self.subresource, "name": self.name}


_PLAIN_WORD = re.compile(r"^[A-Za-z0-9._/*-]+$")


def _word(value: str) -> str:
    return value if _PLAIN_WORD.match(value) else go_quote(value)


def parse_target(resource: str, namespace: str = "", name: str = "") -> Target:
    """A Target from the command-line forms `pods`, `pods/log`, `deployments.apps[/scale]` or `/healthz`.

    As in RBAC rules and `kubectl auth can-i`, the text after the first dot is the API group
    (`deployments.apps`), so a bare plural is in the core group "". A leading '/' makes a
    non-resource URL, which has neither namespace nor name.
    """
    if not resource:
        raise InvalidTarget("the resource must not be empty")
    if resource.startswith("/"):
        if namespace or name:
            raise InvalidTarget(f"the non-resource URL {go_quote(resource)} takes no namespace and no name")
        return Target(path=resource)
    head, slash, subresource = resource.partition("/")
    plural, dot, group = head.partition(".")
    if not plural or (dot and not group) or (slash and (not subresource or "/" in subresource)):
        raise InvalidTarget(
            f"{go_quote(resource)} is not of the form RESOURCE[.GROUP][/SUBRESOURCE] or /URL"
        )
    return Target(namespace=namespace, api_group=group, resource=plural, subresource=subresource, name=name)


def effective_groups(user: str, groups: Sequence[str]) -> tuple[str, ...]:
    """The groups a request by `user` carries: `groups`, plus what authentication always adds.

    As upstream's authenticators and impersonation do: a ServiceAccount username gets
    system:serviceaccounts and system:serviceaccounts:<namespace>; every user except
    system:anonymous gets system:authenticated, system:anonymous gets system:unauthenticated.
    """
    out = list(groups)
    namespace = _service_account_namespace(user)
    if namespace is not None:
        out += [SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}"]
    out.append(UNAUTHENTICATED_GROUP if user == ANONYMOUS_USER else AUTHENTICATED_GROUP)
    return tuple(dict.fromkeys(out))


def _service_account_namespace(user: str) -> str | None:
    if not user.startswith(SERVICE_ACCOUNT_USER_PREFIX):
        return None
    parts = user[len(SERVICE_ACCOUNT_USER_PREFIX):].split(":")
    return parts[0] if len(parts) == 2 and all(parts) else None


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BindingRef:
    """A RoleBinding or ClusterRoleBinding and the role it refers to."""

    kind: str
    namespace: str  # empty for a ClusterRoleBinding
    name: str
    role_kind: str
    role_name: str

    @classmethod
    def of(cls, record: BindingRecord) -> BindingRef:
        return cls(record.kind, record.namespace, record.name, record.role_kind, record.role_name)

    def describe(self) -> str:
        """e.g. `RoleBinding "readers" in namespace "team-a"`."""
        text = f"{self.kind} {go_quote(self.name)}"
        return f"{text} in namespace {go_quote(self.namespace)}" if self.namespace else text

    def describe_role(self) -> str:
        return f"{self.role_kind} {go_quote(self.role_name)}"

    def to_dict(self) -> dict[str, Any]:
        binding = {"kind": self.kind, "name": self.name}
        if self.namespace:
            binding["namespace"] = self.namespace
        return {"binding": binding, "role": {"kind": self.role_kind, "name": self.role_name}}


@dataclass(frozen=True)
class Finding:
    """One subject that may make the request, and the binding through which it may."""

    subject_kind: str  # User, Group or ServiceAccount
    subject_name: str
    subject_namespace: str  # a ServiceAccount's namespace, else empty
    binding: BindingRef

    def to_dict(self) -> dict[str, Any]:
        subject = {"kind": self.subject_kind, "name": self.subject_name}
        if self.subject_namespace:
            subject["namespace"] = self.subject_namespace
        return {"subject": subject, **self.binding.to_dict()}


@dataclass(frozen=True)
class RuleOrigin:
    """Where an aggregated ClusterRole's rule is written: a ClusterRole it aggregates, and the index there."""

    role_name: str
    rule_index: int


@dataclass(frozen=True)
class Grant:
    """A binding that grants the request: the subject in it that names the user, and the deciding rule.

    `rule_index` indexes the role's effective rules, which for a role that does not aggregate
    are its own `rules`; for an aggregated ClusterRole `origin` names where the rule is written.
    """

    binding: BindingRef
    subject: Subject
    rule_index: int
    rule: PolicyRule
    origin: RuleOrigin | None

    def to_dict(self) -> dict[str, Any]:
        out = {
            **self.binding.to_dict(),
            "subject": _subject_dict(self.subject),
            "ruleIndex": self.rule_index,
            "rule": self.rule.to_dict(),
        }
        if self.origin is not None:
            out["aggregatedFrom"] = {"kind": CLUSTER_ROLE, "name": self.origin.role_name,
                                     "ruleIndex": self.origin.rule_index}
        return out


@dataclass(frozen=True)
class Explanation:
    """Whether a user may make a request and exactly why, as `securekube rbac explain` shows it.

    `decided_by` is the binding the authorizer's own decision names (None when denied);
    `also_allowed_by` are the other bindings that would grant it too, so a reviewer removing
    access sees everything to remove. `applicable_bindings` are all bindings in the request's
    scope that name the user or one of its groups; `missing_roles` those of them whose role
    does not exist (they grant nothing). `reason` is the authorizer's reason, verbatim.
    """

    allowed: bool
    user: str
    groups: tuple[str, ...]
    implicit_groups: tuple[str, ...]
    verb: str
    target: Target
    decided_by: Grant | None
    also_allowed_by: tuple[Grant, ...]
    applicable_bindings: tuple[BindingRef, ...]
    missing_roles: tuple[BindingRef, ...]
    reason: str
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "user": self.user,
            "groups": list(self.groups),
            "implicitGroups": list(self.implicit_groups),
            "verb": self.verb,
            "request": self.target.to_dict(),
            "decidedBy": self.decided_by.to_dict() if self.decided_by else None,
            "alsoAllowedBy": [grant.to_dict() for grant in self.also_allowed_by],
            "applicableBindings": [ref.to_dict() for ref in self.applicable_bindings],
            "missingRoles": [ref.to_dict() for ref in self.missing_roles],
            "reason": self.reason,
            "notes": list(self.notes),
        }


def render_rule(rule: PolicyRule) -> str:
    """A rule on one line, e.g. `{apiGroups: [""], resources: ["secrets"], verbs: ["get"]}`.

    Values are quoted Go-style so that the empty core group shows and no control character
    from a stored object reaches the terminal.
    """
    parts = [f"{key}: [{', '.join(go_quote(v) for v in values)}]" for key, values in rule.to_dict().items()]
    return "{" + ", ".join(parts) + "}"


def _subject_dict(subject: Subject) -> dict[str, str]:
    out = {"kind": subject.kind, "name": subject.name}
    if subject.kind == SERVICE_ACCOUNT:
        out["namespace"] = subject.namespace
    return out


# ------------------------------------------------------------------------------- entry points


def who_can(objects: Iterable[Mapping[str, Any]], verb: str, target: Target) -> list[Finding]:
    """Every subject that may `verb` the target, once per binding that grants it.

    Sorted by subject (kind, name, namespace), then binding. Subjects are as written in the
    bindings; a Group subject such as system:authenticated stands for all its members.
    Raises InvalidRBACObject for an object the API server would reject.
    """
    review = _Review(objects)
    findings: set[Finding] = set()
    for index, binding in enumerate(review.bindings):
        if binding.subjects and review.grants(index, verb, target):
            ref = BindingRef.of(binding)
            for subject in binding.subjects:
                namespace = subject.namespace if subject.kind == SERVICE_ACCOUNT else ""
                findings.add(Finding(subject.kind, subject.name, namespace, ref))
    return sorted(findings, key=_finding_order)


def explain(
    objects: Iterable[Mapping[str, Any]], user: str, groups: Sequence[str], verb: str, target: Target
) -> Explanation:
    """Whether `user` (a member of `groups`, plus the implicit groups) may `verb` the target, and why.

    Raises InvalidRBACObject for an object the API server would reject, and RuntimeError if
    the per-binding analysis ever disagrees with the authorizer's verdict (fail closed: no
    explanation is better than a wrong one).
    """
    if not user:
        raise InvalidTarget("the user name must not be empty")
    review = _Review(objects)
    all_groups = effective_groups(user, groups)
    identity = UserInfo(user, groups=all_groups)
    decision = review.authorizer.authorize(target.attributes(identity, verb))
    applicable = review.applicable(user, all_groups, target)
    grants = [
        review.grant(index, user, all_groups, verb, target)
        for index in applicable
        if review.grants(index, verb, target)
    ]
    allowed = decision.verdict is Verdict.ALLOW
    if allowed != bool(grants):
        raise RuntimeError("access review disagrees with the RBAC authorizer; refusing to explain")
    notes = []
    if not allowed and SUPERUSER_GROUP in all_groups:
        notes.append(f"an upstream kube-apiserver would allow it anyway: it lets group {SUPERUSER_GROUP} do "
                     "everything before RBAC is asked (securekube does not); this answer is RBAC's")
    return Explanation(
        allowed=allowed,
        user=user,
        groups=all_groups,
        implicit_groups=tuple(g for g in all_groups if g not in groups),
        verb=verb,
        target=target,
        decided_by=grants[0] if grants else None,
        also_allowed_by=tuple(grants[1:]),
        applicable_bindings=tuple(BindingRef.of(review.bindings[i]) for i in applicable),
        missing_roles=tuple(BindingRef.of(review.bindings[i]) for i in applicable if not review.role_exists(i)),
        reason=decision.reason,
        notes=tuple(notes),
    )


def dangling_bindings(objects: Iterable[Mapping[str, Any]], target: Target) -> list[BindingRef]:
    """Bindings in the target's scope whose role is not among the objects; they grant nothing.

    Worth a warning: a directory of files may simply lack a role defined elsewhere.
    """
    review = _Review(objects)
    return [
        BindingRef.of(binding)
        for index, binding in enumerate(review.bindings)
        if _in_scope(binding, target) and not review.role_exists(index)
    ]


# ------------------------------------------------------------------------------- the review


def _probe_user(index: int) -> UserInfo:
    return UserInfo(f"securekube:access-review:binding-{index}")


class _Review:
    """The objects parsed once, with the real and the probe authorizer built from them."""

    def __init__(self, objects: Iterable[Mapping[str, Any]]) -> None:
        roles: dict[tuple[str, str, str], tuple[RoleRecord, Mapping[str, Any]]] = {}
        bindings: dict[tuple[str, str, str], tuple[BindingRecord, Mapping[str, Any]]] = {}
        for obj in objects:
            kind = obj.get("kind") if isinstance(obj, Mapping) else None
            # Later objects replace earlier ones of the same kind/namespace/name, as applying
            # files in order would; the authorizer does the same.
            if kind in ROLE_KINDS:
                role = _parsed(parse_role, kind, obj)
                roles[(kind, role.namespace, role.name)] = (role, obj)
            elif kind in BINDING_KINDS:
                binding = _parsed(parse_binding, kind, obj)
                bindings[(kind, binding.namespace, binding.name)] = (binding, obj)
            else:
                raise InvalidRBACObject(f"kind {go_quote(str(kind))}: not a Role, ClusterRole, RoleBinding "
                                        "or ClusterRoleBinding")
        self.cluster_roles = {key[2]: role for key, (role, _) in roles.items() if key[0] == CLUSTER_ROLE}
        self.role_keys = frozenset((key[1], key[2]) for key in roles if key[0] == ROLE)
        # ClusterRoleBindings first, as the authorizer visits them.
        ordered = sorted(bindings, key=lambda k: (k[0] != CLUSTER_ROLE_BINDING, k[1], k[2]))
        self.bindings: tuple[BindingRecord, ...] = tuple(bindings[key][0] for key in ordered)

        self.authorizer = RBACAuthorizer()
        self._probe = RBACAuthorizer()
        for (kind, _, _), (_, obj) in roles.items():
            self.authorizer.apply(kind, dict(obj))
            self._probe.apply(kind, dict(obj))
        for key in ordered:
            self.authorizer.apply(key[0], dict(bindings[key][1]))
        for index, binding in enumerate(self.bindings):
            self._probe.apply(binding.kind, _probe_binding(binding, _probe_user(index).username))

    def grants(self, index: int, verb: str, target: Target) -> bool:
        """Whether binding `index` alone grants the request (the authorizer decides, scope included)."""
        decision = self._probe.authorize(target.attributes(_probe_user(index), verb))
        return decision.verdict is Verdict.ALLOW

    def role_exists(self, index: int) -> bool:
        binding = self.bindings[index]
        if binding.role_kind == CLUSTER_ROLE:
            return binding.role_name in self.cluster_roles
        return (binding.namespace, binding.role_name) in self.role_keys

    def applicable(self, user: str, groups: tuple[str, ...], target: Target) -> list[int]:
        """Indexes of the bindings in the target's scope that name `user` or a group, in the authorizer's order.

        The authorizer visits ClusterRoleBindings, then the namespace's RoleBindings; within
        each, the bindings naming the user, then those naming each group in turn, by name.
        Listing in that order makes the first granting binding the one its reason names.
        """
        ranked = []
        for index, binding in enumerate(self.bindings):
            if not _in_scope(binding, target):
                continue
            rank = _identity_rank(binding, user, groups)
            if rank is not None:
                ranked.append(((binding.kind != CLUSTER_ROLE_BINDING, rank, binding.name), index))
        return [index for _, index in sorted(ranked)]

    def grant(self, index: int, user: str, groups: tuple[str, ...], verb: str, target: Target) -> Grant:
        """The Grant of binding `index`, which must grant the request to this user."""
        binding = self.bindings[index]
        subject = binding.first_subject_for(user, groups)
        if subject is None:
            raise RuntimeError("access review asked about a binding that does not name the user")
        for rule_index, rule in enumerate(self._effective_rules(index)):
            if target.allowed_by(RuleSet.compile((rule,)), verb):
                return Grant(BindingRef.of(binding), subject, rule_index, rule, self._origin(binding, rule))
        raise RuntimeError("access review found no rule for a granting binding; refusing to explain")

    def _effective_rules(self, index: int) -> tuple[PolicyRule, ...]:
        """The rules binding `index` grants: its role's, with aggregation resolved by the authorizer."""
        binding = self.bindings[index]
        as_dicts = self._probe.rules_for(_probe_user(index), binding.namespace)
        return parse_role(CLUSTER_ROLE, {"metadata": {"name": "effective"}, "rules": as_dicts}).rules

    def _origin(self, binding: BindingRecord, rule: PolicyRule) -> RuleOrigin | None:
        """For an aggregated ClusterRole, the first aggregated ClusterRole (breadth first) that writes `rule`."""
        if binding.role_kind != CLUSTER_ROLE:
            return None
        role = self.cluster_roles.get(binding.role_name)
        if role is None or role.aggregation is None:
            return None
        queue, seen = [role.name], {role.name}
        while queue:
            current = self.cluster_roles[queue.pop(0)]
            for name in self._selected_by(current):
                if name in seen:
                    continue
                seen.add(name)
                source = self.cluster_roles[name]
                if source.aggregation is None:
                    if rule in source.rules:
                        return RuleOrigin(name, source.rules.index(rule))
                else:
                    queue.append(name)
        return None

    def _selected_by(self, role: RoleRecord) -> list[str]:
        """The ClusterRoles an aggregated ClusterRole's selectors pick, in name order per selector."""
        return [
            name
            for selector in role.aggregation or ()
            for name in sorted(self.cluster_roles)
            if name != role.name and selector.matches(self.cluster_roles[name].labels)
        ]


def _parsed(parse: Any, kind: str, obj: Mapping[str, Any]) -> Any:
    """`parse(kind, obj)`, with the object's identity in front of any validation error."""
    try:
        return parse(kind, obj)
    except InvalidRBACObject as exc:
        raise InvalidRBACObject(f"{kind} {_identity(obj)}: {exc}") from None


def _identity(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return "(no metadata)"
    name, namespace = metadata.get("name"), metadata.get("namespace")
    text = go_quote(name) if isinstance(name, str) else "(no name)"
    return f"{text} in namespace {go_quote(namespace)}" if isinstance(namespace, str) and namespace else text


def _probe_binding(binding: BindingRecord, probe_user: str) -> dict[str, Any]:
    """A copy of `binding` (same kind, namespace, name and role) whose only subject is `probe_user`."""
    metadata = {"name": binding.name}
    if binding.namespace:
        metadata["namespace"] = binding.namespace
    return {
        "metadata": metadata,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": binding.role_kind, "name": binding.role_name},
        "subjects": [{"kind": USER, "apiGroup": RBAC_GROUP, "name": probe_user}],
    }


def _in_scope(binding: BindingRecord, target: Target) -> bool:
    """Whether the binding can apply to the request at all: cluster-wide, or a RoleBinding of its namespace."""
    if binding.kind == CLUSTER_ROLE_BINDING:
        return True
    return target.resource_request and bool(target.namespace) and binding.namespace == target.namespace


def _identity_rank(binding: BindingRecord, user: str, groups: tuple[str, ...]) -> int | None:
    """0 if the binding names the user, 1 + the position of the first group it names, None if neither."""
    keys = binding.index_keys()
    if ("user", user) in keys:
        return 0
    for position, group in enumerate(groups):
        if ("group", group) in keys:
            return 1 + position
    return None


def _finding_order(finding: Finding) -> tuple[Any, ...]:
    ref = finding.binding
    return (finding.subject_kind, finding.subject_name, finding.subject_namespace,
            ref.kind != CLUSTER_ROLE_BINDING, ref.namespace, ref.name)
