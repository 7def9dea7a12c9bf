"""A small client for the Kubernetes REST API over TLS: JSON requests and watches, nothing more.

The kubelet (and `securekube token create`) need only a handful of calls; the standard library's
HTTPS client does them with a TLS context we build ourselves: the cluster CA as the only trust
anchor, TLS 1.2 or newer, and either a client certificate or a bearer token. A non-2xx answer
becomes `ApiStatusError` carrying the server's Status (code, reason, message). Credentials never
appear in an error, a log line or a repr.

Connections are kept alive and reused (HTTP/1.1 keep-alive, one request at a time on each), as
client-go does: a TLS handshake costs both sides several milliseconds of CPU, more than a small
request itself, and a kubelet starting a burst of pods sends several requests per pod. The server
still authenticates every request (certificate expiry and revocation are checked per request), and
`use()` retires every kept connection, so rotated credentials take effect on the next request.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import select
import socket
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

DEFAULT_TIMEOUT_SECONDS = 30.0
# A watch gets a bookmark every 10 s from our server: three silent periods mean the connection is dead.
WATCH_READ_TIMEOUT_SECONDS = 35.0
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# A kept connection is reused only while idle for less than this: well under the server's own
# keep-alive timeout (uvicorn closes idle connections after 5 s), so the server rarely closes one
# just as we reuse it.
KEEPALIVE_IDLE_SECONDS = 2.0
MAX_IDLE_CONNECTIONS = 8
# Methods a request may be repeated with on a fresh connection when a kept one turns out to be
# closed: repeating them changes nothing more than sending them once (RFC 9110 9.2.2). POST and
# PATCH are never repeated: a create or a count patch must not happen twice.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class ApiClientError(RuntimeError):
    """The API server could not be reached or answered with something that is not the API."""


class ApiStatusError(ApiClientError):
    """The API server refused a request; `code`, `reason` and `message` are its Status."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to one API server (PEM bytes; a token or a client pair)."""

    server: str
    ca_pem: bytes = field(repr=False)
    client_cert_pem: bytes = field(default=b"", repr=False)
    client_key_pem: bytes = field(default=b"", repr=False)
    token: str = field(default="", repr=False)


def _file_or_data(entry: Mapping[str, Any], key: str, base: Path) -> bytes:
    data = entry.get(f"{key}-data")
    if data:
        return base64.b64decode(data)
    path = entry.get(key)
    return (base / path).read_bytes() if path else b""


