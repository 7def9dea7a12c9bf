"""Kubeconfig loading as kubectl does it, and a small read-only HTTPS client for the API it points at.

Which files: `--kubeconfig PATH` alone if given (it must exist); else every existing file of
`KUBECONFIG` (a ':'-separated list) merged; else `~/.kube/config`. Merging follows client-go:
the first file to define a cluster, user or context name wins, and the first non-empty
current-context wins. Relative file references resolve against the file that names them.

Fail closed: a kubeconfig that would connect less safely than it claims, or in a way this
client does not implement, is refused rather than half-honoured — plain http, an
insecure-skip-tls-verify cluster, a proxy, exec/auth-provider plugins, basic auth and
impersonation settings. No error message contains key material or a token: YAML errors
report only a line and column, since a kubeconfig holds private keys.

The client uses only the standard library (http.client + ssl) so the CLI needs no extra
runtime dependency.
"""
from __future__ import annotations

import base64
import binascii
import http.client
import json
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import yaml

from securekube.authz.rbac_model import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    RBAC_API_VERSION,
    ROLE,
    ROLE_BINDING,
    go_quote,
)
from securekube.cli.errors import CliError

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_PAGE_SIZE = 500
# A page of RBAC objects is far below this; the cap keeps a misbehaving server from exhausting memory.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_PAGES = 10_000

RBAC_LISTS = (
    (CLUSTER_ROLE, "clusterroles"),
    (ROLE, "roles"),
    (CLUSTER_ROLE_BINDING, "clusterrolebindings"),
    (ROLE_BINDING, "rolebindings"),
)

# User fields this client cannot honour; using the kubeconfig without them would act as someone else.
_UNSUPPORTED_USER_FIELDS = (
    ("exec", "exec credential plugins are not supported; use a client certificate or a token"),
    ("auth-provider", "auth-provider plugins are not supported; use a client certificate or a token"),
    ("username", "basic authentication is not supported (Kubernetes removed it)"),
    ("password", "basic authentication is not supported (Kubernetes removed it)"),
    ("as", "impersonation settings are not supported"),
    ("as-uid", "impersonation settings are not supported"),
    ("as-groups", "impersonation settings are not supported"),
    ("as-user-extra", "impersonation settings are not supported"),
)


@dataclass(frozen=True)
class ClusterAccess:
    """Everything needed to talk to the cluster of one kubeconfig context, files already read.

    Key material and the token are left out of the repr so they cannot reach a log line.
    """

    context: str
    cluster: str
    user: str
    server: str  # https://host[:port][/prefix]
    namespace: str = ""  # the context's namespace, as kubectl would default to
    tls_server_name: str = ""
    ca_pem: bytes | None = None  # None: the system's trusted CAs
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------- loading


def kubeconfig_paths(explicit: str | None, environ: Mapping[str, str], home: Path) -> tuple[list[Path], str]:
    """The files to merge, highest precedence first, and a description of where they came from."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CliError(f"kubeconfig {path} does not exist or is not a file")
        return [path], str(path)
    listed = environ.get("KUBECONFIG", "")
    if listed:
        paths = list(dict.fromkeys(Path(p) for p in listed.split(os.pathsep) if p))
        # Like kubectl, names in KUBECONFIG that do not exist are skipped.
        return [p for p in paths if p.is_file()], f"KUBECONFIG={listed}"
    default = home / ".kube" / "config"
    return ([default] if default.is_file() else []), str(default)


def load_kubeconfig(
    explicit: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> ClusterAccess:
    """The cluster access of `context` (or the current context) in the kubeconfig kubectl would use."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    paths, source = kubeconfig_paths(explicit, environ, home)
    if not paths:
        raise CliError(f"no kubeconfig found ({source}); pass --kubeconfig or set KUBECONFIG")
    merged = _merge([(path, _read_document(path)) for path in paths])
    name = context or merged.current_context
    if not name:
        raise CliError(f"{source} sets no current-context; pass --context")
    if name not in merged.contexts:
        raise CliError(f"context {go_quote(name)} not found in {source}")
    ctx_path, ctx = merged.contexts[name]
    cluster_name = _string(ctx.get("cluster"), ctx_path, f"context {go_quote(name)}: cluster")
    user_name = _string(ctx.get("user"), ctx_path, f"context {go_quote(name)}: user")
    namespace = _string(ctx.get("namespace"), ctx_path, f"context {go_quote(name)}: namespace")
    if cluster_name not in merged.clusters:
        raise CliError(f"cluster {go_quote(cluster_name)} of context {go_quote(name)} not found in {source}")
    cluster_path, cluster = merged.clusters[cluster_name]
    server, tls_server_name, ca_pem = _cluster_settings(cluster_name, cluster, cluster_path)
    credentials: tuple[bytes | None, bytes | None, str | None] = (None, None, None)
    if user_name:
        if user_name not in merged.users:
            raise CliError(f"user {go_quote(user_name)} of context {go_quote(name)} not found in {source}")
        user_path, user = merged.users[user_name]
        credentials = _user_credentials(user_name, user, user_path)
    cert_pem, key_pem, token = credentials
    return ClusterAccess(
        context=name, cluster=cluster_name, user=user_name, server=server, namespace=namespace,
        tls_server_name=tls_server_name, ca_pem=ca_pem, client_cert_pem=cert_pem, client_key_pem=key_pem,
        token=token,
    )


