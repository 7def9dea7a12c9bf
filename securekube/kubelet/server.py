"""The kubelet's own API over mTLS: container logs for the API server (`kubectl logs`), nothing else.

As the CIS benchmark asks of a kubelet (4.2.1-4.2.4): no anonymous access (a client certificate
from the cluster CA is required by the TLS handshake itself), every request authorized by the API
server through a SubjectAccessReview (upstream's mapping: /logs/* is nodes/log, every other path
nodes/proxy, for this node's name), no read-only port, and a serving certificate from the cluster
CA so the API server can verify whom it talks to.

Served: `GET /containerLogs/{namespace}/{pod}/{container}` and `GET /healthz`. The log takes
upstream's PodLogOptions (follow, previous, timestamps, sinceSeconds, sinceTime, tailLines,
limitBytes) and is sent as it is read, in chunks (Transfer-Encoding: chunked); with follow it goes
on while the container runs, and stops early when the client goes away or the server stops.
Each connection is a thread; the TLS handshake happens in that thread, with a timeout, so a slow
client cannot hold up the others.
"""
from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from securekube.api import podlogoptions
from securekube.api.errors import ApiError
from securekube.api.podlogoptions import PodLogOptions
from securekube.kubelet.apiclient import ApiClient, ApiClientError
from securekube.kubelet.pod_worker import LogUnavailable

log = logging.getLogger("securekube.kubelet.server")
HANDSHAKE_TIMEOUT_SECONDS = 10.0
# How long a log stream waits for a client that does not read (upstream's kubelet allows hours; a
# reader stalled this long is taken for gone, and its thread is freed).
STREAM_WRITE_TIMEOUT_SECONDS = 300.0
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
                 "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305")
_METHOD_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

# (username, groups, verb, subresource) -> (allowed, reason)
Authorize = Callable[[str, tuple[str, ...], str, str], tuple[bool, str]]


class LogStream(Protocol):
    """A container's log being served: chunks of output (ending early once `cancelled()`), then close()."""

    def chunks(self, cancelled: Callable[[], bool]) -> Iterator[bytes]: ...

    def close(self) -> None: ...


# (namespace, pod, container, options) -> the log to stream; LogUnavailable when there is none to serve
Logs = Callable[[str, str, str, PodLogOptions], LogStream]


@dataclass(frozen=True)
class KubeletServerConfig:
    """Where the kubelet API listens and the files of its TLS identity."""

    node_name: str
    cert_file: Path
    key_file: Path
    client_ca_file: Path
    host: str = "127.0.0.1"
    port: int = 10250  # 0: any free port (see KubeletServer.port)


def server_context(config: KubeletServerConfig) -> ssl.SSLContext:
    """TLS 1.2+, ECDHE+AEAD, and a client certificate from the cluster CA required: no anonymous requests."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(str(config.cert_file), str(config.key_file))
    ctx.load_verify_locations(str(config.client_ca_file))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def subresource_for(path: str) -> str:
    """Upstream kubelet's authorization subresource for a request path."""
    for prefix, subresource in (("/stats/", "stats"), ("/metrics", "metrics"), ("/logs/", "log"),
                                ("/spec/", "spec"), ("/checkpoint/", "checkpoint")):
        if path == prefix.rstrip("/") or path.startswith(prefix):
            return subresource
    return "proxy"


def sar_authorizer(client: ApiClient, node_name: str) -> Authorize:
    """Asks the API server, as this node, whether a user may `verb` nodes/<subresource> of this node."""
    def authorize(username: str, groups: tuple[str, ...], verb: str, subresource: str) -> tuple[bool, str]:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": username, "groups": list(groups),
                           "resourceAttributes": {"verb": verb, "group": "", "version": "v1", "resource": "nodes",
                                                  "subresource": subresource, "name": node_name}}}
        status = client.create(SAR_PATH, review).get("status") or {}
        return status.get("allowed") is True, str(status.get("reason") or "")
    return authorize