def load_kubeconfig(path: Path) -> Credentials:
    """The credentials of a kubeconfig's current context (embedded data or file references)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        contexts = {c["name"]: c["context"] for c in document["contexts"]}
        context = contexts[document["current-context"]]
        cluster = {c["name"]: c["cluster"] for c in document["clusters"]}[context["cluster"]]
        user = {u["name"]: u["user"] for u in document["users"]}[context["user"]]
        base = Path(path).parent
        return Credentials(server=cluster["server"], ca_pem=_file_or_data(cluster, "certificate-authority", base),
                           client_cert_pem=_file_or_data(user, "client-certificate", base),
                           client_key_pem=_file_or_data(user, "client-key", base),
                           token=str(user.get("token") or ""))
    except OSError as exc:
        raise ApiClientError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        # No details: the file holds credentials and parser messages quote content.
        raise ApiClientError(f"{path} is not a kubeconfig with a current context, cluster and user") from None


def tls_context(credentials: Credentials) -> ssl.SSLContext:
    """A client TLS context trusting only the cluster CA, presenting the client certificate if any."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not credentials.ca_pem:
        raise ApiClientError("the kubeconfig has no certificate authority: refusing to trust any server")
    ctx.load_verify_locations(cadata=credentials.ca_pem.decode("ascii"))
    if credentials.client_cert_pem and credentials.client_key_pem:
        # ssl loads keys only from files: a private directory, removed at once.
        with tempfile.TemporaryDirectory(prefix="securekube-client-") as directory:
            pair = Path(directory) / "client.pem"
            descriptor = os.open(pair, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(credentials.client_cert_pem + b"\n" + credentials.client_key_pem)
            try:
                ctx.load_cert_chain(str(pair))
            except ssl.SSLError:
                raise ApiClientError("the client certificate and key do not load (mismatched or malformed)") from None
    return ctx


@dataclass
class _KeptConnection:
    """A connection waiting for its next request, and since when it waits."""

    connection: http.client.HTTPSConnection
    idle_since: float


def _close_all(kept: list[_KeptConnection]) -> None:
    while kept:
        kept.pop().connection.close()


def _closed_by_peer(connection: http.client.HTTPSConnection) -> bool:
    """Whether an idle connection has something to read: the server closed it (or sent junk)."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()  # not select.select: it cannot watch descriptors above 1023
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class ApiClient:
    """JSON calls against one API server. Thread-safe; `use(credentials)` swaps them (rotation)."""

    def __init__(self, credentials: Credentials, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        parts = urlsplit(credentials.server)
        if parts.scheme != "https" or not parts.hostname:
            raise ApiClientError(f"the server must be https://HOST[:PORT], not {credentials.server!r}")
        self._host, self._port = parts.hostname, parts.port or 443
        self._timeout = timeout
        self._lock = threading.Lock()
        self._ctx, self._token = tls_context(credentials), credentials.token
        self._generation = 0  # bumped by use(): connections of older credentials are not reused
        self._kept: list[_KeptConnection] = []
        self._watches: set[http.client.HTTPSConnection] = set()
        # A client dropped without close() still closes its kept sockets (no ResourceWarning, no leak).
        self._finalizer = weakref.finalize(self, _close_all, self._kept)

    def use(self, credentials: Credentials) -> None:
        """Use new credentials for every request from now on (open watches keep theirs until they end)."""
        ctx = tls_context(credentials)
        with self._lock:
            self._ctx, self._token = ctx, credentials.token
            self._generation += 1
            retired, self._kept[:] = list(self._kept), []
        _close_all(retired)

    def close(self) -> None:
        """Closes the kept connections (the client stays usable; a new request opens a new one)."""
        with self._lock:
            retired, self._kept[:] = list(self._kept), []
        _close_all(retired)

    def close_watches(self) -> None:
        """Ends every open watch now (their generators return or raise), e.g. before the node stops."""
        with self._lock:
            open_watches = list(self._watches)
        for connection in open_watches:
            if connection.sock is not None:
                try:
                    connection.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed

    def _connection(self, timeout: float) -> tuple[http.client.HTTPSConnection, str]:
        with self._lock:
            ctx, token = self._ctx, self._token
        return http.client.HTTPSConnection(self._host, self._port, context=ctx, timeout=timeout), token

    def _checkout(self) -> tuple[http.client.HTTPSConnection, str, int, bool]:
        """A connection for one request: a kept one still fit for use, else a new one.

        Returns the connection, the token to send, the credentials' generation and whether it was kept.
        """
        now = time.monotonic()
        stale = []
        try:
            with self._lock:
                token, generation = self._token, self._generation
                while self._kept:
                    kept = self._kept.pop()  # the most recently used: the least likely to be closed
                    if now - kept.idle_since < KEEPALIVE_IDLE_SECONDS and not _closed_by_peer(kept.connection):
                        return kept.connection, token, generation, True
                    stale.append(kept.connection)
                ctx = self._ctx
        finally:
            for connection in stale:
                connection.close()
        return (http.client.HTTPSConnection(self._host, self._port, context=ctx, timeout=self._timeout),
                token, generation, False)

    def _checkin(self, connection: http.client.HTTPSConnection, generation: int) -> None:
        """Keeps a connection whose response was read in full, unless the credentials changed meanwhile."""
        with self._lock:
            if generation == self._generation and len(self._kept) < MAX_IDLE_CONNECTIONS:
                self._kept.append(_KeptConnection(connection, time.monotonic()))
                return
        connection.close()

    def _send(self, connection: http.client.HTTPSConnection, token: str, method: str, path: str,
              body: bytes | None, content_type: str, accept: str) -> http.client.HTTPResponse:
        headers = {"Accept": accept, "User-Agent": "securekube-kubelet"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, path, body=body, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ApiClientError(f"{method} {path.split('?')[0]}: cannot reach https://{self._host}:{self._port}: "
                                 f"{exc.__class__.__name__}: {exc}") from None

    def request_raw(self, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
                    content_type: str = "application/json", accept: str = "application/json") -> bytes:
        """The response body of a request; raises ApiStatusError for a non-2xx answer."""
        target = path + ("?" + urlencode(query) if query else "")
        payload = json.dumps(body).encode() if body is not None else None
        while True:
            connection, token, generation, kept = self._checkout()
            try:
                response = self._send(connection, token, method, target, payload, content_type, accept)
                data = response.read(MAX_RESPONSE_BYTES + 1)
            except (ApiClientError, OSError, http.client.HTTPException) as exc:
                connection.close()
                if kept and method in _IDEMPOTENT_METHODS:
                    continue  # the server closed the kept connection first: once more on a new one
                if isinstance(exc, ApiClientError):
                    raise
                raise ApiClientError(f"{method} {path}: connection failed: {exc.__class__.__name__}") from None
            break
        if len(data) > MAX_RESPONSE_BYTES or response.will_close:
            connection.close()
        else:
            self._checkin(connection, generation)
        if len(data) > MAX_RESPONSE_BYTES:
            raise ApiClientError(f"{method} {path}: response larger than {MAX_RESPONSE_BYTES} bytes")
        if not 200 <= response.status < 300:
            raise _status_error(response.status, data)
        return data

    def request(self, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json") -> dict:
        """A JSON request; the decoded JSON answer."""
        data = self.request_raw(method, path, query, body, content_type)
        try:
            answer = json.loads(data)
        except ValueError:
            raise ApiClientError(f"{method} {path}: the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise ApiClientError(f"{method} {path}: the answer is not a JSON object")
        return answer

    def get(self, path: str, **query: Any) -> dict:
        return self.request("GET", path, query or None)

    def create(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body=body)

    def update(self, path: str, body: dict) -> dict:
        return self.request("PUT", path, body=body)

    def merge_patch(self, path: str, patch: dict) -> dict:
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, path: str, options: dict | None = None) -> dict:
        return self.request("DELETE", path, body=options)

    def watch(self, path: str, resource_version: str, **query: Any) -> Iterator[dict]:
        """Watch events ({"type", "object"}) after `resource_version` until the server ends the stream.

        An ERROR event is raised as ApiStatusError (410: the version is too old, list again).
        """
        params = {**query, "watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
        connection, token = self._connection(WATCH_READ_TIMEOUT_SECONDS)
        with self._lock:
            self._watches.add(connection)
        try:
            response = self._send(connection, token, "GET", f"{path}?{urlencode(params)}", None, "",
                                  "application/json")
            if response.status != 200:
                raise _status_error(response.status, response.read(MAX_RESPONSE_BYTES))
            while True:
                try:
                    line = response.readline(MAX_RESPONSE_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise ApiClientError(f"watch {path}: connection lost: {exc.__class__.__name__}") from None
                if not line:
                    return
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiStatusError(int(status.get("code") or 500), str(status.get("reason") or ""),
                                         str(status.get("message") or ""))
                yield event
        finally:
            with self._lock:
                self._watches.discard(connection)
            connection.close()


def _status_error(code: int, data: bytes) -> ApiStatusError:
    try:
        status = json.loads(data)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    return ApiStatusError(code, str(status.get("reason") or http.client.responses.get(code, "")),
                          str(status.get("message") or data[:200].decode("utf-8", errors="replace")))
