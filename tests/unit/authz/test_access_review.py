"""who_can / explain against upstream RBAC semantics, and agreement with the RBAC authorizer."""
from __future__ import annotations

from typing import Any

import pytest

from securekube.authn.interfaces import UserInfo
from securekube.authz.access_review import (
    InvalidRBACObject,
    InvalidTarget,
    Target,
    dangling_bindings,
    effective_groups,
    explain,
    parse_target,
    render_rule,
    who_can,
)
from securekube.authz.bootstrap_policy import bootstrap_objects
from securekube.authz.interfaces import Verdict
from securekube.authz.rbac import RBACAuthorizer

from tests.unit.authz.rbac_builders import rule

RBAC = "rbac.authorization.k8s.io"


# ----------------------------------------------------------------------------- builders




def cluster_role(name, *rules, labels=None, aggregate_label=None) -> dict:
    obj: dict[str, Any] = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                           "metadata": {"name": name, "labels": labels or {}}, "rules": list(rules)}
    if aggregate_label is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate_label: "true"}}]}
    return obj


def role(namespace, name, *rules) -> dict:
    return {"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": list(rules)}


def user(name):
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def group(name):
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def sa(name, namespace=None):
    out = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        out["namespace"] = namespace
    return out


def crb(name, role_name, *subjects) -> dict:
    return {"kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role_name}, "subjects": list(subjects)}


def rb(namespace, name, role_kind, role_name, *subjects) -> dict:
    return {"kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name}, "subjects": list(subjects)}


def rows(findings) -> set[tuple[str, str, str, str, str]]:
    """(subject kind, subject name, SA namespace, "Kind/ns/name" of the binding, "Kind/name" of the role)."""
    out = set()
    for f in findings:
        b = f.binding
        where = f"{b.kind}/{b.namespace}/{b.name}" if b.namespace else f"{b.kind}/{b.name}"
        out.add((f.subject_kind, f.subject_name, f.subject_namespace, where, f"{b.role_kind}/{b.role_name}"))
    return out


# ----------------------------------------------------------------------------- a small world

AGG = "example.com/aggregate-to-monitoring"

WORLD = [
    role("team-a", "secret-reader", rule(["get", "list"], [""], ["configmaps"]),
         rule(["get", "list", "watch"], [""], ["secrets"])),
    rb("team-a", "readers", "Role", "secret-reader", user("alice"), group("auditors"), sa("ci")),
    cluster_role("pod-reader", rule(["get", "list"], [""], ["pods"])),
    rb("team-a", "pods", "ClusterRole", "pod-reader", user("bob")),
    cluster_role("monitoring", aggregate_label=AGG),
    cluster_role("monitoring-pods", rule(["get"], [""], ["pods/log"]), labels={AGG: "true"}),
    cluster_role("monitoring-urls", rule(["get"], urls=["/healthz", "/metrics/*"]), labels={AGG: "true"}),
    crb("sre", "monitoring", group("sre")),
    cluster_role("db-password", rule(["get"], [""], ["secrets"], names=["db-password"])),
    rb("team-a", "db", "ClusterRole", "db-password", sa("app", "team-b")),
    cluster_role("deployer", rule(["get", "update"], ["apps"], ["deployments", "deployments/scale"])),
    crb("release", "deployer", sa("release", "cicd"), user("rita")),
    cluster_role("everything", rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])),
    crb("admins", "everything", group("admins")),
    rb("team-a", "dangling", "Role", "does-not-exist", user("dan")),
]

ADMINS = ("Group", "admins", "", "ClusterRoleBinding/admins", "ClusterRole/everything")

