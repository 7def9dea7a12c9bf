"""The Node authorizer: a kubelet reaches only its own Node and what its pods reference."""
from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from securekube.api.selectors import FieldRequirement
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.node import InvalidPod, NodeAuthorizer, node_name_of

NODE_A = UserInfo("system:node:node-a", groups=("system:nodes", "system:authenticated"))
NODE_B = UserInfo("system:node:node-b", groups=("system:nodes", "system:authenticated"))
DEV = UserInfo("dev", groups=("system:authenticated",))


def res(user, verb, resource, namespace="", group="", name="", subresource="") -> Attributes:
    return Attributes(user=user, verb=verb, resource_request=True, namespace=namespace, api_group=group,
                      api_version="v1", resource=resource, subresource=subresource, name=name)


def verdict(authorizer: NodeAuthorizer, attrs: Attributes) -> Verdict:
    return authorizer.authorize(attrs).verdict


def pod(name, node="node-a", namespace="app", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}], **spec}
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": body}


def web_pod(node="node-a") -> dict[str, Any]:
    """A pod referencing objects in every way a pod can."""
    return pod(
        "web", node,
        serviceAccountName="web-sa",
        imagePullSecrets=[{"name": "registry"}],
        initContainers=[{"name": "init", "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "init-token",
                                                                                                "key": "t"}}}]}],
        containers=[{
            "name": "c",
            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-config", "key": "a"}}},
                    {"name": "B", "value": "plain"}],
            "envFrom": [{"secretRef": {"name": "env-secrets"}}, {"configMapRef": {"name": "env-from-config"}}],
        }],
        volumes=[
            {"name": "tls", "secret": {"secretName": "web-tls"}},
            {"name": "cfg", "configMap": {"name": "web-config"}},
            {"name": "proj", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                      {"configMap": {"name": "proj-config"}},
                                                      {"serviceAccountToken": {"path": "t"}}]}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "csi", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-creds"}}},
        ],
    )


@pytest.fixture
def authorizer() -> NodeAuthorizer:
    authorizer = NodeAuthorizer()
    authorizer.apply_pod(web_pod())
    authorizer.apply_pod(pod("db", "node-b", volumes=[{"name": "s", "secret": {"secretName": "db-password"}}]))
    return authorizer


# ----------------------------------------------------------------------------- identity


def test_only_node_identities_are_decided_here(authorizer):
    assert verdict(authorizer, res(DEV, "get", "secrets", "app", name="web-tls")) is Verdict.NO_OPINION
    # The name alone, or the group alone, does not make a node.
    lookalike = UserInfo("system:node:node-a", groups=("system:authenticated",))
    assert node_name_of(lookalike) is None
    assert verdict(authorizer, res(lookalike, "get", "secrets", "app", name="web-tls")) is Verdict.NO_OPINION
    in_group = UserInfo("mallory", groups=("system:nodes",))
    assert verdict(authorizer, res(in_group, "get", "secrets", "app", name="web-tls")) is Verdict.NO_OPINION


def test_a_node_without_a_name_is_denied(authorizer):
    nameless = UserInfo("system:node:", groups=("system:nodes",))
    decision = authorizer.authorize(res(nameless, "get", "nodes", name=""))
    assert decision.verdict is Verdict.DENY
    assert decision.reason == 'unknown node for user "system:node:"'


def test_non_resource_requests_are_left_to_other_authorizers(authorizer):
    attrs = Attributes(user=NODE_A, verb="get", resource_request=False, path="/healthz")
    assert verdict(authorizer, attrs) is Verdict.NO_OPINION


# ----------------------------------------------------------------------------- referenced objects

WEB_REFERENCES = [
    ("secrets", "registry"), ("secrets", "init-token"), ("secrets", "env-secrets"), ("secrets", "web-tls"),
    ("secrets", "proj-secret"), ("secrets", "csi-creds"),
    ("configmaps", "env-config"), ("configmaps", "env-from-config"), ("configmaps", "web-config"),
    ("configmaps", "proj-config"),
    ("persistentvolumeclaims", "web-data"), ("persistentvolumeclaims", "web-scratch"),
]


@pytest.mark.parametrize("resource,name", WEB_REFERENCES)
def test_node_can_get_what_its_pods_reference(authorizer, resource, name):
    assert verdict(authorizer, res(NODE_A, "get", resource, "app", name=name)) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_B, "get", resource, "app", name=name)) is Verdict.DENY


def test_node_cannot_read_other_secrets(authorizer):
    decision = authorizer.authorize(res(NODE_A, "get", "secrets", "app", name="db-password"))
    assert decision.verdict is Verdict.DENY
    assert decision.reason == "no relationship found between node 'node-a' and this object"
    assert verdict(authorizer, res(NODE_B, "get", "secrets", "app", name="db-password")) is Verdict.ALLOW
    # Same name, other namespace: a different object.
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "other", name="web-tls")) is Verdict.DENY


