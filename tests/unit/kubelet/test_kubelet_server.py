"""The kubelet API: a client certificate is required, every request is authorized, logs are served."""
from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import pytest

from securekube.kubelet.pod_worker import LogUnavailable
from securekube.kubelet.server import KubeletServer, KubeletServerConfig, subresource_for
from securekube.pki.kubelet_certs import issue_kubelet_serving
from securekube.pki.layout import bootstrap
from securekube.pki.profiles import load_profiles


class Recorder:
    """Authorizes whom it is told to, and records every question."""

    def __init__(self, allow: set[str], fail: bool = False) -> None:
        self.allow, self.fail = allow, fail
        self.asked: list[tuple[str, tuple[str, ...], str, str]] = []

    def __call__(self, user: str, groups: tuple[str, ...], verb: str, subresource: str) -> tuple[bool, str]:
        self.asked.append((user, groups, verb, subresource))
        if self.fail:
            raise ValueError("the API server is unreachable")
        return user in self.allow, ""


def logs(namespace: str, pod: str, container: str, tail: int | None, previous: bool) -> str:
    if pod != "web":
        raise LogUnavailable(404, f'pod "{pod}" in namespace "{namespace}" is not running on this node')
    lines = ["one", "two", "three"]
    return "".join(f"{line}\n" for line in (lines[-tail:] if tail else lines))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kubelet-pki")
    bootstrap(root / "pki", load_profiles())
    issue_kubelet_serving(root / "pki", load_profiles(), "node-a", ("127.0.0.1",), root / "kubelet.crt",
                          root / "kubelet.key")
    bootstrap(root / "other", load_profiles())
    return root


def serve(pki: Path, authorize: Recorder) -> KubeletServer:
    server = KubeletServer(KubeletServerConfig("node-a", pki / "kubelet.crt", pki / "kubelet.key",
                                               pki / "pki" / "ca.crt", port=0), authorize, logs)
    server.start()
    return server


def get(server: KubeletServer, pki: Path, path: str, client: str | None = "pki/admin") -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(pki / "pki" / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_logs_are_served_to_an_authorized_client(pki: Path) -> None:
    authorize = Recorder({"securekube-admin"})
    server = serve(pki, authorize)
    try:
        assert get(server, pki, "/containerLogs/default/web/main?tailLines=2") == (200, "two\nthree\n")
        assert authorize.asked[-1] == ("securekube-admin", ("securekube:cluster-admins",), "get", "proxy")
        assert get(server, pki, "/containerLogs/default/db/main") == (
            404, 'pod "db" in namespace "default" is not running on this node')
    finally:
        server.stop()


def test_an_unauthorized_client_is_forbidden_with_upstreams_message(pki: Path) -> None:
    server = serve(pki, Recorder(set()))
    try:
        assert get(server, pki, "/containerLogs/default/web/main") == (
            403, "Forbidden (user=securekube-admin, verb=get, resource=nodes, subresource=proxy)")
    finally:
        server.stop()


def test_an_authorization_failure_denies(pki: Path) -> None:
    server = serve(pki, Recorder({"securekube-admin"}, fail=True))
    try:
        status, body = get(server, pki, "/containerLogs/default/web/main")
        assert (status, body) == (500, "Authorization error (user=securekube-admin, verb=get, resource=nodes, "
                                       "subresource=proxy)")
    finally:
        server.stop()


@pytest.mark.parametrize("client", [None, "other/admin"])
def test_anonymous_and_foreign_clients_do_not_get_past_the_handshake(pki: Path, client: str | None) -> None:
    authorize = Recorder({"securekube-admin"})
    server = serve(pki, authorize)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            get(server, pki, "/healthz", client=client)
        assert authorize.asked == []
    finally:
        server.stop()


def test_unknown_paths_and_writes_are_refused_after_authorization(pki: Path) -> None:
    server = serve(pki, Recorder({"securekube-admin"}))
    try:
        assert get(server, pki, "/exec/default/web/main")[0] == 404
        assert get(server, pki, "/healthz") == (200, "ok")
    finally:
        server.stop()


def test_paths_map_to_upstreams_subresources() -> None:
    assert subresource_for("/containerLogs/a/b/c") == "proxy"
    assert subresource_for("/logs/syslog") == "log"
    assert subresource_for("/stats/summary") == "stats"
    assert subresource_for("/metrics") == "metrics"