WHO_CAN_CASES = [
    # (id, verb, target, expected rows besides the admins' wildcard binding)
    ("Role via RoleBinding: user, group, and SA defaulting to the binding's namespace",
     "get", parse_target("secrets", "team-a"),
     {("User", "alice", "", "RoleBinding/team-a/readers", "Role/secret-reader"),
      ("Group", "auditors", "", "RoleBinding/team-a/readers", "Role/secret-reader"),
      ("ServiceAccount", "ci", "team-a", "RoleBinding/team-a/readers", "Role/secret-reader")}),
    ("a RoleBinding grants nothing in another namespace", "get", parse_target("secrets", "team-b"), set()),
    ("a RoleBinding grants nothing at the cluster scope", "list", parse_target("secrets"), set()),
    ("verb not in the rule", "delete", parse_target("secrets", "team-a"), set()),
    ("RoleBinding to a ClusterRole is scoped to the namespace", "list", parse_target("pods", "team-a"),
     {("User", "bob", "", "RoleBinding/team-a/pods", "ClusterRole/pod-reader")}),
    ("... and grants nothing elsewhere", "list", parse_target("pods", "team-c"), set()),
    ("aggregated ClusterRole, subresource", "get", parse_target("pods/log", "team-c"),
     {("Group", "sre", "", "ClusterRoleBinding/sre", "ClusterRole/monitoring")}),
    ("the parent rule does not cover the subresource", "get", parse_target("pods/log", "team-a"),
     {("Group", "sre", "", "ClusterRoleBinding/sre", "ClusterRole/monitoring")}),
    ("resourceNames rule: not for another name", "get", parse_target("secrets", "team-a", name="other"),
     {("User", "alice", "", "RoleBinding/team-a/readers", "Role/secret-reader"),
      ("Group", "auditors", "", "RoleBinding/team-a/readers", "Role/secret-reader"),
      ("ServiceAccount", "ci", "team-a", "RoleBinding/team-a/readers", "Role/secret-reader")}),
    ("resourceNames rule: only its verbs", "update", parse_target("secrets", "team-a", name="db-password"), set()),
    ("resourceNames rule of a RoleBinding: only in its namespace", "get", parse_target("secrets", "team-b", name="db-password"),
     set()),
    ("API group: deployments.apps", "update", parse_target("deployments.apps", "x"),
     {("ServiceAccount", "release", "cicd", "ClusterRoleBinding/release", "ClusterRole/deployer"),
      ("User", "rita", "", "ClusterRoleBinding/release", "ClusterRole/deployer")}),
    ("core-group deployments are another resource", "update", parse_target("deployments", "x"), set()),
    ("group plus subresource", "update", parse_target("deployments.apps/scale"),
     {("ServiceAccount", "release", "cicd", "ClusterRoleBinding/release", "ClusterRole/deployer"),
      ("User", "rita", "", "ClusterRoleBinding/release", "ClusterRole/deployer")}),
    ("non-resource URL, exact", "get", parse_target("/healthz"),
     {("Group", "sre", "", "ClusterRoleBinding/sre", "ClusterRole/monitoring")}),
    ("non-resource URL, prefix", "get", parse_target("/metrics/cadvisor"),
     {("Group", "sre", "", "ClusterRoleBinding/sre", "ClusterRole/monitoring")}),
    ("non-resource URL, prefix needs the slash", "get", parse_target("/metrics"), set()),
]


@pytest.mark.parametrize("verb,target,expected", [c[1:] for c in WHO_CAN_CASES], ids=[c[0] for c in WHO_CAN_CASES])
def test_who_can_follows_upstream_rbac(verb, target, expected):
    assert rows(who_can(WORLD, verb, target)) == expected | {ADMINS}


def test_who_can_names_the_resource_named_binding_only_with_that_name():
    target = parse_target("secrets", "team-a", name="db-password")
    assert ("ServiceAccount", "app", "team-b", "RoleBinding/team-a/db", "ClusterRole/db-password") in rows(
        who_can(WORLD, "get", target))
    assert not any(r[1] == "app" for r in rows(who_can(WORLD, "get", parse_target("secrets", "team-a"))))


def test_who_can_lists_a_subject_once_per_granting_binding_sorted():
    objects = [cluster_role("r", rule(["get"], [""], ["pods"])),
               crb("z-second", "r", user("u")), crb("a-first", "r", user("u"), user("u"))]
    findings = who_can(objects, "get", parse_target("pods"))
    assert [f.binding.name for f in findings] == ["a-first", "z-second"]


def test_nested_aggregation_is_resolved():
    objects = [
        cluster_role("top", aggregate_label="to-top"),
        cluster_role("middle", labels={"to-top": "true"}, aggregate_label="to-middle"),
        cluster_role("leaf", rule(["get"], ["batch"], ["jobs"]), labels={"to-middle": "true"}),
        crb("top", "top", user("ursula")),
    ]
    assert rows(who_can(objects, "get", parse_target("jobs.batch", "n"))) == {
        ("User", "ursula", "", "ClusterRoleBinding/top", "ClusterRole/top")}
    grant = explain(objects, "ursula", [], "get", parse_target("jobs.batch", "n")).decided_by
    assert grant is not None and grant.origin is not None
    assert (grant.origin.role_name, grant.origin.rule_index) == ("leaf", 0)


def test_a_binding_whose_role_is_missing_grants_nothing_and_is_reported():
    assert dangling_bindings(WORLD, parse_target("pods", "team-a"))[0].name == "dangling"
    assert dangling_bindings(WORLD, parse_target("pods", "team-b")) == []
    explanation = explain(WORLD, "dan", [], "get", parse_target("pods", "team-a"))
    assert not explanation.allowed
    assert [ref.name for ref in explanation.missing_roles] == ["dangling"]