def test_secrets_can_be_watched_one_by_name_but_never_listed(authorizer):
    assert verdict(authorizer, res(NODE_A, "watch", "secrets", "app", name="web-tls")) is Verdict.ALLOW
    assert authorizer.authorize(res(NODE_A, "list", "secrets", "app")).reason == "No Object name found"
    assert verdict(authorizer, res(NODE_A, "list", "secrets", "")) is Verdict.DENY
    for verb in ("update", "patch", "delete", "create"):
        decision = authorizer.authorize(res(NODE_A, verb, "secrets", "app", name="web-tls"))
        assert (decision.verdict, decision.reason) == (Verdict.DENY, "can only read resources of this type")


def test_pvcs_are_get_only(authorizer):
    assert verdict(authorizer, res(NODE_A, "watch", "persistentvolumeclaims", "app", name="web-data")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_A, "get", "persistentvolumeclaims", "app", name="web-data",
                                   subresource="status")) is Verdict.DENY


def test_service_account_tokens_only_for_pods_on_the_node(authorizer):
    assert verdict(authorizer, res(NODE_A, "create", "serviceaccounts", "app", name="web-sa",
                                   subresource="token")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_B, "create", "serviceaccounts", "app", name="web-sa",
                                   subresource="token")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_A, "get", "serviceaccounts", "app", name="web-sa")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_A, "create", "serviceaccounts", "app", name="default",
                                   subresource="token")) is Verdict.DENY


# ----------------------------------------------------------------------------- graph updates


def test_removing_a_pod_removes_the_access_it_gave(authorizer):
    authorizer.remove_pod("app", "web")
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="web-tls")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_A, "get", "pods", "app", name="web")) is Verdict.DENY
    authorizer.remove_pod("app", "web")  # a repeated delete changes nothing


def test_access_stays_while_another_pod_on_the_node_still_references_the_object(authorizer):
    authorizer.apply_pod(pod("web-2", volumes=[{"name": "tls", "secret": {"secretName": "web-tls"}}]))
    authorizer.remove_pod("app", "web")
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="web-tls")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="registry")) is Verdict.DENY


def test_updating_a_pod_replaces_its_references(authorizer):
    authorizer.apply_pod(pod("web", volumes=[{"name": "tls", "secret": {"secretName": "rotated-tls"}}]))
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="rotated-tls")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="web-tls")) is Verdict.DENY


def test_a_pod_moving_node_moves_the_access(authorizer):
    authorizer.apply_pod(web_pod(node="node-b"))
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="web-tls")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_B, "get", "secrets", "app", name="web-tls")) is Verdict.ALLOW


def test_an_unscheduled_pod_gives_no_node_access():
    authorizer = NodeAuthorizer()
    authorizer.apply_pod(pod("pending", node=None, volumes=[{"name": "s", "secret": {"secretName": "s"}}]))
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="s")) is Verdict.DENY


def test_a_pod_without_identity_is_refused_and_changes_nothing(authorizer):
    with pytest.raises(InvalidPod):
        authorizer.apply_pod({"metadata": {"name": "x"}, "spec": {"nodeName": "node-a"}})
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="web-tls")) is Verdict.ALLOW


def test_malformed_references_only_narrow_access():
    authorizer = NodeAuthorizer()
    authorizer.apply_pod(pod("odd", volumes=["not-a-volume", {"name": "s", "secret": {"secretName": 7}},
                                              {"name": "t", "secret": {"secretName": "real"}}],
                             imagePullSecrets="registry"))
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="real")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="registry")) is Verdict.DENY


def test_readers_see_a_consistent_graph_while_pods_change():
    authorizer = NodeAuthorizer()
    authorizer.apply_pod(pod("stable", volumes=[{"name": "s", "secret": {"secretName": "stable"}}]))
    stop = threading.Event()
    failures: list[str] = []

    def churn() -> None:
        for i in range(300):
            authorizer.apply_pod(pod(f"p{i % 7}", volumes=[{"name": "s", "secret": {"secretName": "stable"}}]))
            authorizer.remove_pod("app", f"p{(i + 3) % 7}")
        stop.set()

    def read() -> None:
        while not stop.is_set():
            if verdict(authorizer, res(NODE_A, "get", "secrets", "app", name="stable")) is not Verdict.ALLOW:
                failures.append("stable secret denied")
            if verdict(authorizer, res(NODE_B, "get", "secrets", "app", name="stable")) is not Verdict.DENY:
                failures.append("other node allowed")

    readers = [threading.Thread(target=read) for _ in range(3)]
    writer = threading.Thread(target=churn)
    for thread in readers + [writer]:
        thread.start()
    for thread in readers + [writer]:
        thread.join()
    assert failures == []


# ----------------------------------------------------------------------------- Node objects


