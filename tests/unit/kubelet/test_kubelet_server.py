"""The kubelet API: a client certificate is required, every request is authorized, logs are served."""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from securekube.api.podlogoptions import PodLogOptions
from securekube.kubelet.pod_worker import LogUnavailable
from securekube.kubelet.server import KubeletServer, KubeletServerConfig, Logs, subresource_for
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


class Lines:
    """A log stream of fixed lines; `closed` tells that the server let it go."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.closed = threading.Event()

    def chunks(self, cancelled) -> Iterator[bytes]:
        for line in self.lines:
            yield f"{line}\n".encode()

    def close(self) -> None:
        self.closed.set()


def logs(namespace: str, pod: str, container: str, options: PodLogOptions) -> Lines:
    if pod != "web":
        raise LogUnavailable(404, f'pod "{pod}" in namespace "{namespace}" is not running on this node')
    lines = ["one", "two", "three"]
    return Lines(lines[-options.tail_lines:] if options.tail_lines else lines)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kubelet-pki")
    bootstrap(root / "pki", load_profiles())
    issue_kubelet_serving(root / "pki", load_profiles(), "node-a", ("127.0.0.1",), root / "kubelet.crt",
                          root / "kubelet.key")
    bootstrap(root / "other", load_profiles())
    return root


def serve(pki: Path, authorize: Recorder, serve_logs: Logs = logs) -> KubeletServer:
    server = KubeletServer(KubeletServerConfig("node-a", pki / "kubelet.crt", pki / "kubelet.key",
                                               pki / "pki" / "ca.crt", port=0), authorize, serve_logs)
    server.start()
    return server


def connect(server: KubeletServer, pki: Path, client: str | None = "pki/admin") -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=str(pki / "pki" / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=5)


def get(server: KubeletServer, pki: Path, path: str, client: str | None = "pki/admin") -> tuple[int, str]:
    connection = connect(server, pki, client)
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


def test_the_log_options_are_checked_as_upstream(pki: Path) -> None:
    server = serve(pki, Recorder({"securekube-admin"}))
    try:
        assert get(server, pki, "/containerLogs/default/web/main?tailLines=-1") == (
            422, 'PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0')
        assert get(server, pki, "/containerLogs/default/web/main?limitBytes=x") == (
            400, 'strconv.ParseInt: parsing "x": invalid syntax')
    finally:
        server.stop()


class Follow:
    """A followed log: a line at once, a second only once the test says, then idle until cancelled."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.cancelled = threading.Event()
        self.closed = threading.Event()

    def chunks(self, cancelled) -> Iterator[bytes]:
        yield b"first\n"
        self.release.wait(5)
        yield b"second\n"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if cancelled():
                self.cancelled.set()
                return
            time.sleep(0.01)

    def close(self) -> None:
        self.closed.set()


def test_a_followed_log_is_sent_as_it_is_written(pki: Path) -> None:
    follow = Follow()
    server = serve(pki, Recorder({"securekube-admin"}), lambda *args: follow)
    connection = connect(server, pki)
    try:
        connection.request("GET", "/containerLogs/default/web/main?follow=true")
        response = connection.getresponse()
        assert (response.status, response.getheader("Transfer-Encoding")) == (200, "chunked")
        assert response.readline() == b"first\n"  # while the stream still waits for its next line
        follow.release.set()
        assert response.readline() == b"second\n"
    finally:
        connection.close()
        server.stop()
    assert follow.cancelled.wait(5)  # the client went away: the stream noticed while idle
    assert follow.closed.wait(5)


def test_a_client_that_goes_away_mid_stream_ends_it(pki: Path) -> None:
    follow = Follow()
    follow.release.set()  # both lines at once, then the stream idles: only a closed peer can end it
    server = serve(pki, Recorder({"securekube-admin"}), lambda *args: follow)
    try:
        ctx = ssl.create_default_context(cafile=str(pki / "pki" / "ca.crt"))
        ctx.load_cert_chain(str(pki / "pki/admin.crt"), str(pki / "pki/admin.key"))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /containerLogs/default/web/main?follow=true HTTP/1.1\r\nHost: x\r\n\r\n")
                received = b""
                while b"second" not in received:
                    received += tls.recv(4096) or pytest.fail(f"the stream ended early: {received!r}")
        assert follow.cancelled.wait(5) and follow.closed.wait(5)
    finally:
        follow.release.set()
        server.stop()


def test_stopping_the_server_ends_the_streams_it_serves(pki: Path) -> None:
    follow = Follow()
    follow.release.set()
    server = serve(pki, Recorder({"securekube-admin"}), lambda *args: follow)
    connection = connect(server, pki)
    try:
        connection.request("GET", "/containerLogs/default/web/main?follow=true")
        response = connection.getresponse()
        assert response.readline() == b"first\n"
        server.stop()
        assert follow.cancelled.wait(5)
        assert response.read() == b"second\n"  # and the stream ended properly
    finally:
        connection.close()
