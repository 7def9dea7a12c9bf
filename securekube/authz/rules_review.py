"""SelfSubjectRulesReview: the rules a user holds in a namespace, in upstream's status shape.

This is what `kubectl auth can-i --list` shows. As upstream, the server returns the RBAC rules
as they are bound — one entry per rule per binding, cluster-wide bindings first, then the
namespace's RoleBindings — split into resource and non-resource rules; kubectl merges and
sorts them for display. Authorizers that cannot list what they allow (upstream: the Node
authorizer for nodes, webhooks; here also OPA) make the answer `incomplete`, with their reasons
in `evaluationError`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from securekube.api import errors
from securekube.authn.interfaces import UserInfo
from securekube.authz.rbac import RBACAuthorizer

__all__ = ["self_subject_rules"]


def self_subject_rules(
    authorizer: RBACAuthorizer,
    user: UserInfo,
    namespace: str,
    *,
    incomplete_reasons: Sequence[str] = (),
) -> dict[str, Any]:
    """The `status` of a SelfSubjectRulesReview for `user` in `namespace`.

    `{"resourceRules": [...], "nonResourceRules": [...], "incomplete": bool}`, plus
    `evaluationError` when `incomplete_reasons` (from authorizers in the chain that cannot
    enumerate rules, e.g. `NodeAuthorizer.rule_resolution_error(user)`) is not empty. Raises
    upstream's 400 BadRequest "no namespace on request" when `namespace` is empty.
    """
    if not namespace:
        raise errors.bad_request("no namespace on request")
    resource_rules: list[dict[str, list[str]]] = []
    non_resource_rules: list[dict[str, list[str]]] = []
    for rule in authorizer.rules_for(user, namespace):
        # A rule is listed under each kind it names, as upstream does (a valid rule names one).
        if rule.get("resources"):
            resource_rules.append(_resource_rule(rule))
        if rule.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(rule.get("verbs", [])),
                                       "nonResourceURLs": list(rule["nonResourceURLs"])})
    status: dict[str, Any] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": bool(incomplete_reasons),
    }
    if incomplete_reasons:
        # Upstream aggregates several errors as "[a, b]" and shows a single one bare.
        reasons = list(incomplete_reasons)
        status["evaluationError"] = reasons[0] if len(reasons) == 1 else f"[{', '.join(reasons)}]"
    return status


def _resource_rule(rule: dict[str, Any]) -> dict[str, list[str]]:
    """A PolicyRule as a ResourceRule: verbs always, the other lists only when set (omitempty)."""
    out = {"verbs": list(rule.get("verbs", []))}
    for field in ("apiGroups", "resources", "resourceNames"):
        if rule.get(field):
            out[field] = list(rule[field])
    return out
