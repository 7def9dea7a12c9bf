"""NodeRestriction: a kubelet writes only its own Node, its own lease and pods bound to it."""
from __future__ import annotations

from typing import Any

import pytest

from securekube.admission.interfaces import AdmissionError, AdmissionRequest
from securekube.admission.noderestriction import NodeRestriction, NodeRestrictionLookups, forbidden_node_labels
from securekube.authn.interfaces import UserInfo
from tests.unit.admission.admission_requests import pod, request

NODE_1 = UserInfo(username="system:node:node-1", groups=("system:nodes", "system:authenticated"))
NODE_UID = "6a0c4d5e-1111-4222-8333-944455556666"


def node(name: str = "node-1", labels: dict[str, str] | None = None, taints: list[Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}, "uid": NODE_UID},
            "spec": {"taints": taints or []}}


def bound(name: str = "web", node_name: str = "node-1") -> dict[str, Any]:
    return pod(name, nodeName=node_name)


def denied(stage: NodeRestriction, req: AdmissionRequest) -> str:
    with pytest.raises(AdmissionError) as error:
        stage.validate(req)
    assert (error.value.code, error.value.reason) == (403, "Forbidden")
    return error.value.message


def test_other_users_are_not_restricted() -> None:
    req = request("nodes", operation="UPDATE", obj=node("node-2"), old=node("node-2"), name="node-2", kind="Node")
    assert NodeRestriction().validate(req).object == node("node-2")


def test_a_node_may_update_only_itself() -> None:
    stage = NodeRestriction()
    mine = request("nodes", operation="UPDATE", obj=node(), old=node(), name="node-1", kind="Node", user=NODE_1)
    assert stage.validate(mine).object == node()
    other = request("nodes", operation="UPDATE", obj=node("node-2"), old=node("node-2"), name="node-2", kind="Node",
                    user=NODE_1)
    assert denied(stage, other) == 'nodes "node-2" is forbidden: node "node-1" is not allowed to modify node "node-2"'


def test_a_node_cannot_label_itself_into_restricted_domains() -> None:
    labels = {"node-restriction.kubernetes.io/trusted": "true", "kubernetes.io/hostname": "node-1",
              "example.com/rack": "r1", "node.kubernetes.io/instance-type": "lab"}
    create = request("nodes", obj=node(labels=labels), name="", kind="Node", user=NODE_1)
    assert denied(NodeRestriction(), create) == (
        'nodes is forbidden: node "node-1" is not allowed to set the following labels: '
        "node-restriction.kubernetes.io/trusted")


def test_a_node_cannot_change_kubernetes_labels_it_does_not_own() -> None:
    update = request("nodes", operation="UPDATE", obj=node(labels={"node-role.kubernetes.io/control-plane": ""}),
                     old=node(), name="node-1", kind="Node", user=NODE_1)
    assert denied(NodeRestriction(), update).endswith("is not allowed to modify labels: "
                                                      "node-role.kubernetes.io/control-plane")


def test_removing_a_restricted_label_counts_as_modifying_it() -> None:
    assert forbidden_node_labels({}, {"node-restriction.kubernetes.io/pool": "secure"}) == [
        "node-restriction.kubernetes.io/pool"]
    assert forbidden_node_labels({"topology.kubernetes.io/zone": "b", "kubelet.kubernetes.io/x": "1"}, {}) == []


def test_a_node_cannot_remove_its_taints() -> None:
    taint = [{"key": "dedicated", "value": "audit", "effect": "NoSchedule"}]
    update = request("nodes", operation="UPDATE", obj=node(), old=node(taints=taint), name="node-1", kind="Node",
                     user=NODE_1)
    assert denied(NodeRestriction(), update).endswith('node "node-1" is not allowed to modify taints')


def test_pod_status_only_for_bound_pods_and_never_labels() -> None:
    stage = NodeRestriction()
    status = request("pods", operation="UPDATE", obj=bound(), old=bound(), name="web", namespace_name="team-a",
                     kind="Pod", sub_resource="status", user=NODE_1)
    assert stage.validate(status)
    foreign = request("pods", operation="UPDATE", obj=bound(node_name="node-2"), old=bound(node_name="node-2"),
                      name="web", namespace_name="team-a", kind="Pod", sub_resource="status", user=NODE_1)
    assert denied(stage, foreign).endswith('node "node-1" can only update pod status for pods with spec.nodeName set '
                                           "to itself")
    relabel = bound()
    relabel["metadata"]["labels"] = {"app": "hijacked"}
    sneaky = request("pods", operation="UPDATE", obj=relabel, old=bound(), name="web", namespace_name="team-a",
                     kind="Pod", sub_resource="status", user=NODE_1)
    assert denied(stage, sneaky).endswith('node "node-1" cannot update labels through pod status')


def test_pod_delete_only_for_bound_pods() -> None:
    stage = NodeRestriction()
    mine = request("pods", operation="DELETE", old=bound(), name="web", namespace_name="team-a", kind="Pod",
                   user=NODE_1)
    assert stage.validate(mine)
    other = request("pods", operation="DELETE", old=bound(node_name="node-2"), name="web", namespace_name="team-a",
                    kind="Pod", user=NODE_1)
    assert denied(stage, other) == ('pods "web" is forbidden: node "node-1" can only delete pods with spec.nodeName '
                                    "set to itself")


