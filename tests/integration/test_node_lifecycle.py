"""A node that stops heartbeating is marked unreachable and recovers, seen through real kubectl.

No containerd needed: the test plays the kubelet as admin (a Node, its status, its Lease in
kube-node-lease) against `securekube up --node-monitor-grace-period 2`, then stops heartbeating.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest

from tests.integration.cluster import Cluster, free_port

pytestmark = pytest.mark.integration

NODE = "lab-node"
UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("lifecycle")
    running = Cluster(root / "data", free_port(), args=("--no-node", "--node-monitor-grace-period", "2")).start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def heartbeat(cluster: Cluster) -> None:
    """What a kubelet does: renew the Lease and post Ready=True with a fresh heartbeat time."""
    now = _now()
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": NODE, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40,
                      "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(lease))
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [{"type": kind, "status": status, "reason": reason, "message": "posted by the test",
                   "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                  for kind, status, reason in (("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                                               ("Ready", "True", "KubeletReady"))]
    cluster.kubectl("patch", "node", NODE, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"conditions": conditions}}))


def node(cluster: Cluster) -> dict:
    return json.loads(cluster.kubectl("get", "node", NODE, "-o", "json").stdout)


def test_a_silent_node_becomes_unknown_and_tainted_then_recovers(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}}))
    heartbeat(cluster)
    assert cluster.kubectl("get", "node", NODE).stdout.split("\n")[1].split()[1] == "Ready"

    # No more heartbeats: after the 2 s grace period the controller takes over.
    cluster.kubectl("wait", "--for=condition=Ready=Unknown", f"node/{NODE}", "--timeout=20s", timeout=30)
    marked = node(cluster)
    conditions = {c["type"]: c for c in marked["status"]["conditions"]}
    assert (conditions["Ready"]["reason"], conditions["Ready"]["message"]) == (
        "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert conditions["MemoryPressure"]["status"] == "Unknown"
    deadline = time.monotonic() + 10
    while len(marked["spec"].get("taints") or ()) < 2:  # taints follow the status write
        assert time.monotonic() < deadline, marked
        time.sleep(0.2)
        marked = node(cluster)
    assert sorted((t["key"], t["effect"]) for t in marked["spec"]["taints"]) == [
        (UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]
    assert all(t.get("timeAdded") for t in marked["spec"]["taints"])

    described = cluster.kubectl("describe", "node", NODE).stdout
    assert f"{UNREACHABLE}:NoExecute" in described and f"{UNREACHABLE}:NoSchedule" in described
    assert "Kubelet stopped posting node status." in described
    assert cluster.kubectl("get", "node", NODE).stdout.split("\n")[1].split()[1] == "NotReady"
    events = cluster.kubectl("get", "events", "-n", "default", "--field-selector", f"involvedObject.name={NODE}",
                             "-o", "json").stdout
    assert [(e["reason"], e["message"], e["source"]["component"]) for e in json.loads(events)["items"]] == [
        ("NodeNotReady", f"Node {NODE} status is now: NodeNotReady", "node-controller")]

    # The kubelet is back: lease renewed, Ready=True posted; the taints go.
    heartbeat(cluster)
    deadline = time.monotonic() + 10
    while node(cluster)["spec"].get("taints"):
        assert time.monotonic() < deadline, node(cluster)
        heartbeat(cluster)  # keep it alive while waiting, as a kubelet would
        time.sleep(0.3)
    cluster.kubectl("wait", "--for=condition=Ready=True", f"node/{NODE}", "--timeout=5s", timeout=15)
