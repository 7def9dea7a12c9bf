"""Privilege-escalation prevention for RBAC writes, against upstream's rules and messages."""
from __future__ import annotations

from typing import Any

import pytest

from securekube.authn.interfaces import UserInfo
from securekube.authz.bootstrap_policy import bootstrap_objects
from securekube.authz.escalation import (
    EscalationError,
    allowed_by,
    check_binding_write,
    check_role_write,
    compact_rules,
    compact_string,
    covers,
)
from securekube.authz.interfaces import Attributes
from securekube.authz.rbac import InvalidRBACObject, RBACAuthorizer

from tests.unit.authz.rbac_builders import rule

RBAC = "rbac.authorization.k8s.io"
NS = "team-a"
DEV = UserInfo("dev", groups=("system:authenticated",))
MASTER = UserInfo("loopback", groups=("system:masters", "system:authenticated"))




def role_obj(name, *rules, namespace=NS) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name, "namespace": namespace},
            "rules": list(rules)}


def cluster_role_obj(name, *rules, selectors=None, labels=None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                           "metadata": {"name": name, "labels": labels or {}}, "rules": list(rules)}
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


def role_binding(name, role_kind, role_name, namespace=NS, user="someone-else") -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": user}]}


def cluster_role_binding(name, role_name, user="someone-else") -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": user}]}