def peer_gone(connection: ssl.SSLSocket) -> bool:
    """Whether the client of a log stream has gone away.

    While a log streams the client only reads, so anything readable on the connection is its close
    (or bytes it should not send, which end the stream as well). A TLS record that carries no
    application data (a key update) is not a close.
    """
    try:
        readable, _, _ = select.select([connection], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    timeout = connection.gettimeout()
    connection.settimeout(0)
    try:
        connection.recv(1)
        return True
    except ssl.SSLWantReadError:
        return False
    except OSError:
        return True
    finally:
        connection.settimeout(timeout)


def identity_of(peer: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(user, groups) of a verified client certificate, mapped as the API server maps them (CN, O)."""
    names, groups = [], []
    for rdn in peer.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                names.append(value)
            elif key == "organizationName":
                groups.append(value)
    if len(names) != 1 or not names[0]:
        raise ValueError("the client certificate has no single common name")
    return names[0], tuple(groups)


class _Handler(BaseHTTPRequestHandler):
    server: _TlsServer
    protocol_version = "HTTP/1.1"
    server_version = "securekube-kubelet"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _reply(self, code: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        body = text.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, stream: LogStream, closing: threading.Event) -> None:
        """Sends a log as chunks while it is read; a failure half-way drops the connection, so that the
        client sees a cut-off stream rather than a complete-looking one."""
        connection: ssl.SSLSocket = self.connection  # type: ignore[assignment]
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Content-Type-Options", "nosniff")
            # The connection is watched for the client's close while the log streams: not reusable after.
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            connection.settimeout(STREAM_WRITE_TIMEOUT_SECONDS)
            for chunk in stream.chunks(lambda: closing.is_set() or peer_gone(connection)):
                self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:  # the client went away, or the log file could not be read
            log.info("kubelet API: log stream to %s ended early: %s", self.address_string(), exc.__class__.__name__)
        finally:
            stream.close()

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        verb = _METHOD_VERBS.get(self.command, "")
        subresource = subresource_for(path)
        try:
            user, groups = identity_of(self.connection.getpeercert() or {})  # type: ignore[attr-defined]
        except ValueError:
            self._reply(401, "Unauthorized")
            return
        where = f"user={user}, verb={verb}, resource=nodes, subresource={subresource}"
        try:
            allowed, _reason = self.server.authorize(user, groups, verb, subresource)
        except (ApiClientError, ValueError, OSError) as exc:
            log.warning("kubelet API: authorization of %s failed: %s", where, exc)
            self._reply(500, f"Authorization error ({where})")  # fail closed, as upstream
            return
        if not allowed:
            self._reply(403, f"Forbidden ({where})")
            return
        self.server.route(self, path, verb)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ctx: ssl.SSLContext, authorize: Authorize, logs: Logs) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.ctx, self.authorize, self.logs = ctx, authorize, logs
        self.closing = threading.Event()  # set on stop: log streams still running end

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs here, in the connection's own thread, never in the accept loop.
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        try:
            connection = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("kubelet API: TLS handshake with %s failed: %s", client_address[0], exc)
            request.close()
            return
        try:
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            connection.close()

    def route(self, handler: _Handler, path: str, verb: str) -> None:
        if path == "/healthz":
            handler._reply(200, "ok")
            return
        parts = [unquote(p) for p in path.split("/")]
        if len(parts) != 5 or parts[1] != "containerLogs" or not all(parts[2:]):
            handler._reply(404, f"404 page not found: {path}")
            return
        if verb != "get":
            handler._reply(405, "405 method not allowed")
            return
        namespace, pod, container = parts[2:]
        try:
            options = podlogoptions.parse(parse_qs(urlsplit(handler.path).query, keep_blank_values=True), pod)
            stream = self.logs(namespace, pod, container, options)
        except ApiError as refused:
            handler._reply(refused.code, refused.message)
            return
        except LogUnavailable as missing:
            handler._reply(missing.code, missing.message)
            return
        except OSError as exc:
            log.warning("kubelet API: the log of %s/%s/%s cannot be opened: %s", namespace, pod, container, exc)
            handler._reply(500, f'the log of container "{container}" in pod "{pod}" cannot be read')
            return
        handler._stream(stream, self.closing)


class KubeletServer:
    """The kubelet API in a background thread; `start()` binds (raises if it cannot), `stop()` closes."""

    def __init__(self, config: KubeletServerConfig, authorize: Authorize, logs: Logs) -> None:
        self._config = config
        self._authorize, self._logs = authorize, logs
        self._server: _TlsServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the kubelet API is not listening")
        return int(self._server.server_address[1])

    def start(self) -> None:
        try:
            self._server = _TlsServer((self._config.host, self._config.port), server_context(self._config),
                                      self._authorize, self._logs)
        except OSError as exc:
            raise OSError(exc.errno, f"the kubelet API cannot listen on {self._config.host}:{self._config.port}: "
                                     f"{exc.strerror}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="kubelet-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.closing.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
