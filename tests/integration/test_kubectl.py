"""The real kubectl against `securekube up`: the everyday verbs on namespaces, pods, secrets and configmaps."""
from __future__ import annotations

import base64
import json
import time

import pytest

from tests.integration.cluster import restricted_pod_yaml

pytestmark = pytest.mark.integration

POD = restricted_pod_yaml("web", "team-a")
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {mode: "%s"}
"""
SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: team-a}
stringData: {password: %s}
"""


def make_namespace(cluster, name: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")


def get_json(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_namespaces_are_created_listed_and_deleted(cluster):
    cluster.kubectl("create", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n")
    names = [n["metadata"]["name"] for n in get_json(cluster, "namespaces")["items"]]
    assert {"default", "kube-system", "scratch"} <= set(names)
    cluster.kubectl("delete", "namespace", "scratch", "--wait=true", timeout=60)
    result = cluster.kubectl("get", "namespace", "scratch", check=False)
    assert result.returncode != 0 and 'namespaces "scratch" not found' in result.stderr


def test_apply_get_label_patch_delete(cluster):
    make_namespace(cluster, "team-a")
    cluster.kubectl("apply", "-f", "-", input=POD + "---" + CONFIGMAP % "a" + "---" + SECRET % "s3cr3t-value-1")
    assert get_json(cluster, "-n", "team-a", "pod", "web")["status"]["phase"] == "Pending"

    table = cluster.kubectl("get", "-n", "team-a", "configmaps").stdout
    assert table.split()[:3] == ["NAME", "DATA", "AGE"] and "settings" in table

    # Re-apply with a change: kubectl computes a patch from last-applied-configuration.
    out = cluster.kubectl("apply", "-f", "-", input=CONFIGMAP % "b").stdout
    assert "configured" in out
    assert get_json(cluster, "-n", "team-a", "configmap", "settings")["data"] == {"mode": "b"}

    cluster.kubectl("label", "-n", "team-a", "pod", "web", "tier=frontend")
    selected = get_json(cluster, "-n", "team-a", "pods", "-l", "tier=frontend,app=web")["items"]
    assert [p["metadata"]["name"] for p in selected] == ["web"]
    assert get_json(cluster, "-n", "team-a", "pods", "-l", "tier!=frontend")["items"] == []

    cluster.kubectl("patch", "-n", "team-a", "configmap", "settings", "--type=merge", "-p", '{"data":{"extra":"1"}}')
    cluster.kubectl("patch", "-n", "team-a", "configmap", "settings", "--type=json",
                    "-p", '[{"op":"remove","path":"/data/mode"}]')
    assert get_json(cluster, "-n", "team-a", "configmap", "settings")["data"] == {"extra": "1"}
    # Strategic merge patch merges containers by name instead of replacing the list.
    cluster.kubectl("patch", "-n", "team-a", "pod", "web", "-p",
                    '{"spec":{"containers":[{"name":"app","image":"localhost/securekube/busybox:nonroot"}]}}')
    pod = get_json(cluster, "-n", "team-a", "pod", "web")
    assert pod["spec"]["containers"][0]["image"] == "localhost/securekube/busybox:nonroot"
    assert pod["spec"]["containers"][0]["command"] == ["sleep", "3600"]

    secret = get_json(cluster, "-n", "team-a", "secret", "db")
    assert secret["data"]["password"] == "czNjcjN0LXZhbHVlLTE="  # base64 of the stringData value
    assert "stringData" not in secret

    cluster.kubectl("delete", "-n", "team-a", "configmap", "settings")
    missing = cluster.kubectl("get", "-n", "team-a", "configmap", "settings", check=False)
    assert missing.returncode != 0 and 'configmaps "settings" not found' in missing.stderr


def test_field_selector_and_wide_output(cluster):
    make_namespace(cluster, "fields")
    cluster.kubectl("apply", "-f", "-", input=POD.replace("team-a", "fields"))
    pending = get_json(cluster, "-n", "fields", "pods", "--field-selector", "status.phase=Pending")["items"]
    assert [p["metadata"]["name"] for p in pending] == ["web"]
    assert get_json(cluster, "-n", "fields", "pods", "--field-selector", "status.phase=Running")["items"] == []
    wide = cluster.kubectl("get", "-n", "fields", "pods", "-o", "wide").stdout
    assert "NODE" in wide.splitlines()[0]


def test_get_watch_sees_changes(cluster):
    make_namespace(cluster, "watched")
    watcher = cluster.kubectl_background("get", "configmaps", "-n", "watched", "-w", "--output-watch-events")
    try:
        time.sleep(1.5)  # let the watch start
        cluster.kubectl("apply", "-f", "-", input=(CONFIGMAP % "1").replace("settings", "w1").replace("team-a", "watched"))
        cluster.kubectl("label", "-n", "watched", "configmap", "w1", "seen=yes")
        cluster.kubectl("delete", "-n", "watched", "configmap", "w1")
        time.sleep(2)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    events = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert events == ["ADDED", "MODIFIED", "DELETED"], out


def test_secret_plaintext_never_reaches_the_data_dir(cluster):
    plaintext = "correct-horse-battery-staple-7f3a"
    make_namespace(cluster, "vault")
    cluster.kubectl("apply", "-f", "-", input=(SECRET % plaintext).replace("team-a", "vault"))
    assert get_json(cluster, "-n", "vault", "secret", "db")["data"]["password"]
    for path in cluster.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert plaintext.encode() not in data, path
            # base64 forms too: the JSON body carries data base64-encoded.
            assert base64.b64encode(plaintext.encode()) not in data, path


def test_kubectl_create_generators_send_protobuf_and_succeed(cluster):
    """`kubectl create <kind>` uses client-go's typed clients, which send Kubernetes protobuf bodies."""
    cluster.kubectl("create", "namespace", "generated")
    cluster.kubectl("-n", "generated", "create", "configmap", "c1", "--from-literal=mode=fast")
    cluster.kubectl("-n", "generated", "create", "secret", "generic", "s1", "--from-literal=password=pb-s3cret")
    cluster.kubectl("-n", "generated", "create", "serviceaccount", "robot")
    cluster.kubectl("-n", "generated", "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    cluster.kubectl("-n", "generated", "create", "rolebinding", "read-pods", "--role=pod-reader", "--user=alice")
    assert get_json(cluster, "-n", "generated", "configmap", "c1")["data"] == {"mode": "fast"}
    assert get_json(cluster, "-n", "generated", "secret", "s1")["data"] == {"password": "cGItczNjcmV0"}
    role = get_json(cluster, "-n", "generated", "role", "pod-reader")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    binding = get_json(cluster, "-n", "generated", "rolebinding", "read-pods")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]


def test_admission_denies_with_the_policy_message_and_stores_nothing(cluster):
    make_namespace(cluster, "adm")
    latest = restricted_pod_yaml("latest", "adm", image="localhost/securekube/busybox:latest")
    denied = cluster.kubectl("apply", "-f", "-", input=latest, check=False)
    assert denied.returncode != 0 and "no-latest-tag" in denied.stderr
    unconfined = restricted_pod_yaml("plain", "adm").replace(
        "runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}", "runAsUser: 0")
    denied = cluster.kubectl("apply", "-f", "-", input=unconfined, check=False)
    assert 'violates PodSecurity "restricted:latest"' in denied.stderr
    assert cluster.kubectl("get", "pods", "-n", "adm", "-o", "name").stdout.strip() == ""
    # A namespace labelled baseline admits a pod that restricted would refuse, with a warning.
    cluster.kubectl("label", "namespace", "adm", "pod-security.kubernetes.io/enforce=baseline",
                    "pod-security.kubernetes.io/warn=restricted")
    no_seccomp = restricted_pod_yaml("baseline", "adm").replace(", seccompProfile: {type: RuntimeDefault}", "")
    admitted = cluster.kubectl("apply", "-f", "-", input=no_seccomp)
    assert 'would violate PodSecurity "restricted:latest"' in admitted.stderr
    assert cluster.kubectl("get", "pods", "-n", "adm", "-o", "name").stdout.strip() == "pod/baseline"
