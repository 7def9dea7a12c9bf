"""`GET pods/NAME/log`: a container's output, fetched from the kubelet of the pod's node (`kubectl logs`).

A pure ASGI stage just outside the application: by the time a request gets here the chain has
authenticated it and authorized `get pods/log`. The pod names its node; the Node names its
kubelet's address (status.addresses InternalIP) and port (status.daemonEndpoints); the call to the
kubelet goes over TLS with the API server's `kubelet-client` certificate, verifying the kubelet's
serving certificate against the cluster CA and its address (no skipping verification, whatever
the request asks). The kubelet, in turn, asks the API server whether that client may read logs.
Any other request on pods/log is refused: the subresource is never a view of the stored pod.
"""
from __future__ import annotations

import http.client
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.concurrency import run_in_threadpool

from securekube.api import errors
from securekube.api.errors import ApiError
from securekube.apiserver.requestinfo import request_info
from securekube.apiserver.stages.respond import send_status
from securekube.pki.layout import PkiPaths
from securekube.registry.registry import Registry

KUBELET_TIMEOUT_SECONDS = 30.0
MAX_LOG_BYTES = 16 * 1024 * 1024
CLIENT_CERT_NAME = "kubelet-client"
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 500: "InternalError", 503: "ServiceUnavailable"}


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


class PodLogs:
    """Serves pods/log; passes every other request to `app`."""

    def __init__(self, app: Any, registry: Registry, pki_dir: Path) -> None:
        self.app = app
        self._pods = registry.store_for_kind("", "Pod")
        self._nodes = registry.store_for_kind("", "Node")
        self._pki = PkiPaths(pki_dir)

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
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        try:
            body = await run_in_threadpool(self.fetch, info.namespace, info.name, query)
        except ApiError as exc:
            await send_status(send, exc)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

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

    def fetch(self, namespace: str, name: str, query: dict[str, str]) -> bytes:
        """The log text of the pod's container, from its kubelet."""
        pod = self._pods.get(namespace, name)
        container = pick_container(pod, query.get("container", ""))
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return b""  # upstream: a pod not yet on a node has no log to show
        params = {}
        tail = query.get("tailLines", "")
        if tail:
            if not tail.isdigit():
                raise errors.bad_request(f"tailLines: Invalid value: {tail!r}: must be a non-negative integer")
            params["tailLines"] = tail
        if query.get("previous") in ("true", "1"):
            params["previous"] = "true"
        address, port = kubelet_endpoint(self._nodes.get("", node_name))
        path = "/containerLogs/" + "/".join(quote(part, safe="") for part in (namespace, name, container))
        connection = http.client.HTTPSConnection(address, port, context=self._client_context(),
                                                 timeout=KUBELET_TIMEOUT_SECONDS)
        try:
            connection.request("GET", path + ("?" + urlencode(params) if params else ""))
            response = connection.getresponse()
            body = response.read(MAX_LOG_BYTES)
        except ssl.SSLCertVerificationError as exc:
            raise errors.service_unavailable(f"the kubelet of node {node_name} at {address}:{port} failed "
                                             f"verification: {exc.verify_message}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise errors.service_unavailable(f"cannot reach the kubelet of node {node_name} at {address}:{port}: "
                                             f"{exc.__class__.__name__}") from None
        finally:
            connection.close()
        if response.status != 200:
            text = body.decode("utf-8", errors="replace").strip() or f"the kubelet answered {response.status}"
            raise ApiError(response.status, _REASONS.get(response.status, "InternalError"), text)
        return body