@dataclass(frozen=True)
class _Merged:
    """Named entries with the file that defined them (relative references resolve against it)."""

    clusters: Mapping[str, tuple[Path, Mapping[str, Any]]]
    users: Mapping[str, tuple[Path, Mapping[str, Any]]]
    contexts: Mapping[str, tuple[Path, Mapping[str, Any]]]
    current_context: str


def _merge(documents: list[tuple[Path, Mapping[str, Any]]]) -> _Merged:
    tables: dict[str, dict[str, tuple[Path, Mapping[str, Any]]]] = {"clusters": {}, "users": {}, "contexts": {}}
    entry_keys = {"clusters": "cluster", "users": "user", "contexts": "context"}
    current = ""
    for path, document in documents:
        for table, entry_key in entry_keys.items():
            entries = document.get(table) or []
            if not isinstance(entries, list):
                raise CliError(f"{path}: not a valid kubeconfig: {table} must be a list")
            for index, entry in enumerate(entries):
                where = f"{table}[{index}]"
                if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"]:
                    raise CliError(f"{path}: not a valid kubeconfig: {where} has no name")
                body = entry.get(entry_key) or {}
                if not isinstance(body, Mapping):
                    raise CliError(f"{path}: not a valid kubeconfig: {where}.{entry_key} must be a mapping")
                tables[table].setdefault(entry["name"], (path, body))  # first definition wins
        if not current:
            current = _string(document.get("current-context"), path, "current-context")
    return _Merged(tables["clusters"], tables["users"], tables["contexts"], current)


