"""rbac-gen: the generated RBAC allows exactly what the identity requested (checked with securekube's
own RBAC authorizer), is compact, and is YAML kubectl applies."""
from __future__ import annotations

import pytest
import yaml

from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.query import QueryError
from securekube.audit.review.rbac_gen import Identity, collect, rbac_objects, to_yaml, valid_object_name
from securekube.audit.review.reader import read_events
from securekube.audit.review.stages import requests
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.rbac import RBACAuthorizer

DEPLOYER = Identity.service_account("ci:deployer")


def generated(fixtures, identity: Identity, name: str | None = None) -> list[dict]:
    problems = ReadProblems()
    events = (r.event for r in requests([str(fixtures / "upstream-kube-apiserver.log")], problems))
    return rbac_objects(collect(events, identity), identity, name)


def authorizer_with(objects: list[dict]) -> RBACAuthorizer:
    rbac = RBACAuthorizer()
    for obj in objects:
        rbac.apply(obj["kind"], obj)
    return rbac


def allowed(rbac: RBACAuthorizer, user: UserInfo, verb: str, namespace: str = "", resource: str = "", group: str = "",
            subresource: str = "", name: str = "", path: str = "") -> bool:
    attrs = Attributes(user, verb, not path, namespace, group, "v1", resource, subresource, name, path)
    return rbac.authorize(attrs).verdict is Verdict.ALLOW


def test_service_account_gets_a_role_per_namespace_and_a_cluster_role(fixtures):
    objects = generated(fixtures, DEPLOYER)
    assert [(o["kind"], o["metadata"].get("namespace")) for o in objects] == [
        ("Role", "team-a"), ("RoleBinding", "team-a"), ("ClusterRole", None), ("ClusterRoleBinding", None)]
    role, binding, cluster_role, cluster_binding = objects
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
    ]
    # The denied list of nodes is included on purpose (what the workload needed), and /version.
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
        {"nonResourceURLs": ["/version"], "verbs": ["get"]},
    ]
    subject = {"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}
    assert binding["subjects"] == [subject] and cluster_binding["subjects"] == [subject]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "rbac-gen:system:serviceaccount:ci:deployer"}


def test_generated_rbac_allows_exactly_the_requests_made(fixtures):
    rbac = authorizer_with(generated(fixtures, DEPLOYER))
    sa = UserInfo(DEPLOYER.username, groups=("system:serviceaccounts", "system:serviceaccounts:ci"))
    assert allowed(rbac, sa, "delete", "team-a", "pods", name="web-1")
    assert allowed(rbac, sa, "delete", "team-a", "pods", name="any-other-pod")  # no resourceNames, by design
    assert allowed(rbac, sa, "patch", "team-a", "deployments", "apps", name="web")
    assert allowed(rbac, sa, "list", "", "nodes")
    assert allowed(rbac, sa, "get", path="/version")
    assert not allowed(rbac, sa, "get", "team-a", "pods", name="web-1")  # another verb
    assert not allowed(rbac, sa, "delete", "team-b", "pods", name="web-1")  # another namespace
    assert not allowed(rbac, sa, "patch", "team-a", "deployments", "extensions", name="web")  # another group
    assert not allowed(rbac, sa, "create", "team-a", "pods", "", "exec", name="web-1")  # a subresource
    assert not allowed(rbac, sa, "get", path="/healthz")
    assert not allowed(rbac, UserInfo("someone-else"), "delete", "team-a", "pods", name="web-1")


def test_user_with_impersonated_requests_and_subresources(fixtures):
    objects = generated(fixtures, Identity.user("alice"))
    [role, _] = objects
    # alice's own secret read and the list done as her through impersonation.
    assert role["metadata"] == {"name": "rbac-gen:alice", "namespace": "team-a"}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                             {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    carol = generated(fixtures, Identity.user("carol"))
    assert carol[0]["rules"] == [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]
    assert carol[1]["subjects"] == [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "carol"}]


def test_resources_needing_the_same_verbs_share_a_rule(make_event, write_log):
    path = write_log("audit.log", *(make_event(f"r{i}", user="ci", verb=verb, resource=resource)
                                    for i, (verb, resource) in enumerate([("get", "configmaps"), ("list", "configmaps"),
                                                                          ("get", "secrets"), ("list", "secrets"),
                                                                          ("get", "services")])))
    problems = ReadProblems()
    access = collect((r.event for r in read_events([str(path)], problems)), Identity.user("ci"))
    [role, _] = rbac_objects(access, Identity.user("ci"))
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list"]},
                             {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]


def test_yaml_is_multi_document_rbac_v1_with_a_header(fixtures):
    identity = Identity.user("kubernetes-admin")
    problems = ReadProblems()
    events = [r.event for r in requests([str(fixtures / "upstream-kube-apiserver.log")], problems)]
    access = collect(events, identity)
    text = to_yaml(rbac_objects(collect(events, Identity.user("alice")), Identity.user("alice"), "observed"),
                   collect(events, Identity.user("alice")), Identity.user("alice"))
    documents = list(yaml.safe_load_all(text))
    assert {d["apiVersion"] for d in documents} == {"rbac.authorization.k8s.io/v1"}
    assert {d["metadata"]["name"] for d in documents} == {"observed"}
    assert text.startswith("# Generated by `securekube audit rbac-gen` for alice\n# from 2 requests")
    # The impersonator's own right to impersonate is never generated, only reported.
    assert access.requests == 0 and access.impersonated == {"alice": 1}
    assert "Not generated: impersonation of 'alice'" in to_yaml([], access, identity)


@pytest.mark.parametrize("text", ["ci", "ci:", ":deployer", "ci:deployer:extra"])
def test_service_account_names_are_checked(text):
    with pytest.raises(QueryError, match="NAMESPACE:NAME"):
        Identity.service_account(text)


def test_a_service_account_user_name_is_bound_as_a_service_account():
    assert dict(Identity.user("system:serviceaccount:ci:deployer").subject) == {
        "kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}


def test_object_names_are_made_valid():
    assert valid_object_name("rbac-gen:https://idp.example/alice") == "rbac-gen:https:--idp.example-alice"
    with pytest.raises(QueryError):
        valid_object_name("..")


def test_a_request_naming_a_wildcard_never_becomes_a_wildcard_grant(make_event, write_log):
    # Requests anyone can send (and that are logged although refused): /api/v1/namespaces/team-a/*,
    # /apis/*/v1/..., and a non-resource path ending in *.
    path = write_log("audit.log", make_event("ok", user="ci", verb="get", resource="configmaps"),
                     make_event("w1", user="ci", verb="get", resource="*", code=404, decision="forbid"),
                     make_event("w2", user="ci", verb="list", resource="deployments", group="*", code=403),
                     make_event("w3", user="ci", verb="get", resource=None, extra={"requestURI": "/apis*"}))
    access = collect((r.event for r in read_events([str(path)], ReadProblems())), Identity.user("ci"))
    objects = rbac_objects(access, Identity.user("ci"))
    assert [o["kind"] for o in objects] == ["Role", "RoleBinding"]
    assert objects[0]["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    assert "Not generated: 3 requests naming '*'" in to_yaml(objects, access, Identity.user("ci"))