def test_node_reads_and_updates_only_its_own_node(authorizer):
    assert verdict(authorizer, res(NODE_A, "get", "nodes", name="node-a")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "patch", "nodes", name="node-a", subresource="status")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "create", "nodes")) is Verdict.ALLOW
    decision = authorizer.authorize(res(NODE_A, "get", "nodes", name="node-b"))
    assert (decision.verdict, decision.reason) == (
        Verdict.DENY, "node 'node-a' cannot get 'node-b', only its own Node object")
    for verb, subresource in (("update", ""), ("patch", ""), ("update", "status"), ("delete", "")):
        assert verdict(authorizer, res(NODE_A, verb, "nodes", name="node-b", subresource=subresource)) is Verdict.DENY
    decision = authorizer.authorize(res(NODE_A, "list", "nodes"))
    assert decision.reason == "node 'node-a' cannot read all nodes, only its own Node object"
    assert verdict(authorizer, res(NODE_A, "delete", "nodes", name="node-a")) is Verdict.DENY


# ----------------------------------------------------------------------------- pods


def test_node_gets_deletes_and_updates_status_of_its_pods_only(authorizer):
    for verb, subresource in (("get", ""), ("delete", ""), ("update", "status"), ("patch", "status")):
        assert verdict(authorizer, res(NODE_A, verb, "pods", "app", name="web", subresource=subresource)) \
            is Verdict.ALLOW
        assert verdict(authorizer, res(NODE_A, verb, "pods", "app", name="db", subresource=subresource)) \
            is Verdict.DENY
    for verb, subresource in (("create", ""), ("update", ""), ("get", "exec"), ("create", "eviction")):
        assert verdict(authorizer, res(NODE_A, verb, "pods", "app", name="web", subresource=subresource)) \
            is Verdict.DENY


def test_pod_list_and_watch_need_the_node_field_selector(authorizer):
    decision = authorizer.authorize(res(NODE_A, "watch", "pods"))
    assert (decision.verdict, decision.reason) == (
        Verdict.DENY, "can only list/watch pods with spec.nodeName field selector")
    assert verdict(authorizer, res(NODE_A, "watch", "pods", "app", name="web")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "watch", "pods", "app", name="db")) is Verdict.DENY


@dataclasses.dataclass(frozen=True)
class SelectorAttributes(Attributes):
    """Attributes with the proposed field selector, as the request path would fill it."""

    field_selector: tuple[FieldRequirement, ...] = ()


def test_pod_list_scoped_to_the_node_by_field_selector_is_allowed(authorizer):
    def watch(*requirements: FieldRequirement) -> Attributes:
        return SelectorAttributes(user=NODE_A, verb="watch", resource_request=True, api_version="v1",
                                  resource="pods", field_selector=requirements)

    assert verdict(authorizer, watch(FieldRequirement("spec.nodeName", True, "node-a"))) is Verdict.ALLOW
    assert verdict(authorizer, watch(FieldRequirement("spec.nodeName", True, "node-b"))) is Verdict.DENY
    assert verdict(authorizer, watch(FieldRequirement("spec.nodeName", False, "node-a"))) is Verdict.DENY
    assert verdict(authorizer, watch(FieldRequirement("metadata.namespace", True, "node-a"))) is Verdict.DENY


# ----------------------------------------------------------------------------- everything else


def test_leases_only_its_own_in_kube_node_lease(authorizer):
    lease = "coordination.k8s.io"
    for verb in ("get", "update"):
        assert verdict(authorizer, res(NODE_A, verb, "leases", "kube-node-lease", lease, "node-a")) is Verdict.ALLOW
        assert verdict(authorizer, res(NODE_A, verb, "leases", "kube-node-lease", lease, "node-b")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_A, "create", "leases", "kube-node-lease", lease)) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "get", "leases", "kube-system", lease, "node-a")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_A, "list", "leases", "kube-node-lease", lease)) is Verdict.DENY


def test_events_and_csrs(authorizer):
    assert verdict(authorizer, res(NODE_A, "create", "events", "app")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "create", "events", "app", "events.k8s.io")) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "delete", "events", "app", name="e")) is Verdict.DENY
    csr = "certificates.k8s.io"
    assert verdict(authorizer, res(NODE_A, "create", "certificatesigningrequests", group=csr)) is Verdict.ALLOW
    assert verdict(authorizer, res(NODE_A, "update", "certificatesigningrequests", group=csr, name="c",
                                   subresource="approval")) is Verdict.DENY


def test_anything_else_is_denied(authorizer):
    decision = authorizer.authorize(res(NODE_A, "list", "services", "app"))
    assert decision.verdict is Verdict.DENY
    assert decision.reason == 'node \'node-a\' cannot list resource "services" in API group ""'
    assert verdict(authorizer, res(NODE_A, "create", "clusterrolebindings",
                                   group="rbac.authorization.k8s.io")) is Verdict.DENY
    assert verdict(authorizer, res(NODE_A, "get", "secrets", "app", "example.com", "web-tls")) is Verdict.DENY


def test_rules_review_is_incomplete_for_nodes_only(authorizer):
    assert authorizer.rule_resolution_error(NODE_A) == "node authorizer does not support user rule resolution"
    assert authorizer.rule_resolution_error(DEV) is None