def test_later_objects_replace_earlier_ones():
    objects = [cluster_role("r", rule(["get"], [""], ["pods"])), crb("b", "r", user("u")),
               cluster_role("r", rule(["get"], [""], ["nodes"]))]
    assert who_can(objects, "get", parse_target("pods")) == []
    assert len(who_can(objects, "get", parse_target("nodes"))) == 1


# ----------------------------------------------------------------------------- explain


def test_explain_names_binding_role_rule_and_index():
    explanation = explain(WORLD, "alice", [], "watch", parse_target("secrets", "team-a"))
    assert explanation.allowed
    grant = explanation.decided_by
    assert grant is not None
    assert (grant.binding.kind, grant.binding.namespace, grant.binding.name) == ("RoleBinding", "team-a", "readers")
    assert (grant.binding.role_kind, grant.binding.role_name) == ("Role", "secret-reader")
    assert grant.subject.describe() == 'User "alice"'
    assert grant.rule_index == 1  # the configmaps rule comes first
    assert render_rule(grant.rule) == '{apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch"]}'
    assert explanation.reason == 'RBAC: allowed by RoleBinding "readers/team-a" of Role "secret-reader" to User "alice"'


def test_explain_adds_system_authenticated_for_any_user():
    objects = [cluster_role("basic", rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews"])),
               crb("basic", "basic", group("system:authenticated"))]
    explanation = explain(objects, "nobody-special", [], "create", parse_target("selfsubjectaccessreviews."
                                                                                  "authorization.k8s.io"))
    assert explanation.allowed and explanation.implicit_groups == ("system:authenticated",)
    assert explanation.decided_by is not None
    assert explanation.decided_by.subject.describe() == 'Group "system:authenticated"'
    anonymous = explain(objects, "system:anonymous", [], "create",
                        parse_target("selfsubjectaccessreviews.authorization.k8s.io"))
    assert not anonymous.allowed and anonymous.groups == ("system:unauthenticated",)


def test_explain_service_account_user_matches_sa_subjects_and_sa_groups():
    objects = WORLD + [crb("all-sas", "pod-reader", group("system:serviceaccounts:team-b"))]
    assert explain(objects, "system:serviceaccount:team-a:ci", [], "get", parse_target("secrets", "team-a")).allowed
    assert not explain(objects, "system:serviceaccount:team-b:ci", [], "get", parse_target("secrets", "team-a")).allowed
    by_group = explain(objects, "system:serviceaccount:team-b:x", [], "list", parse_target("pods", "q"))
    assert by_group.allowed and by_group.decided_by is not None
    assert by_group.decided_by.binding.name == "all-sas"
    assert effective_groups("system:serviceaccount:team-b:x", []) == (
        "system:serviceaccounts", "system:serviceaccounts:team-b", "system:authenticated")


def test_explain_with_group_and_every_other_granting_binding():
    explanation = explain(WORLD, "alice", ["admins"], "get", parse_target("secrets", "team-a"))
    assert explanation.allowed
    assert explanation.decided_by is not None
    # ClusterRoleBindings are visited first, as the authorizer does; the RoleBinding also grants it.
    assert explanation.decided_by.binding.name == "admins"
    assert "admins" in explanation.reason
    assert [g.binding.name for g in explanation.also_allowed_by] == ["readers"]


def test_explain_denied_lists_what_applies():
    explanation = explain(WORLD, "bob", [], "get", parse_target("secrets", "team-a"))
    assert not explanation.allowed and explanation.decided_by is None and explanation.also_allowed_by == ()
    assert [ref.name for ref in explanation.applicable_bindings] == ["pods"]
    assert explanation.to_dict()["allowed"] is False


def test_explain_aggregated_rule_points_at_its_source():
    grant = explain(WORLD, "sam", ["sre"], "get", parse_target("/metrics/x")).decided_by
    assert grant is not None and grant.origin is not None
    assert (grant.origin.role_name, grant.origin.rule_index) == ("monitoring-urls", 0)
    assert render_rule(grant.rule) == '{nonResourceURLs: ["/healthz", "/metrics/*"], verbs: ["get"]}'
    as_json = explain(WORLD, "sam", ["sre"], "get", parse_target("/metrics/x")).to_dict()
    assert as_json["decidedBy"]["aggregatedFrom"] == {"kind": "ClusterRole", "name": "monitoring-urls", "ruleIndex": 0}


def test_explain_notes_that_upstream_superusers_bypass_rbac():
    explanation = explain(WORLD, "root", ["system:masters"], "get", parse_target("secrets", "x"))
    assert not explanation.allowed
    assert any("system:masters" in note for note in explanation.notes)
    assert explain(WORLD, "root", ["system:masters", "admins"], "get", parse_target("secrets", "x")).notes == ()


USERS = [("alice", ()), ("bob", ()), ("rita", ()), ("sam", ("sre",)), ("eve", ("admins",)),
         ("system:serviceaccount:team-a:ci", ()), ("system:serviceaccount:team-b:app", ()),
         ("securekube-admin", ("securekube:cluster-admins",)), ("anyone", ())]
TARGETS = [("get", parse_target("secrets", "team-a")), ("get", parse_target("secrets", "team-a", name="db-password")),
           ("list", parse_target("pods", "team-a")), ("get", parse_target("pods/log")),
           ("update", parse_target("deployments.apps/scale", "x")), ("get", parse_target("/healthz")),
           ("create", parse_target("selfsubjectaccessreviews.authorization.k8s.io")),
           ("delete", parse_target("namespaces", name="kube-system")), ("get", parse_target("/version"))]


@pytest.mark.parametrize("name,groups", USERS)
def test_explain_and_who_can_agree_with_the_authorizer(name, groups):
    objects = bootstrap_objects() + WORLD
    authorizer = RBACAuthorizer()
    for obj in objects:
        authorizer.apply(obj["kind"], obj)
    for verb, target in TARGETS:
        all_groups = effective_groups(name, groups)
        decision = authorizer.authorize(target.attributes(UserInfo(name, groups=all_groups), verb))
        explanation = explain(objects, name, groups, verb, target)
        assert explanation.allowed is (decision.verdict is Verdict.ALLOW), (verb, target)
        assert explanation.reason == decision.reason
        if explanation.decided_by is not None:  # the binding explained is the one the authorizer names
            ref = explanation.decided_by.binding
            binding_name = f"{ref.name}/{ref.namespace}" if ref.namespace else ref.name
            assert f'by {ref.kind} "{binding_name}" of {ref.role_kind} "{ref.role_name}" to' in decision.reason
        # who-can lists a subject naming this identity exactly when it is allowed.
        listed = any(
            (f.subject_kind == "User" and f.subject_name == name)
            or (f.subject_kind == "Group" and f.subject_name in all_groups)
            or (f.subject_kind == "ServiceAccount"
                and name == f"system:serviceaccount:{f.subject_namespace}:{f.subject_name}")
            for f in who_can(objects, verb, target))
        assert listed is explanation.allowed, (verb, target)


# ----------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("text,namespace,name,expected", [
    ("pods", "ns", "", Target(namespace="ns", resource="pods")),
    ("pods/log", "ns", "p", Target(namespace="ns", resource="pods", subresource="log", name="p")),
    ("deployments.apps", "", "", Target(api_group="apps", resource="deployments")),
    ("deployments.apps/scale", "", "", Target(api_group="apps", resource="deployments", subresource="scale")),
    ("pods.metrics.k8s.io", "", "", Target(api_group="metrics.k8s.io", resource="pods")),
    ("/healthz", "", "", Target(path="/healthz")),
])
def test_parse_target_accepts_kubectl_forms(text, namespace, name, expected):
    assert parse_target(text, namespace, name) == expected