def _read_document(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a kubeconfig (not UTF-8 text)") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Never the parser's message: it may quote the file, which holds keys and tokens.
        raise CliError(f"{path}: not valid YAML{_yaml_position(exc)}") from None
    if document is None:
        return {}  # an empty file is an empty config, as in kubectl
    if not isinstance(document, Mapping):
        raise CliError(f"{path}: not a kubeconfig (the document is not a mapping)")
    return document


def _yaml_position(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _cluster_settings(name: str, cluster: Mapping[str, Any], path: Path) -> tuple[str, str, bytes | None]:
    what = f"cluster {go_quote(name)}"
    if cluster.get("insecure-skip-tls-verify"):
        raise CliError(f"{path}: {what} sets insecure-skip-tls-verify; refusing to talk to a server "
                       "whose identity is not verified")
    if cluster.get("proxy-url"):
        raise CliError(f"{path}: {what} sets proxy-url, which is not supported")
    server = _string(cluster.get("server"), path, f"{what}: server")
    try:
        parts = urlsplit(server)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        raise CliError(f"{path}: {what} has an invalid server URL") from None
    if parts.username is not None or parts.password is not None:
        raise CliError(f"{path}: {what}: the server URL must not contain credentials")
    if parts.scheme != "https" or not parts.hostname or not port_ok or parts.query or parts.fragment:
        raise CliError(f"{path}: {what}: server must be an https:// URL (got {go_quote(server)}); "
                       "credentials are never sent in clear text")
    tls_server_name = _string(cluster.get("tls-server-name"), path, f"{what}: tls-server-name")
    ca_pem = _data_or_file(cluster, "certificate-authority", path, what)
    return server.rstrip("/"), tls_server_name, ca_pem


def _user_credentials(
    name: str, user: Mapping[str, Any], path: Path
) -> tuple[bytes | None, bytes | None, str | None]:
    what = f"user {go_quote(name)}"
    for key, why in _UNSUPPORTED_USER_FIELDS:
        if user.get(key):
            raise CliError(f"{path}: {what} sets {key}: {why}")
    cert_pem = _data_or_file(user, "client-certificate", path, what)
    key_pem = _data_or_file(user, "client-key", path, what)
    if (cert_pem is None) != (key_pem is None):
        raise CliError(f"{path}: {what} needs both a client certificate and its key, or neither")
    token: str | None = None
    token_file = _string(user.get("tokenFile"), path, f"{what}: tokenFile")
    if token_file:
        # client-go: a token file, when set, takes precedence over an inline token.
        token = _read_referenced(path, token_file, what, "tokenFile").decode("utf-8", "replace").strip()
        if not token:
            raise CliError(f"{path}: {what}: tokenFile {token_file} is empty")
    else:
        token = _string(user.get("token"), path, f"{what}: token") or None
    if token is not None and not (token.isascii() and token.isprintable()):
        # It goes into a header: a line break would inject another one, and headers are ASCII.
        raise CliError(f"{path}: {what}: the token is not one line of printable ASCII")
    return cert_pem, key_pem, token


def _data_or_file(section: Mapping[str, Any], key: str, path: Path, what: str) -> bytes | None:
    """`KEY-data` (base64, preferred like kubectl) or the file named by `KEY`, or None if neither is set."""
    data = _string(section.get(f"{key}-data"), path, f"{what}: {key}-data")
    if data:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise CliError(f"{path}: {what}: {key}-data is not valid base64") from None
    file_name = _string(section.get(key), path, f"{what}: {key}")
    return _read_referenced(path, file_name, what, key) if file_name else None


def _read_referenced(kubeconfig: Path, file_name: str, what: str, key: str) -> bytes:
    target = Path(file_name).expanduser()
    if not target.is_absolute():
        target = kubeconfig.parent / target
    try:
        return target.read_bytes()
    except OSError as exc:
        raise CliError(f"{kubeconfig}: {what}: cannot read {key} {target}: {exc.strerror}") from None


def _string(value: Any, path: Path, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CliError(f"{path}: not a valid kubeconfig: {what} must be a string")
    return value


# ---------------------------------------------------------------------------------- the client


class _TLSConnection(http.client.HTTPConnection):
    """An HTTP connection over TLS with an explicit server name (kubeconfig `tls-server-name`)."""

    default_port = 443

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext, server_name: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._tls_context = context
        self._server_name = server_name

    def connect(self) -> None:
        super().connect()
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


class ApiClient:
    """A read-only Kubernetes API client for one ClusterAccess: GET JSON, and lists with paging."""

    def __init__(
        self, access: ClusterAccess, timeout: float = DEFAULT_TIMEOUT_SECONDS, page_size: int = DEFAULT_PAGE_SIZE
    ) -> None:
        self._access = access
        self._timeout = timeout
        self._page_size = page_size
        parts = urlsplit(access.server)
        self._host = parts.hostname or ""
        self._port = parts.port or 443
        self._prefix = parts.path.rstrip("/")
        self._context = tls_context(access)
        self._connection: _TLSConnection | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def get_json(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET `path` (below the server URL's own path) and return the JSON object it answers with."""
        target = self._prefix + path + (f"?{urlencode(dict(query))}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": "securekube-cli"}
        if self._access.token:
            headers["Authorization"] = f"Bearer {self._access.token}"
        server = self._access.server
        try:
            response, body = self._roundtrip(target, headers)
        except ssl.SSLCertVerificationError as exc:
            raise CliError(f"cannot verify the server certificate of {server}: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            raise CliError(f"TLS with {server} failed: {exc.reason or type(exc).__name__}") from None
        except TimeoutError:
            raise CliError(f"cannot reach {server}: no answer within {self._timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise CliError(f"cannot reach {server}: {reason}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            self.close()
            raise CliError(f"{server} sent more than {MAX_RESPONSE_BYTES} bytes for {path}")
        if response.will_close:
            self.close()
        if response.status != 200:
            raise CliError(self._status_error(response.status, body))
        try:
            document = json.loads(body)
        except ValueError:
            raise CliError(f"{server} did not answer {path} with JSON") from None
        if not isinstance(document, dict):
            raise CliError(f"{server} did not answer {path} with a JSON object")
        return document

    def _roundtrip(self, target: str, headers: Mapping[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        """One GET; on any failure the connection is dropped so the next request starts clean.

        A kept-alive connection the server has meanwhile closed fails on first use; a GET is
        safe to repeat, so that case is retried once on a fresh connection.
        """
        for attempt in (1, 2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = _TLSConnection(
                    self._host, self._port, context=self._context,
                    server_name=self._access.tls_server_name or self._host, timeout=self._timeout)
            try:
                self._connection.request("GET", target, headers=dict(headers))
                response = self._connection.getresponse()
                return response, response.read(MAX_RESPONSE_BYTES + 1)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if not reused or attempt == 2:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def list_all(self, path: str) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following `continue` tokens page by page."""
        items: list[dict[str, Any]] = []
        token = ""
        for _ in range(MAX_PAGES):
            query = {"limit": str(self._page_size)}
            if token:
                query["continue"] = token
            page = self.get_json(path, query)
            page_items = page.get("items")
            if not isinstance(page_items, list) or not all(isinstance(i, dict) for i in page_items):
                raise CliError(f"{self._access.server} answered {path} with something that is not a list")
            items.extend(page_items)
            metadata = page.get("metadata")
            next_token = metadata.get("continue") if isinstance(metadata, dict) else None
            if not next_token:
                return items
            if not isinstance(next_token, str) or next_token == token:
                raise CliError(f"{self._access.server} sent an unusable continue token for {path}")
            token = next_token
        raise CliError(f"{self._access.server} kept paging {path} past {MAX_PAGES} pages")

    def _status_error(self, status: int, body: bytes) -> str:
        server, access = self._access.server, self._access
        if status == 401:
            who = f"user {go_quote(access.user)}" if access.user else "an anonymous client"
            return f"{server} did not accept the credentials of {who} (401 Unauthorized)"
        message = ""
        try:
            document = json.loads(body)
            if isinstance(document, dict) and isinstance(document.get("message"), str):
                message = document["message"]
        except ValueError:
            pass
        # The server's message is quoted so that no control character reaches the terminal.
        detail = f": {go_quote(message[:500])}" if message else ""
        return f"{server} answered {status}{detail}"


def tls_context(access: ClusterAccess) -> ssl.SSLContext:
    """A verifying client TLS context: the kubeconfig's CA (else the system's) and client certificate."""
    try:
        ca_text = access.ca_pem.decode("ascii") if access.ca_pem is not None else None
    except UnicodeDecodeError:
        raise CliError(f"the certificate authority of cluster {go_quote(access.cluster)} is not PEM") from None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_text)
    except (ssl.SSLError, ValueError):
        raise CliError(f"the certificate authority of cluster {go_quote(access.cluster)} is not a PEM "
                       "certificate") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if access.client_cert_pem is not None and access.client_key_pem is not None:
        try:
            _load_client_certificate(context, access.client_cert_pem, access.client_key_pem)
        except (ssl.SSLError, ValueError, OSError):
            raise CliError(f"the client certificate and key of user {go_quote(access.user)} cannot be used "
                           "(not PEM, encrypted, or not a matching pair)") from None
    return context


def _load_client_certificate(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Loads a certificate and key held in memory; `ssl` only reads them from a file.

    An anonymous in-memory file (memfd) keeps the private key off the disk; where that does not
    exist, a file in a fresh owner-only directory removed right after loading.
    """
    bundle = cert_pem.rstrip(b"\n") + b"\n" + key_pem
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("securekube-client", os.MFD_CLOEXEC)
        try:
            os.write(fd, bundle)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="securekube-") as directory:  # mode 0700
        path = Path(directory) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(bundle)
        context.load_cert_chain(str(path))


def list_rbac_objects(client: ApiClient) -> list[dict[str, Any]]:
    """Every ClusterRole, Role, ClusterRoleBinding and RoleBinding of the cluster, kind set on each.

    List items carry no kind of their own, so it is filled in from the list they came from.
    """
    objects = []
    for kind, plural in RBAC_LISTS:
        for item in client.list_all(f"/apis/rbac.authorization.k8s.io/v1/{plural}"):
            objects.append({**item, "kind": kind, "apiVersion": RBAC_API_VERSION})
    return objects
