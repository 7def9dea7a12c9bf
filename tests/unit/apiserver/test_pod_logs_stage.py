"""pods/log in the API server: which container, which kubelet, nothing but GET, and the kubelet's
answer relayed as it arrives (follow), ended with the client, given up on when the kubelet is silent."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from securekube.api.errors import ApiError
from securekube.api.podlogoptions import PodLogOptions
from securekube.apiserver.podlogs import PodLogs, PodLogsConfig, kubelet_endpoint, pick_container


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


class Lines:
    """A kubelet log stream of fixed lines."""

    def __init__(self, *lines: str) -> None:
        self.lines = lines

    def chunks(self, cancelled) -> Iterator[bytes]:
        for line in self.lines:
            yield f"{line}\n".encode()

    def close(self) -> None:
        pass


class Follow:
    """A followed log on the kubelet: a line, a second once released (or after `delay`), then idle
    until the reader is gone."""

    def __init__(self, delay: float = 5.0) -> None:
        self.delay = delay
        self.release = threading.Event()
        self.released_in_time = False
        self.cancelled = threading.Event()

    def chunks(self, cancelled) -> Iterator[bytes]:
        yield b"first\n"
        self.released_in_time = self.release.wait(self.delay)
        yield b"second\n"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not cancelled():
            time.sleep(0.01)
        self.cancelled.set()

    def close(self) -> None:
        pass


def _kubelet(tmp_path, registry, addresses: tuple[str, ...], seen: list, logs=None):
    from securekube.kubelet.server import KubeletServer, KubeletServerConfig
    from securekube.pki.kubelet_certs import issue_kubelet_serving
    from securekube.pki.profiles import load_profiles

    issue_kubelet_serving(tmp_path / "pki", load_profiles(), "node-a", addresses, tmp_path / "kubelet.crt",
                          tmp_path / "kubelet.key")

    def authorize(user, groups, verb, subresource):
        seen.append((user, subresource))
        return True, ""

    def default_logs(namespace, pod, container, options):
        seen.append(options)
        return Lines(f"{namespace}/{pod}/{container}")

    server = KubeletServer(KubeletServerConfig("node-a", tmp_path / "kubelet.crt", tmp_path / "kubelet.key",
                                               tmp_path / "pki" / "ca.crt", port=0), authorize,
                           logs or default_logs)
    server.start()
    _point_node_at(registry, server.port)
    return server


def _point_node_at(registry, port: int) -> None:
    nodes = registry.store_for_kind("", "Node")
    nodes.create("", {"metadata": {"name": "node-a"}})
    nodes.guaranteed_update("", "node-a", lambda n: {**n, "status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}, subresource="status")


class Exchange:
    """One request to the stage, driven as uvicorn drives it; records what the stage sends."""

    def __init__(self, on_body: Callable[[bytes], None] = lambda body: None) -> None:
        self.messages: list[dict] = []
        self.on_body = on_body
        self.gone = asyncio.Event()  # set: the client disconnects
        self._asked = False

    async def receive(self) -> dict:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body":
            self.on_body(message.get("body", b""))

    @property
    def status(self) -> int:
        return self.messages[0]["status"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def complete(self) -> bool:
        return self.messages[-1]["type"] == "http.response.body" and not self.messages[-1].get("more_body")

    def json(self) -> dict:
        return json.loads(self.body)


def get_log(stage: PodLogs, query: str = "", exchange: Exchange | None = None, timeout: float = 10) -> Exchange:
    exchange = exchange or Exchange()
    scope = {"type": "http", "method": "GET", "path": "/api/v1/namespaces/default/pods/web/log",
             "query_string": query.encode()}

    async def run() -> None:
        await asyncio.wait_for(stage(scope, exchange.receive, exchange.send), timeout)

    asyncio.run(run())
    return exchange


def test_logs_come_from_the_kubelet_as_the_kubelet_client_user(lab) -> None:
    tmp_path, registry = lab
    seen: list = []
    server = _kubelet(tmp_path, registry, ("127.0.0.1",), seen)
    try:
        answer = get_log(PodLogs(None, registry, tmp_path / "pki"), "timestamps=true&tailLines=3")
        assert (answer.status, answer.body, answer.complete) == (200, b"default/web/main\n", True)
        assert dict(answer.messages[0]["headers"])[b"content-type"] == b"text/plain"
        assert seen == [("securekube-apiserver-kubelet-client", "proxy"),
                        PodLogOptions(timestamps=True, tail_lines=3)]  # the options reach the kubelet
    finally:
        server.stop()


def test_a_kubelet_whose_certificate_does_not_name_its_address_is_not_trusted(lab) -> None:
    tmp_path, registry = lab
    seen: list = []
    server = _kubelet(tmp_path, registry, ("10.0.0.9",), seen)
    try:
        answer = get_log(PodLogs(None, registry, tmp_path / "pki"))
        assert answer.status == 503 and "failed verification" in answer.json()["message"]
        assert seen == []
    finally:
        server.stop()


def test_the_kubelets_refusal_reaches_the_client_with_upstreams_reason(lab) -> None:
    from securekube.kubelet.pod_worker import LogUnavailable

    tmp_path, registry = lab

    def waiting(namespace, pod, container, options):
        raise LogUnavailable(400, f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating')

    server = _kubelet(tmp_path, registry, ("127.0.0.1",), [], waiting)
    try:
        answer = get_log(PodLogs(None, registry, tmp_path / "pki"), "follow=true")
        assert (answer.status, answer.json()["reason"], answer.json()["message"]) == (
            400, "BadRequest", 'container "main" in pod "web" is waiting to start: ContainerCreating')
    finally:
        server.stop()


@pytest.mark.parametrize(("query", "code", "message"), [
    ("tailLines=-1", 422, 'PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be greater than '
                          "or equal to 0"),
    ("limitBytes=0", 422, 'PodLogOptions "web" is invalid: limitBytes: Invalid value: 0: must be greater than 0'),
    ("tailLines=ten", 400, 'strconv.ParseInt: parsing "ten": invalid syntax'),
    ("container=nope", 400, "container nope is not valid for pod web"),
])
def test_bad_options_are_refused_before_any_kubelet_is_asked(lab, query: str, code: int, message: str) -> None:
    tmp_path, registry = lab
    seen: list = []
    server = _kubelet(tmp_path, registry, ("127.0.0.1",), seen)
    try:
        answer = get_log(PodLogs(None, registry, tmp_path / "pki"), query)
        assert (answer.status, answer.json()["message"]) == (code, message)
        assert seen == []
    finally:
        server.stop()


def test_a_pod_on_no_node_yet_has_an_empty_log(lab) -> None:
    tmp_path, registry = lab
    registry.store_for_kind("", "Pod").create("default", {
        "metadata": {"name": "pending"}, "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}})
    exchange = Exchange()
    scope = {"type": "http", "method": "GET", "path": "/api/v1/namespaces/default/pods/pending/log",
             "query_string": b"follow=true"}
    asyncio.run(PodLogs(None, registry, tmp_path / "pki")(scope, exchange.receive, exchange.send))
    assert (exchange.status, exchange.body, exchange.complete) == (200, b"", True)


def test_a_followed_log_is_relayed_as_it_arrives(lab) -> None:
    tmp_path, registry = lab
    follow = Follow()
    server = _kubelet(tmp_path, registry, ("127.0.0.1",), [], lambda *args: follow)

    def on_body(body: bytes) -> None:
        if b"first" in body:
            follow.release.set()  # the kubelet writes its next line only once the first reached the client
        if b"second" in body:
            exchange.gone.set()  # then the client goes away

    exchange = Exchange(on_body)
    try:
        started = time.monotonic()
        get_log(PodLogs(None, registry, tmp_path / "pki"), "follow=true", exchange)
        assert follow.released_in_time  # nothing waited for the whole log
        assert exchange.body == b"first\nsecond\n" and not exchange.complete
        assert time.monotonic() - started < 3  # the stage ended with its client ...
        assert follow.cancelled.wait(5)  # ... and closed its kubelet connection, which the kubelet noticed
    finally:
        server.stop()


def test_an_idle_follow_is_not_timed_out(lab) -> None:
    tmp_path, registry = lab
    follow = Follow(delay=0.6)  # idle for twice the timeout below
    server = _kubelet(tmp_path, registry, ("127.0.0.1",), [], lambda *args: follow)
    exchange = Exchange(lambda body: exchange.gone.set() if b"second" in body else None)
    try:
        get_log(PodLogs(None, registry, tmp_path / "pki", PodLogsConfig(kubelet_timeout_seconds=0.3)),
                "follow=true", exchange)
        assert exchange.body == b"first\nsecond\n"
    finally:
        server.stop()


def test_a_kubelet_that_never_answers_is_given_up_on(lab) -> None:
    tmp_path, registry = lab
    with socket.socket() as silent:  # accepts connections (the kernel does), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        _point_node_at(registry, port)
        started = time.monotonic()
        answer = get_log(PodLogs(None, registry, tmp_path / "pki", PodLogsConfig(kubelet_timeout_seconds=0.3)),
                         "follow=true")
    assert time.monotonic() - started < 3
    assert (answer.status, answer.json()["message"]) == (
        503, f"the kubelet of node node-a at 127.0.0.1:{port} did not answer within 0.3 s")


def test_without_follow_at_most_max_log_bytes_are_relayed(lab) -> None:
    tmp_path, registry = lab
    server = _kubelet(tmp_path, registry, ("127.0.0.1",), [], lambda *args: Lines("0123456789", "more"))
    try:
        answer = get_log(PodLogs(None, registry, tmp_path / "pki", PodLogsConfig(max_log_bytes=4)))
        assert (answer.status, answer.body, answer.complete) == (200, b"0123", True)
    finally:
        server.stop()
