"""A node pulls a pod's image from a real registry over TLS, and only from one it trusts.

Real parts: Debian's docker-registry (CNCF distribution) on loopback with a serving certificate
from a test CA, the busybox test image pushed to it through the OCI distribution API, and
`securekube up` with a node (containerd → runc). The node trusts the registry through
`securekube up --registry-ca` (containerd's certs.d/<host:port>/hosts.toml); a registry it does not trust is
never pulled from, neither over TLS with an unknown CA nor over plain HTTP.

Admission: the shipped allowed-image-registries policy admits `localhost/` and `registry.k8s.io/`
only. The test cluster adds its loopback registries through that policy's `registries` parameter
(`securekube up --admission-parameters`) rather than loosening the shipped default; the node
trusts the registries through `--registry-ca HOST=CAFILE`.

Needs root, containerd, runc, busybox-static, the CNI plugins and docker-registry; skips without
them (fails when CI=true).
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from securekube.kubelet.images import BUSYBOX_IMAGE, TEST_IMAGES, busybox_layer, oci_layout_archive
from securekube.kubelet.localnode import missing_parts
from tests.conftest import require
from tests.integration.certs import issue_server, make_ca, write_ca
from tests.integration.cluster import Cluster, free_port, node_cluster
from tests.integration.registry import REGISTRY_BINARY, Registry, image_from_layout

pytestmark = pytest.mark.integration

NODE = "sk-pull-node"
NAMESPACE = "image-pull"
REPOSITORY = "securekube/busybox"
TAG = "pulled"


@dataclass(frozen=True)
class Registries:
    """The registries of this module: trusted, one serving a certificate from another CA, one plain HTTP."""

    trusted: Registry
    other_ca: Registry
    plain_http: Registry
    trusted_ca_pem: bytes

    def all(self) -> tuple[Registry, ...]:
        return self.trusted, self.other_ca, self.plain_http


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    missing = missing_parts()
    require(not missing, "; ".join(missing))
    require(shutil.which(REGISTRY_BINARY) is not None,
            f"{REGISTRY_BINARY} is not installed (Debian package docker-registry)")
    root = tmp_path_factory.mktemp("registries")
    trusted_ca, other_ca = make_ca("registry-ca"), make_ca("another-ca")
    trusted_ca_file = write_ca(root, "registry-ca", trusted_ca)
    started: list[Registry] = []
    try:
        for name, ca in (("trusted", trusted_ca), ("other-ca", other_ca)):
            cert, key = issue_server(root, name, ca)
            started.append(Registry(root / name, free_port(), cert, key, write_ca(root, f"{name}-ca", ca)).start())
        started.append(Registry(root / "plain-http", free_port()).start())
        image = image_from_layout(oci_layout_archive(TEST_IMAGES, busybox_layer()), BUSYBOX_IMAGE)
        for registry in started:
            registry.push(REPOSITORY, TAG, image)
        yield Registries(*started, trusted_ca_pem=Path(trusted_ca_file).read_bytes())
    finally:
        for registry in started:
            registry.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, registries: Registries) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("pull")
    parameters = root / "admission-parameters.yaml"
    # The shipped default list plus this module's registries, for this cluster only.
    allowed = ["localhost/", "registry.k8s.io/", *(f"{r.host}/" for r in registries.all())]
    parameters.write_text(yaml.safe_dump({"allowed-image-registries": {"registries": allowed}}))
    ca_file = root / "trusted-ca.crt"
    ca_file.write_bytes(registries.trusted_ca_pem)
    with node_cluster(root, NODE, "--admission-parameters", str(parameters),
                      "--registry-ca", f"{registries.trusted.host}={ca_file}",
                      # Trusted with a CA that did not issue the certificate this registry serves.
                      "--registry-ca", f"{registries.other_ca.host}={ca_file}") as running:
        running.kubectl("wait", "--for=condition=Ready", f"node/{NODE}", "--timeout=30s")
        running.kubectl("create", "namespace", NAMESPACE)
        yield running


def pod_manifest(name: str, image: str) -> str:
    """A pod Pod Security `restricted` and the shipped policies admit, pulling its image every time."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"terminationGracePeriodSeconds": 5,
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{"name": "main", "image": image, "imagePullPolicy": "Always",
                                 "command": ["sh", "-c", "echo running the pulled image; sleep 3600"],
                                 "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
                                 "securityContext": {"allowPrivilegeEscalation": False,
                                                     "capabilities": {"drop": ["ALL"]}}}]}})