class Cluster:
    """RBAC state plus the stored objects, as the API handler would see them."""

    def __init__(self, *objects: dict[str, Any], bootstrap: bool = True) -> None:
        self.rbac = RBACAuthorizer()
        self.stored: dict[tuple[str, str, str], dict[str, Any]] = {}
        for obj in (bootstrap_objects() if bootstrap else []) + list(objects):
            self.add(obj)

    def add(self, obj: dict[str, Any]) -> None:
        self.rbac.apply(obj["kind"], obj)
        meta = obj["metadata"]
        self.stored[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.stored.get((kind, namespace, name))

    def can(self, attrs: Attributes) -> bool:
        return allowed_by(self.rbac)(attrs)

    def write_role(self, user, obj, namespace=NS, **kwargs) -> None:
        check_role_write(self.rbac, user, namespace, obj, self.can, **kwargs)

    def write_binding(self, user, obj, namespace=NS, **kwargs) -> None:
        check_binding_write(self.rbac, user, namespace, obj, self.lookup, self.can, **kwargs)


def holding(*rules, namespace=NS, user="dev") -> dict[str, Any]:
    """A Role with `rules` and a RoleBinding giving it to `user` in `namespace`, as objects to add."""
    return [role_obj("held", *rules, namespace=namespace), role_binding("held", "Role", "held", namespace, user)]


def cluster_with(*objects, bootstrap=True) -> Cluster:
    flat: list[dict[str, Any]] = []
    for obj in objects:
        flat.extend(obj if isinstance(obj, list) else [obj])
    return Cluster(*flat, bootstrap=bootstrap)


# ----------------------------------------------------------------------------- covers

COVER_CASES = [
    # (id, owner rules, requested rules, covered)
    ("same rule", [rule(["get"], [""], ["pods"])], [rule(["get"], [""], ["pods"])], True),
    ("more verbs", [rule(["get"], [""], ["pods"])], [rule(["get", "delete"], [""], ["pods"])], False),
    ("star verb covers any", [rule(["*"], [""], ["pods"])], [rule(["escalate"], [""], ["pods"])], True),
    ("star verb requested needs star", [rule(["get", "list"], [""], ["pods"])], [rule(["*"], [""], ["pods"])], False),
    ("star group", [rule(["get"], ["*"], ["deployments"])], [rule(["get"], ["apps"], ["deployments"])], True),
    ("other group", [rule(["get"], [""], ["deployments"])], [rule(["get"], ["apps"], ["deployments"])], False),
    ("star resource covers subresource", [rule(["get"], [""], ["*"])], [rule(["get"], [""], ["pods/log"])], True),
    ("resource does not cover its subresource", [rule(["get"], [""], ["pods"])],
     [rule(["get"], [""], ["pods/exec"])], False),
    ("star-slash-subresource", [rule(["update"], ["apps"], ["*/scale"])],
     [rule(["update"], ["apps"], ["deployments/scale", "statefulsets/scale"])], True),
    ("star-slash-subresource not the parent", [rule(["update"], ["apps"], ["*/scale"])],
     [rule(["update"], ["apps"], ["deployments"])], False),
    ("requested star resource needs star", [rule(["get"], [""], ["pods", "secrets"])],
     [rule(["get"], [""], ["*"])], False),
    ("unnamed owner covers names", [rule(["get"], [""], ["secrets"])],
     [rule(["get"], [""], ["secrets"], names=["a", "b"])], True),
    ("named owner covers its names", [rule(["get"], [""], ["secrets"], names=["a", "b"])],
     [rule(["get"], [""], ["secrets"], names=["b"])], True),
    ("named owner not other names", [rule(["get"], [""], ["secrets"], names=["a"])],
     [rule(["get"], [""], ["secrets"], names=["b"])], False),
    ("named owner not every name", [rule(["get"], [""], ["secrets"], names=["a"])],
     [rule(["get"], [""], ["secrets"])], False),
    ("pieces from different owner rules", [rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"])],
     [rule(["get", "list"], [""], ["pods"])], True),
    ("url exact", [rule(["get"], urls=["/healthz"])], [rule(["get"], urls=["/healthz"])], True),
    ("url prefix", [rule(["get"], urls=["/apis/*"])], [rule(["get"], urls=["/apis/apps/v1"])], True),
    ("url star covers all", [rule(["get"], urls=["*"])], [rule(["get"], urls=["/metrics"])], True),
    ("url other", [rule(["get"], urls=["/healthz"])], [rule(["get"], urls=["/metrics"])], False),
    ("resource rule does not cover url", [rule(["*"], ["*"], ["*"])], [rule(["get"], urls=["/metrics"])], False),
    ("url rule does not cover resource", [rule(["*"], urls=["*"])], [rule(["get"], [""], ["pods"])], False),
    ("nothing requested", [], [], True),
]


@pytest.mark.parametrize("owner,requested,expected", [c[1:] for c in COVER_CASES], ids=[c[0] for c in COVER_CASES])
def test_covers(owner, requested, expected):
    assert covers(owner, requested)[0] is expected


def test_covers_returns_the_atomic_pieces_not_covered():
    ok, missing = covers([rule(["get"], [""], ["pods"])],
                         [rule(["get", "delete"], ["", "apps"], ["pods"]), rule(["get"], urls=["/x"])])
    assert not ok
    assert missing == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["delete"]},
        {"nonResourceURLs": ["/x"], "verbs": ["get"]},
    ]


def test_covers_refuses_a_malformed_rule():
    with pytest.raises(InvalidRBACObject):
        covers([], [{"verbs": "get"}])