def test_a_node_cannot_update_a_pod_or_use_other_subresources() -> None:
    stage = NodeRestriction()
    update = request("pods", operation="UPDATE", obj=bound(), old=bound(), name="web", namespace_name="team-a",
                     kind="Pod", user=NODE_1)
    assert denied(stage, update).endswith('unexpected operation "UPDATE", node "node-1" can only create and delete '
                                          "mirror pods")
    ephemeral = request("pods", operation="UPDATE", obj=bound(), old=bound(), name="web", namespace_name="team-a",
                        kind="Pod", sub_resource="ephemeralcontainers", user=NODE_1)
    assert denied(stage, ephemeral).endswith("unexpected pod subresource \"ephemeralcontainers\", only 'status' and "
                                             "'eviction' are allowed")


def mirror(**changes: Any) -> dict[str, Any]:
    obj = bound("static-web")
    obj["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    obj["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": NODE_UID,
                                           "controller": True}]
    obj["spec"].update(changes)
    return obj


def test_mirror_pods_bound_to_and_owned_by_the_node_are_allowed() -> None:
    stage = NodeRestriction(NodeRestrictionLookups(get_node=lambda name: node(name)))
    create = request("pods", obj=mirror(), namespace_name="team-a", kind="Pod", user=NODE_1)
    assert stage.validate(create)


@pytest.mark.parametrize(("obj", "message"), [
    (bound(), 'pod does not have "kubernetes.io/config.mirror" annotation, node "node-1" can only create mirror pods'),
    (mirror(nodeName="node-2"), 'node "node-1" can only create pods with spec.nodeName set to itself'),
    (mirror(serviceAccountName="admin"), 'node "node-1" can not create pods that reference a service account'),
    (mirror(volumes=[{"name": "s", "secret": {"secretName": "db"}}]),
     'node "node-1" can not create pods that reference secrets'),
    (mirror(containers=[{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}]),
     'node "node-1" can not create pods that reference configmaps'),
])
def test_mirror_pods_may_not_reach_other_objects(obj: dict[str, Any], message: str) -> None:
    stage = NodeRestriction(NodeRestrictionLookups(get_node=lambda name: node(name)))
    assert denied(stage, request("pods", obj=obj, namespace_name="team-a", kind="Pod", user=NODE_1)).endswith(message)


def test_a_mirror_pod_owned_by_another_node_uid_is_denied() -> None:
    stage = NodeRestriction(NodeRestrictionLookups(get_node=lambda name: {**node(name), "metadata": {"uid": "other"}}))
    assert "UID mismatch" in denied(stage, request("pods", obj=mirror(), namespace_name="team-a", kind="Pod",
                                                   user=NODE_1))


def test_evictions_need_the_pod_lookup_and_a_bound_pod() -> None:
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web", "namespace": "team-a"}}
    req = request("pods", obj=eviction, name="web", namespace_name="team-a", kind="Eviction",
                  sub_resource="eviction", user=NODE_1)
    assert "no pod lookup configured" in denied(NodeRestriction(), req)
    stage = NodeRestriction(NodeRestrictionLookups(get_pod=lambda ns, name: bound(name, node_name="node-2")))
    assert denied(stage, req).endswith("node node-1 can only evict pods with spec.nodeName set to itself")


def test_leases_only_its_own_in_kube_node_lease() -> None:
    stage = NodeRestriction()
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-1"}}
    assert stage.validate(request("leases", group="coordination.k8s.io", kind="Lease", obj=lease,
                                  namespace_name="kube-node-lease", user=NODE_1))
    other = request("leases", group="coordination.k8s.io", kind="Lease", operation="UPDATE", obj=lease, old=lease,
                    name="node-2", namespace_name="kube-node-lease", user=NODE_1)
    assert denied(stage, other).endswith("can only access node lease with the same name as the requesting node")
    elsewhere = request("leases", group="coordination.k8s.io", kind="Lease", obj=lease, namespace_name="kube-system",
                        user=NODE_1)
    assert denied(stage, elsewhere).endswith('can only access leases in the "kube-node-lease" system namespace')


def test_service_account_tokens_only_for_pods_on_the_node() -> None:
    token = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid"}}}
    running_here = {**bound(), "metadata": {"name": "web", "namespace": "team-a", "uid": "pod-uid"}}
    stage = NodeRestriction(NodeRestrictionLookups(get_pod=lambda ns, name: running_here))
    req = request("serviceaccounts", obj=token, name="default", namespace_name="team-a", kind="TokenRequest",
                  sub_resource="token", user=NODE_1)
    assert stage.validate(req)
    unbound = {**token, "spec": {}}
    assert denied(stage, request("serviceaccounts", obj=unbound, name="default", namespace_name="team-a",
                                 kind="TokenRequest", sub_resource="token", user=NODE_1)).endswith(
        "node requested token not bound to a pod")
    elsewhere = NodeRestriction(NodeRestrictionLookups(get_pod=lambda ns, name: {
        **running_here, "spec": {"nodeName": "node-2"}}))
    assert denied(elsewhere, req).endswith("node requested token bound to a pod scheduled on a different node")


def test_a_node_user_without_a_name_is_denied() -> None:
    nameless = UserInfo(username="system:node:", groups=("system:nodes",))
    req = request("nodes", operation="UPDATE", obj=node(), old=node(), name="node-1", kind="Node", user=nameless)
    assert denied(NodeRestriction(), req).endswith('could not determine node from user "system:node:"')