def image_of(registry: Registry) -> str:
    return f"{registry.host}/{REPOSITORY}:{TAG}"


def pod_events(cluster: Cluster, name: str) -> list[dict]:
    events = json.loads(cluster.kubectl("get", "events", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    return [e for e in events if e["involvedObject"].get("name") == name]


def container_state(cluster: Cluster, name: str, timeout: float = 60) -> dict:
    """The container's state once the node has decided it: running, terminated, or waiting with a reason."""
    deadline = time.monotonic() + timeout
    while True:
        pod = json.loads(cluster.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json").stdout)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        state = statuses[0]["state"] if statuses else {}
        if state and state.get("waiting", {}).get("reason") != "ContainerCreating":
            return state
        assert time.monotonic() < deadline, pod.get("status")
        time.sleep(0.5)


def pulled_by_containerd(registry: Registry) -> bool:
    """Whether containerd fetched the image's manifest from `registry` (its access log, by user agent)."""
    return any(f"/manifests/{TAG}" in line and '"containerd/' in line for line in registry.log().splitlines())


def test_a_pod_runs_an_image_pulled_from_a_trusted_registry_over_tls(cluster: Cluster,
                                                                      registries: Registries) -> None:
    assert f"node: registry {registries.trusted.host} trusted" in cluster.log()
    image = image_of(registries.trusted)
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("pulled", image))
    cluster.kubectl("wait", "-n", NAMESPACE, "--for=jsonpath={.status.phase}=Running", "pod/pulled",
                    "--timeout=60s", timeout=90)
    deadline = time.monotonic() + 10
    while "running the pulled image" not in (logs := cluster.kubectl("logs", "-n", NAMESPACE, "pulled").stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)
    reasons = [(e["reason"], e["message"]) for e in pod_events(cluster, "pulled")]
    assert ("Pulled", f'Successfully pulled image "{image}"') in reasons
    # The registry serves TLS only, so what it logged came over TLS.
    assert pulled_by_containerd(registries.trusted)


def test_a_registry_whose_certificate_is_from_another_ca_is_refused(cluster: Cluster,
                                                                   registries: Registries) -> None:
    # The node trusts a CA for this registry (--registry-ca), but not the one that issued its certificate.
    image = image_of(registries.other_ca)
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("other-ca", image))
    waiting = container_state(cluster, "other-ca").get("waiting", {})
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "x509: certificate signed by unknown authority" in waiting["message"]
    failures = [e["message"] for e in pod_events(cluster, "other-ca") if e["reason"] == "Failed"]
    assert any(m.startswith(f'Failed to pull image "{image}"') and "certificate signed by unknown authority" in m
               for m in failures), failures
    assert not pulled_by_containerd(registries.other_ca)
    assert pod_phase(cluster, "other-ca") == "Pending"


def pod_phase(cluster: Cluster, name: str) -> str:
    return cluster.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "jsonpath={.status.phase}").stdout


def test_an_unconfigured_loopback_registry_is_never_pulled_from_over_plain_http(cluster: Cluster,
                                                                                registries: Registries) -> None:
    image = image_of(registries.plain_http)
    cluster.kubectl("apply", "-f", "-", input=pod_manifest("plain-http", image))
    state = container_state(cluster, "plain-http")
    assert "waiting" in state, f"pulled over plain HTTP and started: {state}"
    waiting = state["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert f"registry {registries.plain_http.host}" in waiting["message"] and "not trusted" in waiting["message"]
    assert not pulled_by_containerd(registries.plain_http)
