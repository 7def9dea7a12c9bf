"""The kubelet's API client keeps TLS connections alive, and never at the cost of credentials or a double write."""
from __future__ import annotations

import gc
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from securekube.kubelet import apiclient
from securekube.kubelet.apiclient import ApiClient, ApiClientError, Credentials
from securekube.pki.layout import PkiPaths
from securekube.pki.layout import bootstrap as pki_bootstrap
from securekube.pki.profiles import load_profiles


class RecordingServer(ThreadingHTTPServer):
    """An HTTPS/1.1 server that answers every request with JSON and records (method, path, connection, token)."""

    daemon_threads = True

    def __init__(self, pki: PkiPaths) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.cert("apiserver"), pki.key("apiserver"))
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.requests: list[tuple[str, str, int, str]] = []
        self.lock = threading.Lock()
        # Like a server whose keep-alive timeout ran out: close after answering, without saying so.
        self.close_after_answer = False

    @property
    def connections(self) -> int:
        with self.lock:
            return len({port for _, _, port, _ in self.requests})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((self.command, self.path, self.client_address[1],
                                         self.headers.get("Authorization", "")))
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.close_after_answer:
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return pki_bootstrap(tmp_path_factory.mktemp("pki"), load_profiles())


@pytest.fixture
def server(pki: PkiPaths) -> Iterator[RecordingServer]:
    running = RecordingServer(pki)
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join(timeout=5)


def credentials(server: RecordingServer, pki: PkiPaths, token: str = "token-a") -> Credentials:
    return Credentials(server=f"https://127.0.0.1:{server.server_address[1]}",
                       ca_pem=Path(pki.cert("ca")).read_bytes(), token=token)


@pytest.fixture
def client(server: RecordingServer, pki: PkiPaths) -> Iterator[ApiClient]:
    made = ApiClient(credentials(server, pki))
    yield made
    made.close()


def test_requests_one_after_another_share_one_connection(client: ApiClient, server: RecordingServer) -> None:
    answers = [client.get(f"/api/v1/pods/p{index}") for index in range(5)]
    client.update("/api/v1/namespaces/default/pods/p0/status", {"status": {}})
    assert [answer["path"] for answer in answers] == [f"/api/v1/pods/p{index}" for index in range(5)]
    assert len(server.requests) == 6
    assert server.connections == 1


def test_new_credentials_go_out_on_a_new_connection_at_once(client: ApiClient, server: RecordingServer,
                                                            pki: PkiPaths) -> None:
    client.get("/api/v1/nodes")
    client.use(credentials(server, pki, token="token-b"))
    client.get("/api/v1/nodes")
    assert [token for _, _, _, token in server.requests] == ["Bearer token-a", "Bearer token-b"]
    assert server.connections == 2


def test_a_connection_the_server_closed_is_not_reused(client: ApiClient, server: RecordingServer) -> None:
    server.close_after_answer = True
    for index in range(3):
        assert client.get(f"/api/v1/pods/p{index}")["path"] == f"/api/v1/pods/p{index}"
    assert server.connections == 3


def test_a_connection_idle_too_long_is_not_reused(client: ApiClient, server: RecordingServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apiclient, "KEEPALIVE_IDLE_SECONDS", 0.0)
    client.get("/api/v1/nodes")
    client.get("/api/v1/nodes")
    assert server.connections == 2


def test_a_read_is_repeated_on_a_new_connection_but_a_create_is_never_sent_twice(
        client: ApiClient, server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server closes each connection after answering, and the client does not notice before it
    # sends (the race with a keep-alive timeout): a GET is safe to send again, a POST is not.
    server.close_after_answer = True
    monkeypatch.setattr(apiclient, "_closed_by_peer", lambda connection: False)
    client.get("/api/v1/nodes")
    assert client.get("/api/v1/nodes/again")["path"] == "/api/v1/nodes/again"
    client.close()  # the first create goes out on a fresh connection, the second on the kept one
    client.create("/api/v1/namespaces/default/events", {"reason": "first"})
    with pytest.raises(ApiClientError):
        client.create("/api/v1/namespaces/default/events", {"reason": "second"})
    assert [(method, path) for method, path, _, _ in server.requests] == [
        ("GET", "/api/v1/nodes"), ("GET", "/api/v1/nodes/again"), ("POST", "/api/v1/namespaces/default/events")]


def test_concurrent_requests_each_get_their_own_answer(client: ApiClient, server: RecordingServer) -> None:
    answers: dict[str, str] = {}
    lock = threading.Lock()

    def ask(worker: int) -> None:
        for index in range(5):
            path = f"/api/v1/pods/w{worker}-{index}"
            answer = client.get(path)["path"]
            with lock:
                answers[path] = answer

    threads = [threading.Thread(target=ask, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 40 and all(path == answer for path, answer in answers.items())
    assert server.connections <= 8


def test_a_client_dropped_without_close_closes_its_connections(server: RecordingServer, pki: PkiPaths) -> None:
    # An unclosed socket collected by the garbage collector would warn (an error in this suite).
    dropped = ApiClient(credentials(server, pki))
    dropped.get("/api/v1/nodes")
    del dropped
    gc.collect()