@pytest.mark.parametrize("text,namespace,name", [
    ("", "", ""), ("pods/", "", ""), ("pods/log/extra", "", ""), (".apps", "", ""), ("pods.", "", ""),
    ("/healthz", "ns", ""), ("/healthz", "", "x"),
])
def test_parse_target_rejects_malformed_requests(text, namespace, name):
    with pytest.raises(InvalidTarget):
        parse_target(text, namespace, name)


def test_invalid_objects_are_rejected_with_their_identity():
    bad = rb("team-a", "broken", "Role", "r", {"kind": "Robot", "name": "x"})
    with pytest.raises(InvalidRBACObject, match='RoleBinding "broken" in namespace "team-a": subjects\\[0\\].kind'):
        who_can([bad], "get", parse_target("pods", "team-a"))
    with pytest.raises(InvalidRBACObject, match="not a Role"):
        who_can([{"kind": "Secret", "metadata": {"name": "s"}}], "get", parse_target("pods"))


def test_descriptions_quote_names_that_are_not_plain():
    assert parse_target("secrets", "team-a").describe("get") == 'get secrets in API group "" in namespace "team-a"'
    assert parse_target("/healthz").describe("get") == "get /healthz"
    assert "\x1b" not in parse_target("x\x1b[2J").describe("get")
