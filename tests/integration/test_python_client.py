"""The official Kubernetes Python client, configured from the admin kubeconfig, against `securekube up`."""
from __future__ import annotations

import threading

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture()
def core(cluster):
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def test_crud_and_watch_with_the_official_client(core):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyclient")))
    events: list[tuple[str, str]] = []
    ready = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        ready.set()
        for event in w.stream(core.list_namespaced_config_map, namespace="pyclient", timeout_seconds=10):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    ready.wait()
    core.create_namespaced_config_map("pyclient", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="conf", labels={"app": "demo"}), data={"k": "v"}))
    core.create_namespaced_secret("pyclient", client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"), string_data={"token": "t0ken"}))

    listed = core.list_namespaced_config_map("pyclient", label_selector="app=demo")
    assert [c.metadata.name for c in listed.items] == ["conf"]
    secret = core.read_namespaced_secret("creds", "pyclient")
    assert secret.data == {"token": "dDBrZW4="} and secret.type == "Opaque"

    core.patch_namespaced_config_map("conf", "pyclient", {"data": {"k": "v2"}})
    assert core.read_namespaced_config_map("conf", "pyclient").data == {"k": "v2"}
    core.delete_namespaced_config_map("conf", "pyclient")
    watcher.join(timeout=15)
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]

    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("conf", "pyclient")
    assert missing.value.status == 404
