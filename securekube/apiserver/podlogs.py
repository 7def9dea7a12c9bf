"""`GET pods/NAME/log`: a container's output, streamed from the kubelet of the pod's node (`kubectl logs [-f]`).

A pure ASGI stage just outside the application: by the time a request gets here the chain has
authenticated it and authorized `get pods/log`. The options (upstream's PodLogOptions) are decoded
and validated here with upstream's errors, then passed on to the kubelet. The pod names its node;
the Node names its kubelet's address (status.addresses InternalIP) and port
(status.daemonEndpoints); the call to the kubelet goes over TLS with the API server's
`kubelet-client` certificate, verifying the kubelet's serving certificate against the cluster CA
and its address (no skipping verification, whatever the request asks). The kubelet, in turn, asks
the API server whether that client may read logs.

The kubelet's answer is relayed as it arrives (chunked `text/plain`), never held whole: with
`follow` it lasts as long as the container runs, with no idle limit; without, at most
`max_log_bytes` are relayed and a kubelet that stalls is given up on. A client that goes away
closes the kubelet connection at once. A kubelet that breaks off half-way makes the response
break off too, so the client cannot take a cut-off log for a complete one.

Any other request on pods/log is refused: the subresource is never a view of the stored pod.
"""
from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import anyio
from starlette.concurrency import run_in_threadpool

from securekube.api import errors, podlogoptions
from securekube.api.errors import ApiError
from securekube.api.podlogoptions import PodLogOptions
from securekube.apiserver.kubelet_stream import KubeletStreamError, KubeletUnavailable, kubelet_get
from securekube.apiserver.requestinfo import request_info
from securekube.apiserver.stages.respond import send_status
from securekube.pki.layout import PkiPaths
from securekube.registry.registry import Registry

log = logging.getLogger("securekube.apiserver.podlogs")
KUBELET_TIMEOUT_SECONDS = 30.0
MAX_LOG_BYTES = 16 * 1024 * 1024
MAX_ERROR_BYTES = 50_000  # of a kubelet's error message (upstream reads as much)
CLIENT_CERT_NAME = "kubelet-client"
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            422: "Invalid", 500: "InternalError", 503: "ServiceUnavailable"}
_LOG_HEADERS = [(b"content-type", b"text/plain"), (b"x-content-type-options", b"nosniff")]


@dataclass(frozen=True)
class PodLogsConfig:
    """The limits of the relay to kubelets."""

    # To connect and get the status and headers; and, without follow, for each read of the body.
    kubelet_timeout_seconds: float = KUBELET_TIMEOUT_SECONDS
    # The most of a log relayed without follow (a follow ends with its container instead).
    max_log_bytes: int = MAX_LOG_BYTES


@dataclass(frozen=True)
class KubeletTarget:
    """Which kubelet to ask for a log, and how to trust it."""

    node: str
    address: str
    port: int
    path: str  # with the query
    context: ssl.SSLContext


def pick_container(pod: dict[str, Any], requested: str) -> str:
    """The container whose log is asked for, with upstream's errors for a missing or unknown one."""
    name = pod["metadata"]["name"]
    containers = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or ()]
    if requested:
        if requested not in containers:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                             f"[{' '.join(containers)}]")


def kubelet_endpoint(node: dict[str, Any]) -> tuple[str, int]:
    """(address, port) of a node's kubelet API, from its status."""
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or () if isinstance(a, dict)}
    address = addresses.get("InternalIP") or addresses.get("ExternalIP")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    if not address or not isinstance(port, int) or not 0 < port < 65536:
        raise errors.service_unavailable(f"node {node['metadata']['name']} does not report its kubelet's address")
    return address, port


async def _cancel_on_disconnect(receive: Any, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


class PodLogs:
    """Serves pods/log; passes every other request to `app`."""

    def __init__(self, app: Any, registry: Registry, pki_dir: Path, config: PodLogsConfig = PodLogsConfig()) -> None:
        self.app = app
        self._pods = registry.store_for_kind("", "Pod")
        self._nodes = registry.store_for_kind("", "Node")
        self._pki = PkiPaths(pki_dir)
        self._config = config

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = request_info(scope)
        if not (info.is_resource_request and info.api_group == "" and info.resource == "pods"
                and info.subresource == "log"):
            await self.app(scope, receive, send)
            return
        if info.verb != "get" or not info.name or not info.namespace:
            await send_status(send, errors.method_not_allowed())
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        try:
            options = podlogoptions.parse(query, info.name)
            target = await run_in_threadpool(self.locate, info.namespace, info.name, options)
        except ApiError as exc:
            await send_status(send, exc)
            return
        if target is None:  # upstream: a pod not yet on a node has no log to show
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_LOG_HEADERS, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_cancel_on_disconnect, receive, tasks.cancel_scope)
            try:
                await self._relay(target, options.follow, send)
            finally:
                tasks.cancel_scope.cancel()

    def locate(self, namespace: str, name: str, options: PodLogOptions) -> KubeletTarget | None:
        """The kubelet request for the pod's log; None if the pod is on no node yet."""
        pod = self._pods.get(namespace, name)
        container = pick_container(pod, options.container)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return None
        address, port = kubelet_endpoint(self._nodes.get("", node_name))
        path = "/containerLogs/" + "/".join(quote(part, safe="") for part in (namespace, name, container))
        query = options.kubelet_query()
        return KubeletTarget(node_name, address, port, path + ("?" + query if query else ""), self._client_context())

    def _client_context(self) -> ssl.SSLContext:
        cert, key = self._pki.cert(CLIENT_CERT_NAME), self._pki.key(CLIENT_CERT_NAME)
        if not cert.exists() or not key.exists():
            raise errors.service_unavailable("the API server has no kubelet client certificate "
                                             f"({cert.name}); it is issued when `securekube up` starts a node")
        ctx = ssl.create_default_context(cafile=str(self._pki.cert("ca")))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError):
            raise errors.service_unavailable("the kubelet client certificate does not load; retry") from None
        return ctx

    async def _relay(self, target: KubeletTarget, follow: bool, send: Any) -> None:
        timeout = self._config.kubelet_timeout_seconds
        where = f"the kubelet of node {target.node} at {target.address}:{target.port}"
        started = False
        try:
            async with kubelet_get(target.address, target.port, target.path, target.context, timeout) as answer:
                if answer.status != 200:
                    text = (await answer.read_at_most(MAX_ERROR_BYTES, timeout)).decode("utf-8", errors="replace")
                    raise ApiError(answer.status, _REASONS.get(answer.status, "InternalError"),
                                   text.strip() or f"{where} answered {answer.status}")
                await send({"type": "http.response.start", "status": 200, "headers": list(_LOG_HEADERS)})
                started = True
                relayed = 0
                while follow or relayed < self._config.max_log_bytes:
                    chunk = await answer.read_chunk(None if follow else timeout)
                    if not chunk:
                        break
                    if not follow:
                        chunk = chunk[:self._config.max_log_bytes - relayed]
                    relayed += len(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except KubeletUnavailable as exc:
            await send_status(send, errors.service_unavailable(f"{where} {exc}"))
        except ApiError as exc:
            await send_status(send, exc)
        except KubeletStreamError as exc:
            if not started:
                await send_status(send, errors.service_unavailable(f"{where}: {exc}"))
                return
            # The response is left incomplete on purpose: the server drops the connection.
            log.warning("pods/log from %s: %s; the response is cut off", where, exc)
