"""pods/log in the API server: which container, which kubelet, and nothing but GET."""
from __future__ import annotations

import asyncio

import pytest

from securekube.api.errors import ApiError
from securekube.apiserver.podlogs import PodLogs, kubelet_endpoint, pick_container


def pod(*containers: str) -> dict:
    return {"metadata": {"name": "web"}, "spec": {"containers": [{"name": c} for c in containers]}}


def test_the_only_container_is_the_default() -> None:
    assert pick_container(pod("main"), "") == "main"
    assert pick_container(pod("main", "side"), "side") == "side"


@pytest.mark.parametrize(("containers", "requested", "message"), [
    (("main", "side"), "", "a container name must be specified for pod web, choose one of: [main side]"),
    (("main",), "other", "container other is not valid for pod web"),
])
def test_upstreams_errors_for_an_ambiguous_or_unknown_container(containers, requested, message) -> None:
    with pytest.raises(ApiError) as raised:
        pick_container(pod(*containers), requested)
    assert (raised.value.code, raised.value.message) == (400, message)


def test_the_kubelet_is_found_through_the_node_status() -> None:
    node = {"metadata": {"name": "node-a"}, "status": {
        "addresses": [{"type": "Hostname", "address": "node-a"}, {"type": "InternalIP", "address": "10.0.0.5"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert kubelet_endpoint(node) == ("10.0.0.5", 10250)
    with pytest.raises(ApiError) as raised:
        kubelet_endpoint({"metadata": {"name": "node-a"}, "status": {}})
    assert raised.value.code == 503


class _Registry:
    def store_for_kind(self, group: str, kind: str) -> object:
        return object()


def test_writes_to_pods_log_are_refused_and_other_requests_pass_through(tmp_path) -> None:
    passed: list[str] = []

    async def app(scope, receive, send) -> None:
        passed.append(scope["path"])

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    stage = PodLogs(app, _Registry(), tmp_path)

    def call(method: str, path: str) -> None:
        scope = {"type": "http", "method": method, "path": path, "query_string": b""}
        asyncio.run(stage(scope, None, send))

    call("GET", "/api/v1/namespaces/default/pods/web")
    call("PATCH", "/api/v1/namespaces/default/pods/web/log")
    assert passed == ["/api/v1/namespaces/default/pods/web"]
    assert sent[0]["status"] == 405


@pytest.fixture
def lab(tmp_path):
    """A PKI with the API server's kubelet client certificate, and a registry with a pod bound to node-a."""
    from securekube.pki.kubelet_certs import ensure_kubelet_client
    from securekube.pki.layout import bootstrap
    from securekube.pki.profiles import load_profiles
    from securekube.registry.registry import Registry
    from securekube.storage.sqlite import SqliteStorage
    from securekube.storage.transform.identity import IdentityTransformer

    bootstrap(tmp_path / "pki", load_profiles())
    ensure_kubelet_client(tmp_path / "pki", load_profiles())
    storage = SqliteStorage(tmp_path / "state.db")
    registry = Registry(storage, lambda resource, group: IdentityTransformer())
    registry.store_for_kind("", "Pod").create("default", {
        "metadata": {"name": "web"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "main", "image": "busybox:1"}]}})
    yield tmp_path, registry
    storage.close()


def _kubelet(tmp_path, registry, addresses: tuple[str, ...], seen: list):
    from securekube.kubelet.server import KubeletServer, KubeletServerConfig
    from securekube.pki.kubelet_certs import issue_kubelet_serving
    from securekube.pki.profiles import load_profiles

    issue_kubelet_serving(tmp_path / "pki", load_profiles(), "node-a", addresses, tmp_path / "kubelet.crt",
                          tmp_path / "kubelet.key")

    def authorize(user, groups, verb, subresource):
        seen.append((user, subresource))
        return True, ""

    server = KubeletServer(KubeletServerConfig("node-a", tmp_path / "kubelet.crt", tmp_path / "kubelet.key",
                                               tmp_path / "pki" / "ca.crt", port=0), authorize,
                           lambda ns, pod, container, tail, previous: f"{ns}/{pod}/{container}\n")
    server.start()
    nodes = registry.store_for_kind("", "Node")
    nodes.create("", {"metadata": {"name": "node-a"}})
    nodes.guaranteed_update("", "node-a", lambda n: {**n, "status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": server.port}}}}, subresource="status")
    return server


def test_logs_come_from_the_kubelet_as_the_kubelet_client_user(lab) -> None:
    tmp_path, registry = lab
    seen: list = []
    server = _kubelet(tmp_path, registry, ("127.0.0.1",), seen)
    try:
        assert PodLogs(None, registry, tmp_path / "pki").fetch("default", "web", {}) == b"default/web/main\n"
        assert seen == [("securekube-apiserver-kubelet-client", "proxy")]
    finally:
        server.stop()


def test_a_kubelet_whose_certificate_does_not_name_its_address_is_not_trusted(lab) -> None:
    tmp_path, registry = lab
    seen: list = []
    server = _kubelet(tmp_path, registry, ("10.0.0.9",), seen)
    try:
        with pytest.raises(ApiError) as raised:
            PodLogs(None, registry, tmp_path / "pki").fetch("default", "web", {})
        assert raised.value.code == 503 and "failed verification" in raised.value.message
        assert seen == []
    finally:
        server.stop()