def test_compact_rules_merges_verbs_per_target_and_compact_string_uses_go_quoting():
    compacted = compact_rules([
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"nonResourceURLs": ["/x"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
    ])
    assert [compact_string(r) for r in compacted] == [
        '{NonResourceURLs:["/x"], Verbs:["get"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}',
    ]
    assert compact_string(rule(["get"], ["a\nb"], ["pods"], names=["n"])) == (
        '{APIGroups:["a\\nb"], Resources:["pods"], ResourceNames:["n"], Verbs:["get"]}')


# ----------------------------------------------------------------------------- Role / ClusterRole writes


def test_role_with_more_verbs_than_the_writer_holds_is_refused_with_upstreams_message():
    cluster = cluster_with(holding(rule(["get"], [""], ["secrets"]), rule(["create", "update"], [RBAC], ["roles"])))
    with pytest.raises(EscalationError) as refused:
        cluster.write_role(DEV, role_obj("reader", rule(["get", "list", "watch"], [""], ["secrets"])))
    error = refused.value
    assert (error.code, error.reason) == (403, "Forbidden")
    assert str(error) == (
        'roles.rbac.authorization.k8s.io "reader" is forbidden: user "dev" (groups=["system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["list" "watch"]}'
    )
    assert error.status()["details"] == {"name": "reader", "group": RBAC, "kind": "roles"}


def test_role_within_what_the_writer_holds_is_allowed():
    cluster = cluster_with(holding(rule(["get", "list"], [""], ["secrets", "configmaps"])))
    cluster.write_role(DEV, role_obj("reader", rule(["get"], [""], ["secrets"]), rule(["list"], [""], ["configmaps"])))


def test_permissions_held_in_another_namespace_do_not_count():
    cluster = cluster_with(holding(rule(["get"], [""], ["secrets"]), namespace="other"))
    with pytest.raises(EscalationError):
        cluster.write_role(DEV, role_obj("reader", rule(["get"], [""], ["secrets"])))


def test_cluster_role_needs_the_rules_cluster_wide():
    # Holding a rule in one namespace does not let you put it in a ClusterRole.
    cluster = cluster_with(holding(rule(["get"], [""], ["secrets"])))
    with pytest.raises(EscalationError, match=r'^clusterroles\.rbac\.authorization\.k8s\.io "reader" is forbidden'):
        cluster.write_role(DEV, cluster_role_obj("reader", rule(["get"], [""], ["secrets"])), namespace="")
    cluster.add(cluster_role_obj("secret-reader", rule(["get"], [""], ["secrets"])))
    cluster.add(cluster_role_binding("dev-secret-reader", "secret-reader", user="dev"))
    cluster.write_role(DEV, cluster_role_obj("reader", rule(["get"], [""], ["secrets"])), namespace="")


def test_escalate_verb_allows_granting_more():
    cluster = cluster_with(holding(rule(["escalate"], [RBAC], ["roles"])))
    cluster.write_role(DEV, role_obj("anything", rule(["*"], ["*"], ["*"])))


def test_escalate_limited_to_a_name_applies_to_updates_of_that_role_only():
    cluster = cluster_with(holding(rule(["escalate"], [RBAC], ["roles"], names=["mine"])))
    old = role_obj("mine")
    cluster.write_role(DEV, role_obj("mine", rule(["*"], ["*"], ["*"])), old_obj=old)
    # On create the request names no role yet, so a name-limited escalate does not apply (upstream).
    with pytest.raises(EscalationError):
        cluster.write_role(DEV, role_obj("mine", rule(["*"], ["*"], ["*"])))


def test_escalate_on_roles_in_another_namespace_does_not_apply():
    cluster = cluster_with(holding(rule(["escalate"], [RBAC], ["roles"]), namespace="other"))
    with pytest.raises(EscalationError):
        cluster.write_role(DEV, role_obj("anything", rule(["get"], [""], ["secrets"])))


def test_system_masters_bypass_the_check():
    cluster = cluster_with(bootstrap=False)
    cluster.write_role(MASTER, role_obj("anything", rule(["*"], ["*"], ["*"])))
    cluster.write_binding(MASTER, cluster_role_binding("root", "cluster-admin"), namespace="")


def test_aggregation_rule_needs_full_authority():
    # The role itself grants nothing the writer lacks, but aggregation could gather anything.
    cluster = cluster_with(holding(rule(["create", "update"], [RBAC], ["clusterroles"])))
    cluster.add(cluster_role_obj("everything-but-urls", rule(["get", "list", "create", "update", "delete"], ["*"], ["*"])))
    cluster.add(cluster_role_binding("dev-everything-but-urls", "everything-but-urls", user="dev"))
    aggregated = cluster_role_obj("monitoring", selectors=[{"matchLabels": {"x": "true"}}])
    with pytest.raises(EscalationError) as refused:
        cluster.write_role(DEV, aggregated, namespace="")
    assert str(refused.value) == ('clusterroles.rbac.authorization.k8s.io "monitoring" is forbidden: '
                                  "must have cluster-admin privileges to use the aggregationRule")
    # Removing an aggregationRule needs it as well, since that freezes what the role grants.
    with pytest.raises(EscalationError):
        cluster.write_role(DEV, cluster_role_obj("monitoring"), namespace="", old_obj=aggregated)
    cluster.write_role(DEV, cluster_role_obj("monitoring"), namespace="", old_obj=cluster_role_obj("monitoring"))
    cluster.add(cluster_role_binding("dev-admin", "cluster-admin", user="dev"))
    cluster.write_role(DEV, aggregated, namespace="")


def test_update_changing_only_gc_fields_is_not_checked():
    cluster = cluster_with(bootstrap=False)
    old = role_obj("wide", rule(["*"], ["*"], ["*"]))
    old["metadata"]["finalizers"] = ["example.com/cleanup"]
    new = role_obj("wide", rule(["*"], ["*"], ["*"]))
    new["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "1"}]
    cluster.write_role(DEV, new, old_obj=old)
    changed = role_obj("wide", rule(["*"], ["*"], ["*"]), rule(["get"], [""], ["secrets"]))
    with pytest.raises(EscalationError):
        cluster.write_role(DEV, changed, old_obj=old)


def test_an_authorizer_error_never_counts_as_escalate():
    cluster = cluster_with(bootstrap=False)

    def broken(attrs: Attributes) -> bool:
        raise RuntimeError("policy engine down")

    with pytest.raises(EscalationError):
        check_role_write(cluster.rbac, DEV, NS, role_obj("r", rule(["get"], [""], ["pods"])), broken)


def test_malformed_role_is_refused():
    cluster = cluster_with(bootstrap=False)
    with pytest.raises(InvalidRBACObject):
        cluster.write_role(DEV, {"kind": "Role", "metadata": {"name": "r"}, "rules": "everything"})
    with pytest.raises(InvalidRBACObject):
        cluster.write_role(DEV, role_obj("r"), namespace="")


# ----------------------------------------------------------------------------- binding writes


def test_edit_user_cannot_bind_cluster_admin():
    cluster = cluster_with(role_binding("dev-edit", "ClusterRole", "edit", user="dev"))
    with pytest.raises(EscalationError) as refused:
        cluster.write_binding(DEV, role_binding("root", "ClusterRole", "cluster-admin"))
    message = str(refused.value)
    assert message.startswith('rolebindings.rbac.authorization.k8s.io "root" is forbidden: user "dev" '
                              '(groups=["system:authenticated"]) is attempting to grant RBAC permissions '
                              "not currently held:\n")
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in message.splitlines()
    assert '{NonResourceURLs:["*"], Verbs:["*"]}' in message.splitlines()


def test_namespace_admin_can_bind_the_aggregated_roles_it_covers():
    # admin aggregates edit, which aggregates view: an admin holds both, though the stored
    # objects of these aggregated roles list no rules at all.
    cluster = cluster_with(role_binding("dev-admin", "ClusterRole", "admin", user="dev"))
    assert cluster.lookup("ClusterRole", "", "edit")["rules"] == []
    cluster.write_binding(DEV, role_binding("helper-edit", "ClusterRole", "edit"))
    cluster.write_binding(DEV, role_binding("helper-view", "ClusterRole", "view"))


def test_binding_an_aggregated_role_counts_its_aggregated_rules():
    # view's stored object is empty; judging by it would let anyone bind it.
    cluster = cluster_with(holding(rule(["get"], [""], ["pods"])))
    with pytest.raises(EscalationError, match=r"\{APIGroups:\[\"\"\], Resources:\[\"configmaps\"\]"):
        cluster.write_binding(DEV, role_binding("helper-view", "ClusterRole", "view"))


def test_binding_an_aggregated_role_the_authorizer_has_not_resolved_is_refused():
    cluster = cluster_with(holding(rule(["get"], [""], ["pods"])))
    # Stored, but not yet seen by the authorizer (its watch lags): what it grants is unknown.
    cluster.stored[("ClusterRole", "", "fresh")] = cluster_role_obj("fresh", selectors=[{"matchLabels": {"a": "b"}}])
    with pytest.raises(EscalationError, match='ClusterRole "fresh" is not resolved yet'):
        cluster.write_binding(DEV, role_binding("b", "ClusterRole", "fresh"))


def test_binding_a_role_the_writer_holds_is_allowed():
    cluster = cluster_with(holding(rule(["get", "list"], [""], ["pods"])),
                           role_obj("pod-reader", rule(["get"], [""], ["pods"])))
    cluster.write_binding(DEV, role_binding("b", "Role", "pod-reader"))


def test_bind_verb_allows_binding_more_than_held():
    cluster = cluster_with(holding(rule(["bind"], [RBAC], ["clusterroles"], names=["cluster-admin"])))
    cluster.write_binding(DEV, role_binding("root-here", "ClusterRole", "cluster-admin"))
    # bind is checked in the binding's namespace: it does not reach other namespaces or cluster-wide.
    with pytest.raises(EscalationError):
        cluster.write_binding(DEV, role_binding("root-there", "ClusterRole", "cluster-admin", namespace="other"),
                              namespace="other")
    with pytest.raises(EscalationError):
        cluster.write_binding(DEV, cluster_role_binding("root", "cluster-admin"), namespace="")
    # and only for the role it names
    with pytest.raises(EscalationError):
        cluster.write_binding(DEV, role_binding("edit-here", "ClusterRole", "edit"))


def test_binding_to_a_missing_role_is_refused_unless_bind_is_allowed():
    cluster = cluster_with(holding(rule(["get"], [""], ["pods"])))
    with pytest.raises(EscalationError) as refused:
        cluster.write_binding(DEV, role_binding("b", "Role", "not-yet"))
    assert (refused.value.code, refused.value.reason) == (404, "NotFound")
    assert str(refused.value) == 'roles.rbac.authorization.k8s.io "not-yet" not found'
    cluster.add(role_obj("held-bind", rule(["bind"], [RBAC], ["roles"])))
    cluster.add(role_binding("held-bind", "Role", "held-bind", user="dev"))
    cluster.write_binding(DEV, role_binding("b", "Role", "not-yet"))


def test_cluster_role_binding_needs_the_rules_cluster_wide():
    cluster = cluster_with(holding(rule(["get"], [""], ["pods"])),
                           cluster_role_obj("pod-reader", rule(["get"], [""], ["pods"])))
    with pytest.raises(EscalationError, match=r'^clusterrolebindings\.rbac\.authorization\.k8s\.io "b" is forbidden'):
        cluster.write_binding(DEV, cluster_role_binding("b", "pod-reader"), namespace="")
    cluster.write_binding(DEV, role_binding("b", "ClusterRole", "pod-reader"))


def test_binding_update_changing_only_gc_fields_is_not_checked():
    cluster = cluster_with(bootstrap=False)
    old = cluster_role_binding("root", "cluster-admin")
    new = cluster_role_binding("root", "cluster-admin")
    new["metadata"]["finalizers"] = []
    old["metadata"]["finalizers"] = ["example.com/x"]
    cluster.write_binding(DEV, new, namespace="", old_obj=old)
    new["subjects"].append({"kind": "User", "apiGroup": RBAC, "name": "dev"})
    with pytest.raises(EscalationError):
        cluster.write_binding(DEV, new, namespace="", old_obj=old)


def test_malformed_role_ref_is_refused():
    cluster = cluster_with(bootstrap=False)
    binding = cluster_role_binding("b", "x")
    binding["roleRef"]["kind"] = "Role"  # a ClusterRoleBinding can only reference a ClusterRole
    with pytest.raises(InvalidRBACObject):
        cluster.write_binding(MASTER, binding, namespace="")
