"""Whether a pod fits a node: readiness, nodeSelector, required node affinity, taints and tolerations.

Each check returns upstream's reason text (as `kubectl describe pod` shows it in a
FailedScheduling event) or None; `unschedulable_message` sums them up the way upstream does:
"0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had
untolerated taint {dedicated: gpu}."
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
UNSCHEDULABLE = "node(s) were unschedulable"
# Effects that keep a pod off a node (PreferNoSchedule only prefers).
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def ready_status(node: Mapping[str, Any]) -> str:
    """The node's Ready condition status: "True", "False" or "Unknown" (also when it reports none)."""
    for condition in (node.get("status") or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown")
    return "Unknown"


def effective_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The node's taints plus those upstream's node lifecycle adds for a node not Ready or cordoned."""
    taints = [t for t in _spec(node).get("taints") or () if isinstance(t, Mapping)]
    ready = ready_status(node)
    if ready == "False":
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    elif ready != "True":
        taints.append({"key": UNREACHABLE_TAINT, "effect": "NoSchedule"})
    return taints


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Upstream's ToleratesTaint: effect (empty = all), key (empty with Exists = all), operator and value."""
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    if toleration.get("key") != taint.get("key") and not (operator == "Exists" and not toleration.get("key")):
        return False
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def _label_expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression.get("key"), expression.get("operator")
    values = [str(x) for x in expression.get("values") or ()]
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False  # an operator we do not know matches nothing: fail closed


def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": (node.get("metadata") or {}).get("name", "")}
    expressions = list(term.get("matchExpressions") or ())
    field_expressions = list(term.get("matchFields") or ())
    if not expressions and not field_expressions:
        return False  # upstream: an empty term matches no objects
    return (all(_label_expression_matches(e, labels) for e in expressions)
            and all(_label_expression_matches(e, fields) for e in field_expressions))


def matches_node_selection(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector (every label equal) and required node affinity (any term matches)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    selector = _spec(pod).get("nodeSelector") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    affinity = ((_spec(pod).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if affinity:
        terms = affinity.get("nodeSelectorTerms") or ()
        return any(_term_matches(term, node) for term in terms if isinstance(term, Mapping))
    return True


def why_not(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why `pod` cannot go to `node` (upstream's reason text), or None when it fits."""
    tolerations = [t for t in _spec(pod).get("tolerations") or () if isinstance(t, Mapping)]
    if _spec(node).get("unschedulable") and not any(
            tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tolerations):
        return UNSCHEDULABLE
    if not matches_node_selection(pod, node):
        return SELECTOR_MISMATCH
    for taint in effective_taints(node):
        if taint.get("effect") in _BLOCKING_EFFECTS and not any(tolerates(t, taint) for t in tolerations):
            return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    return None


def unschedulable_message(reasons: Counter[str], node_count: int) -> str:
    """Upstream's FailedScheduling summary for `node_count` nodes that all refused for `reasons`."""
    if node_count == 0:
        return "no nodes available to schedule pods"
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return f"0/{node_count} nodes are available: {parts}."
