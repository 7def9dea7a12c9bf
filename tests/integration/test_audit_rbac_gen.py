"""`securekube audit rbac-gen` end to end, the audit2rbac way: a new user is refused, the cluster's own
audit log records what they tried, the generated RBAC is applied with the real kubectl, and then
exactly those requests work — `kubectl auth can-i` says no to what they did not do."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from securekube.pki.kubeconfig import write_kubeconfig
from tests.integration.certs import issue_client, load_ca
from tests.integration.cluster import Cluster, kubectl_path

pytestmark = pytest.mark.integration

USER = "audit-dev"
# What the user tries, as kubectl commands, and the (verb, resource, namespace) each is audited as.
ATTEMPTS = [
    (("get", "pods", "-n", "team-a"), ("list", "pods", "team-a")),
    (("get", "configmap", "app-config", "-n", "team-a"), ("get", "configmaps", "team-a")),
    (("create", "configmap", "from-dev", "-n", "team-a", "--from-literal=k=v"), ("create", "configmaps", "team-a")),
    (("get", "namespaces"), ("list", "namespaces", "")),
]


def audit_logs(cluster: Cluster) -> list[str]:
    return [str(p) for p in sorted((cluster.data_dir / "audit").glob("audit.log*"))
            if not p.name.endswith((".lock", ".checkpoint"))]


def user_kubectl(cluster: Cluster, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([kubectl_path(), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          env=cluster.env(), timeout=60)


def recorded_attempts(cluster: Cluster) -> set[tuple[str, str, str]]:
    found = set()
    for path in audit_logs(cluster):
        for line in Path(path).read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if event.get("user", {}).get("username") == USER and event["stage"] == "ResponseComplete" and ref:
                found.add((event["verb"], ref.get("resource", ""), ref.get("namespace", "")))
    return found


@pytest.fixture(scope="module")
def dev_kubeconfig(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    for namespace in ("team-a", "team-b"):
        cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("create", "configmap", "app-config", "-n", "team-a", "--from-literal=mode=prod")
    home = tmp_path_factory.mktemp("audit-dev")
    cert, key = issue_client(home, USER, load_ca(cluster.pki), USER)
    kubeconfig = home / "kubeconfig"
    write_kubeconfig(kubeconfig, cluster_name="lab", server_url=cluster.url,
                     ca_pem=(cluster.pki / "ca.crt").read_bytes(), user_name=USER,
                     client_cert_pem=Path(cert).read_bytes(), client_key_pem=Path(key).read_bytes())
    return kubeconfig


def test_generated_rbac_allows_exactly_what_the_user_tried(cluster, dev_kubeconfig):
    for command, _ in ATTEMPTS:
        refused = user_kubectl(cluster, dev_kubeconfig, *command)
        assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
    wanted = {audited for _, audited in ATTEMPTS}
    deadline = time.monotonic() + 10
    while not wanted <= recorded_attempts(cluster) and time.monotonic() < deadline:
        time.sleep(0.1)  # reads are recorded just after their response
    assert wanted <= recorded_attempts(cluster)

    generated = subprocess.run([sys.executable, "-m", "securekube.cli.main", "audit", "rbac-gen", *audit_logs(cluster),
                                "--user", USER, "--name", "audit-dev-observed"],
                               capture_output=True, text=True, timeout=60, env=cluster.env())
    assert generated.returncode == 0, generated.stderr
    applied = cluster.kubectl("apply", "-f", "-", input=generated.stdout)
    assert "role.rbac.authorization.k8s.io/audit-dev-observed created" in applied.stdout
    assert "clusterrolebinding.rbac.authorization.k8s.io/audit-dev-observed created" in applied.stdout

    for command, _ in ATTEMPTS:  # everything that was refused now works
        result = user_kubectl(cluster, dev_kubeconfig, *command)
        assert result.returncode == 0, (command, result.stderr)

    def can_i(*question: str) -> str:
        # "yes" or "no" (kubectl may add " - <reason>" when a policy, not RBAC, says no)
        return user_kubectl(cluster, dev_kubeconfig, "auth", "can-i", *question).stdout.split(" ")[0].strip()

    assert can_i("list", "pods", "-n", "team-a") == "yes"
    assert can_i("create", "configmaps", "-n", "team-a") == "yes"
    assert can_i("list", "namespaces") == "yes"
    assert can_i("delete", "configmaps", "-n", "team-a") == "no"  # a verb not used
    assert can_i("list", "pods", "-n", "team-b") == "no"  # another namespace
    assert can_i("get", "secrets", "-n", "team-a") == "no"  # another resource
    assert can_i("create", "pods/exec", "-n", "team-a") == "no"  # a subresource
    assert can_i("delete", "namespaces") == "no"
