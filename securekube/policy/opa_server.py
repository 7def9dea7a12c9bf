"""A small OPA server: OPA's REST API (the part the remote engine uses) over TLS, on the embedded engine.

For tests and for people who want the remote engine's set-up without an `opa` binary. The API
itself is `opa_api.py`; this module serves it over HTTPS (TLS 1.3) and authenticates clients as
`opa run` can: with client certificates signed by a CA (`--tls-ca-cert-file`; then every client
must present one, as `--authentication=tls` demands) and/or a static bearer token (what
`--authentication=token` with an authorization policy comparing `input.identity` achieves). A
refused token gets OPA's 401 body. Without either, only a loopback address may be served.

Each connection has its own thread; the TLS handshake happens there, under the idle timeout, so
a silent client cannot hold up others. Request bodies need a Content-Length and are limited in
size. Nothing a client sends (policies, inputs, tokens) is logged; request lines are logged at
debug level.

`securekube policy serve` is `add_serve_arguments` / `run_serve`.
"""
from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import signal
import socket
import socketserver
import ssl
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from securekube.policy.embedded import EmbeddedEngineConfig, EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyError
from securekube.policy.opa_api import ApiResponse, OpaApi

__all__ = ["OpaServer", "OpaServerConfig", "OpaServerError", "add_serve_arguments", "run_serve"]

log = logging.getLogger(__name__)

DEFAULT_ADDR = "127.0.0.1:8181"
# OPA's answer to a request its authentication or authorization refuses.
_UNAUTHORIZED_CODE, _UNAUTHORIZED_MESSAGE = "unauthorized", "request rejected by administrative policy"
_METHODS_WITH_BODY = ("PUT", "POST", "PATCH")
# Seconds between the serving loop's checks for a shutdown request (how long close() may take).
_SHUTDOWN_POLL_INTERVAL = 0.05


class OpaServerError(Exception):
    """The server cannot start: unreadable certificate or key, address in use, bad configuration."""


