"""What a node reports: images as upstream lists them, conditions, addresses, its Lease."""
from __future__ import annotations

import datetime as dt

from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.node_status import (NodeIdentity, conditions, images, lease_object, node_object,
                                            node_status)

IDENTITY = NodeIdentity("node-a", "127.0.0.1", 10250, {"team": "lab"})


def image(size: int, tags: list[str], digests: list[str] | None = None) -> pb.Image:
    return pb.Image(id="sha256:x", size=size, repo_tags=tags, repo_digests=digests or [])


def test_images_list_digests_then_tags_largest_first_at_most_fifty() -> None:
    listed = [image(10, ["small:1"]), image(30, ["big:1"], ["big@sha256:aa"]), image(20, [], [])]
    assert images(listed) == [{"names": ["big@sha256:aa", "big:1"], "sizeBytes": 30},
                              {"names": ["small:1"], "sizeBytes": 10}]
    assert len(images([image(i, [f"i:{i}"]) for i in range(60)])) == 50


def test_conditions_keep_their_transition_time_while_the_status_holds() -> None:
    first = conditions(now="2024-05-01T12:00:00Z")
    assert [(c["type"], c["status"], c["reason"]) for c in first] == [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"), ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"), ("Ready", "True", "KubeletReady")]
    later = conditions(first, now="2024-05-01T12:05:00Z")
    ready = next(c for c in later if c["type"] == "Ready")
    assert (ready["lastHeartbeatTime"], ready["lastTransitionTime"]) == ("2024-05-01T12:05:00Z", "2024-05-01T12:00:00Z")


def test_the_node_object_carries_the_well_known_labels() -> None:
    labels = node_object(IDENTITY)["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-a" and labels["kubernetes.io/os"] == "linux"
    assert labels["team"] == "lab" and labels["kubernetes.io/arch"]


def test_the_status_says_where_the_kubelet_listens_and_what_runs_it() -> None:
    version = pb.VersionResponse(runtime_name="containerd", runtime_version="1.7.0")
    status = node_status(IDENTITY, version, [image(5, ["busybox:1"])])
    assert status["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"},
                                   {"type": "Hostname", "address": "node-a"}]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.7.0"
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.37.")
    assert int(status["capacity"]["cpu"]) >= 1 and status["capacity"]["memory"].endswith("Ki")
    assert status["images"] == [{"names": ["busybox:1"], "sizeBytes": 5}]


def test_the_lease_is_owned_by_the_node_and_renewed_in_micro_time() -> None:
    lease = lease_object("node-a", "uid-1", dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.timezone.utc))
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "node-a",
                                                     "uid": "uid-1"}]
    assert lease["spec"] == {"holderIdentity": "node-a", "leaseDurationSeconds": 40,
                             "renewTime": "2024-05-01T12:00:00.250000Z"}
