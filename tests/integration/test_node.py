"""A node joins `securekube up` through the TLS bootstrap and runs pods: real kubectl, real containerd → runc.

One cluster with a node for the module: the node's kubelet bootstraps with a token, gets its
certificate through a CSR the approver and signer answer, registers as Ready, and runs what
kubectl creates. Needs root, containerd, runc, busybox-static and the CNI plugins; skips without
them (fails when CI=true).
"""
from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from securekube.kubelet.cri.client import CriClient
from tests.integration.cluster import Cluster, node_cluster

pytestmark = pytest.mark.integration

NODE = "sk-test-node"
# The kubelet's own enforcement is under test here, so Pod Security admission (restricted by default)
# is relaxed for this namespace: what the node refuses must be refused by the node itself. The
# cluster's Rego policies still apply (non-root, resource limits), as pod_manifest respects.
NAMESPACE = "node-test"
BUSYBOX = "localhost/securekube/busybox:test"
NONROOT_IMAGE = "localhost/securekube/busybox:nonroot"
EPERM = "Operation not permitted"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with node_cluster(tmp_path_factory.mktemp("node"), NODE) as running:
        running.kubectl("create", "namespace", NAMESPACE)
        running.kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=privileged")
        yield running


def pod_manifest(name: str, script: str, restart: str = "Never", container_sc: dict | None = None,
                 image: str = NONROOT_IMAGE, namespace: str = NAMESPACE) -> str:
    """A pod the cluster's admission policies accept (non-root, with limits); the node judges the rest."""
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                       "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 5,
                                "securityContext": {"runAsNonRoot": True},
                                "containers": [{"name": "main", "image": image, "command": ["sh", "-c", script],
                                                "securityContext": container_sc or {},
                                                "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}}]}})


def wait_for_phase(cluster: Cluster, name: str, phase: str, timeout: str = "30s") -> None:
    cluster.kubectl("wait", "-n", NAMESPACE, f"--for=jsonpath={{.status.phase}}={phase}", f"pod/{name}",
                    f"--timeout={timeout}", timeout=60)


def pod_json(cluster: Cluster, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json").stdout)


def test_the_node_joins_through_the_tls_bootstrap_and_is_ready(cluster: Cluster) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{NODE}", "--timeout=30s")
    node = json.loads(cluster.kubectl("get", "node", NODE, "-o", "json").stdout)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    names = {name for image in node["status"]["images"] for name in image["names"]}
    assert BUSYBOX in names
    csrs = json.loads(cluster.kubectl("get", "csr", "-o", "json").stdout)["items"]
    joined = [c for c in csrs if c["spec"]["username"].startswith("system:bootstrap:")]
    assert joined and all(c["status"].get("certificate") for c in joined)
    assert joined[0]["status"]["conditions"][0]["reason"] == "AutoApproved"
    lease = json.loads(cluster.kubectl("get", "lease", NODE, "-n", "kube-node-lease", "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == NODE
    kubelet_dir = cluster.data_dir / "node" / "kubelet"
    assert (kubelet_dir / "kubeconfig").stat().st_mode & 0o777 == 0o600
    assert not (kubelet_dir / "bootstrap-kubeconfig").exists()  # the token's file goes once the node joined
    secrets = cluster.kubectl("get", "secrets", "-n", "kube-system", "-o", "name").stdout
    assert "bootstrap-token-" not in secrets  # and so does the token itself


def test_a_pod_runs_and_kubectl_logs_shows_its_output(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("hello", "echo hello from the node; sleep 300"))
    wait_for_phase(cluster, "hello", "Running")
    deadline = time.monotonic() + 10
    while "hello from the node" not in (logs := cluster.kubectl("logs", "-n", NAMESPACE, "hello").stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)
    status = pod_json(cluster, "hello")["status"]
    assert status["podIP"].startswith("10.199.") and status["hostIP"] == "127.0.0.1"
    assert status["containerStatuses"][0]["containerID"].startswith("containerd://")


def test_a_restricted_pod_runs_in_the_default_namespace_as_nobody(cluster: Cluster) -> None:
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                  "seccompProfile": {"type": "RuntimeDefault"}}
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("restricted", "id; sleep 300", restart="Always",
                                                           container_sc=restricted, namespace="default"))
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/restricted", "--timeout=30s", timeout=60)
    deadline = time.monotonic() + 10
    while "uid=65534(nobody)" not in (logs := cluster.kubectl("logs", "restricted").stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)


def test_runtime_default_makes_unshare_fail_with_eperm(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=pod_manifest(
        "unshare", "unshare -U true; echo unshare=$?", container_sc={"seccompProfile": {"type": "RuntimeDefault"}}))
    wait_for_phase(cluster, "unshare", "Succeeded")
    logs = cluster.kubectl("logs", "-n", NAMESPACE, "unshare").stdout
    assert f"unshare: unshare(0x10000000): {EPERM}" in logs and "unshare=1" in logs


def test_an_apparmor_pod_is_rejected_with_the_upstream_message(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=pod_manifest(
        "armored", "true", container_sc={"appArmorProfile": {"type": "RuntimeDefault"}}))
    wait_for_phase(cluster, "armored", "Failed")
    status = pod_json(cluster, "armored")["status"]
    assert (status["reason"], status["message"]) == (
        "AppArmor", "Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host")
    assert "AppArmor" in cluster.kubectl("get", "pod", "-n", NAMESPACE, "armored").stdout


def test_a_run_as_non_root_pod_with_a_root_image_never_starts(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("rootimage", "id", image=BUSYBOX))
    deadline = time.monotonic() + 20
    while "CreateContainerConfigError" not in (table := cluster.kubectl("get", "pod", "-n", NAMESPACE,
                                                                          "rootimage").stdout):
        assert time.monotonic() < deadline, table
        time.sleep(0.2)
    waiting = pod_json(cluster, "rootimage")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"].startswith("container has runAsNonRoot and image will run as root")


def _containers_of(cluster: Cluster, uid: str) -> list:
    with CriClient(cluster.data_dir / "node" / "containerd" / "containerd.sock") as cri:
        return cri.list_containers(labels={"io.kubernetes.pod.uid": uid})


def test_kubectl_delete_stops_the_pod_and_removes_its_containers(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=pod_manifest(
        "doomed", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done", restart="Always"))
    wait_for_phase(cluster, "doomed", "Running")
    uid = pod_json(cluster, "doomed")["metadata"]["uid"]
    assert _containers_of(cluster, uid)
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", NAMESPACE, "doomed", "--timeout=30s")
    assert time.monotonic() - started < 10  # SIGTERM honoured well inside the grace period
    assert _containers_of(cluster, uid) == []
    assert "doomed" not in cluster.kubectl("get", "pods", "-n", NAMESPACE).stdout


def _node_client(cluster: Cluster, tmp_path: Path) -> httpx.Client:
    """An HTTPS client with the node's own credentials (from its kubeconfig)."""
    user = yaml.safe_load((cluster.data_dir / "node" / "kubelet" / "kubeconfig").read_text())["users"][0]["user"]
    (tmp_path / "node.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
    (tmp_path / "node.key").write_bytes(base64.b64decode(user["client-key-data"]))
    return cluster.client(cert=(str(tmp_path / "node.crt"), str(tmp_path / "node.key")))


def test_the_node_identity_reaches_only_its_own_pods(cluster: Cluster, tmp_path: Path) -> None:
    with _node_client(cluster, tmp_path) as node:
        mine = node.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={NODE}"})
        assert mine.status_code == 200
        assert node.get("/api/v1/pods").status_code == 403
        assert node.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=other-node"}).status_code == 403
        assert node.get("/api/v1/namespaces/kube-system/secrets").status_code == 403
        csr = node.get("/apis/certificates.k8s.io/v1/certificatesigningrequests")
        assert csr.status_code == 200  # it may read CSRs (to wait for its own) ...
        name = csr.json()["items"][0]["metadata"]["name"]
        approval = node.put(f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval", json={})
        assert approval.status_code == 403  # ... but never approve one


def _kubelet_port(cluster: Cluster) -> int:
    node = json.loads(cluster.kubectl("get", "node", NODE, "-o", "json").stdout)
    return node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]


def test_the_kubelet_api_needs_a_certificate_and_authorization(cluster: Cluster, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{_kubelet_port(cluster)}/containerLogs/{NAMESPACE}/hello/main"
    anonymous = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, verify=anonymous, timeout=10)
    node_ctx = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    _node_client(cluster, tmp_path).close()
    node_ctx.load_cert_chain(str(tmp_path / "node.crt"), str(tmp_path / "node.key"))
    refused = httpx.get(url, verify=node_ctx, timeout=10)
    assert (refused.status_code, refused.text) == (
        403, f"Forbidden (user=system:node:{NODE}, verb=get, resource=nodes, subresource=proxy)")