@dataclass(frozen=True)
class OpaServerConfig:
    """Where to listen, the TLS material, who may call, and the limits."""

    tls_cert_file: Path
    tls_private_key_file: Path
    tls_ca_cert_file: Path | None = None  # set: clients must present a certificate this CA signed
    host: str = "127.0.0.1"
    port: int = 8181  # 0: any free port (see OpaServer.port)
    bearer_token: str | None = field(default=None, repr=False)  # set: clients must send it
    eval_timeout: float = 5.0  # seconds an evaluation may run on the server
    max_body_bytes: int = 64 * 1024 * 1024  # admission inputs with referential data can be large
    idle_timeout: float = 30.0  # seconds a connection may stay silent (handshake included)
    max_connections: int = 64  # open at once (a thread each); more are closed at once
    max_concurrent_evaluations: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("the port must be between 0 and 65535")
        if self.bearer_token is not None and not (
                self.bearer_token and all(0x21 <= ord(c) <= 0x7E for c in self.bearer_token)):
            raise ValueError("the bearer token must be non-empty printable ASCII without spaces")
        for name in ("eval_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_body_bytes < 1 or self.max_connections < 1:
            raise ValueError("max_body_bytes and max_connections must be positive")
        if self.tls_ca_cert_file is None and self.bearer_token is None and not _is_loopback(self.host):
            # Whoever reaches the API can replace every policy: never offer it unauthenticated.
            raise ValueError(f"refusing to serve the policy API on {self.host or 'every address'} without "
                             "authentication: give a client CA (--tls-ca-cert-file) or a token "
                             "(--authentication-token-file), or listen on a loopback address")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_context(config: OpaServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_private_key_file)
        if config.tls_ca_cert_file is not None:
            context.load_verify_locations(cafile=config.tls_ca_cert_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except OSError as exc:  # ssl.SSLError included
        # The reason only (no such file, key does not match): never the files' contents.
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        files = ", ".join(str(f) for f in (config.tls_cert_file, config.tls_private_key_file,
                                           config.tls_ca_cert_file) if f is not None)
        raise OpaServerError(f"cannot use the TLS files ({files}): {reason}") from None
    return context


class _HTTPSServer(ThreadingHTTPServer):
    """A threading HTTP server on a TLS listening socket whose handshakes run in the connection threads."""

    def __init__(self, config: OpaServerConfig, api: OpaApi, context: ssl.SSLContext) -> None:
        self.config = config
        self.api = api
        self._connection_slots = threading.BoundedSemaphore(config.max_connections)
        self.address_family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        super().__init__((config.host, config.port), _Handler, bind_and_activate=False)
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's fully qualified name: a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.config.host, self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connection_slots.acquire(blocking=False):
            log.debug("connection from %s closed: %d connections open", client_address, self.config.max_connections)
            self.shutdown_request(request)  # a flood of connections must not become a flood of threads
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connection_slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        log.debug("connection from %s failed: %s", client_address, type(exc).__name__)


class _Handler(BaseHTTPRequestHandler):
    """One connection: handshake, then requests until the client or the idle timeout ends it."""

    server: _HTTPSServer
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection (one handshake)
    server_version = "securekube-opa"
    sys_version = ""
    # Buffered, so headers and body leave in one segment when the request ends: written apart,
    # Nagle's algorithm and the client's delayed ACK add 40 ms to every answer.
    wbufsize = -1

    def setup(self) -> None:
        self.timeout = self.server.config.idle_timeout
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def handle(self) -> None:
        try:
            self.connection.do_handshake()  # type: ignore[attr-defined]
        except OSError as exc:  # no, expired or foreign client certificate; not TLS at all; silence
            log.debug("TLS handshake with %s failed: %s", self.client_address, type(exc).__name__)
            return
        super().handle()

    def do_GET(self) -> None:  # noqa: N802 - the names BaseHTTPRequestHandler dispatches to
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        if not self._authorized():
            self.close_connection = True  # the body, if any, stays unread
            self._send(ApiResponse(401, {"code": _UNAUTHORIZED_CODE, "message": _UNAUTHORIZED_MESSAGE}))
            return
        body = self._read_body()
        if body is None:
            return
        self._send(self.server.api.handle(self.command, self.path, body))

    def _authorized(self) -> bool:
        token = self.server.config.bearer_token
        if token is None:
            return True
        scheme, _, presented = self.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a request whose body cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._refuse(411, "a Content-Length is required (chunked bodies are not accepted)")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if self.command in _METHODS_WITH_BODY:
                return self._refuse(411, "a Content-Length is required")
            return b""
        try:
            length = int(length_header)
        except ValueError:
            return self._refuse(400, "the Content-Length is not a number")
        if length < 0:
            return self._refuse(400, "the Content-Length is negative")
        if length > self.server.config.max_body_bytes:
            return self._refuse(413, "request body too large")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True  # what is left of the body cannot be skipped safely
        self._send(ApiResponse(status, {"code": "invalid_parameter", "message": message}))
        return None

    def _send(self, response: ApiResponse) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode() + b"\n"
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json")
        if response.status != 204:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.client_address[0], format % args)


class OpaServer:
    """The server: bound when made, serving once started, until closed.

    It owns an embedded engine (made here unless given; a given engine must be dedicated to it).
    """

    def __init__(self, config: OpaServerConfig, engine: EmbeddedOpaEngine | None = None) -> None:
        context = _tls_context(config)
        self._owns_engine = engine is None
        self._engine = engine or EmbeddedOpaEngine(
            EmbeddedEngineConfig(max_concurrent_evaluations=config.max_concurrent_evaluations))
        try:
            self._httpd = _HTTPSServer(config, OpaApi(self._engine, config.eval_timeout), context)
        except OSError as exc:
            self._close_engine()
            raise OpaServerError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        self._config = config
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._config.host
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        """Serve on a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(_SHUTDOWN_POLL_INTERVAL,),
                                            name="securekube-opa-server", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop accepting connections; requests in progress finish on their own threads."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self._close_engine()

    def _close_engine(self) -> None:
        if self._owns_engine:
            self._engine.close()

    def __enter__(self) -> OpaServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------ CLI


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `securekube policy serve` (named as `opa run --server` names them)."""
    parser.add_argument("--addr", default=DEFAULT_ADDR, metavar="HOST:PORT",
                        help=f"address to listen on (default {DEFAULT_ADDR}; port 0: any free port)")
    parser.add_argument("--tls-cert-file", required=True, type=Path, metavar="FILE",
                        help="the server's certificate (PEM)")
    parser.add_argument("--tls-private-key-file", required=True, type=Path, metavar="FILE",
                        help="the server's private key (PEM)")
    parser.add_argument("--tls-ca-cert-file", type=Path, metavar="FILE",
                        help="require client certificates signed by this CA (PEM)")
    parser.add_argument("--authentication-token-file", type=Path, metavar="FILE",
                        help="require this bearer token (the file's only line) from clients")
    parser.add_argument("--eval-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="longest evaluation the server runs (default 5)")


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 then, 1 (and one line on stderr) when it cannot start."""
    try:
        server = OpaServer(_config_from_arguments(args))
    except (ValueError, OSError, OpaServerError, PolicyError) as exc:
        print(f"securekube: error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with server:
            authentication = [name for name, on in (("client certificates", args.tls_ca_cert_file),
                                                    ("bearer token", args.authentication_token_file)) if on]
            print(f"serving OPA's REST API on {server.url} "
                  f"(authentication: {', '.join(authentication) or 'none, loopback only'})", flush=True)
            try:
                # Waits in short steps: the kernel may hand SIGTERM to another thread, and the
                # Python handler only runs once the main thread wakes up.
                while not stop.wait(_SHUTDOWN_POLL_INTERVAL * 4):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
    return 0


def _config_from_arguments(args: argparse.Namespace) -> OpaServerConfig:
    host, separator, port = str(args.addr).rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"--addr must be HOST:PORT, not {args.addr!r}")
    host = host.strip("[]")
    token = None
    if args.authentication_token_file is not None:
        try:
            token = Path(args.authentication_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {args.authentication_token_file}: "
                             f"{getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    return OpaServerConfig(tls_cert_file=args.tls_cert_file, tls_private_key_file=args.tls_private_key_file,
                           tls_ca_cert_file=args.tls_ca_cert_file, host=host, port=int(port), bearer_token=token,
                           eval_timeout=args.eval_timeout)
