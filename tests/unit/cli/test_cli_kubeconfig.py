"""Kubeconfig loading as kubectl does it, its refusals, and the stdlib API client against a local HTTPS server."""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securekube.cli.errors import CliError
from securekube.cli.kubeconfig import ApiClient, ClusterAccess, list_rbac_objects, load_kubeconfig

FAKE_KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nTUFURVJJQUwtTVVTVC1OT1QtTEVBSw==\n-----END PRIVATE KEY-----\n"
SECRET_TOKEN = "token-that-must-never-be-printed"


# ----------------------------------------------------------------------------- kubeconfig files


def kubeconfig(clusters=(), users=(), contexts=(), current="") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters],
        "users": [{"name": n, "user": u} for n, u in users],
        "contexts": [{"name": n, "context": c} for n, c in contexts],
        "current-context": current,
    }


def write(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def simple(tmp_path: Path, name: str, server: str = "https://a.example:6443", user: dict | None = None,
           cluster: dict | None = None) -> Path:
    return write(tmp_path / f"{name}.yaml", kubeconfig(
        clusters=[(f"{name}-cluster", {"server": server, **(cluster or {})})],
        users=[(f"{name}-user", user if user is not None else {"token": f"{name}-token"})],
        contexts=[(name, {"cluster": f"{name}-cluster", "user": f"{name}-user", "namespace": f"{name}-ns"})],
        current=name))


def load(tmp_path: Path, explicit: Path | None = None, context: str | None = None,
         kubeconfig_env: str | None = None) -> ClusterAccess:
    environ = {} if kubeconfig_env is None else {"KUBECONFIG": kubeconfig_env}
    return load_kubeconfig(str(explicit) if explicit else None, context, environ=environ, home=tmp_path / "home")


def test_explicit_kubeconfig_wins_over_the_environment(tmp_path):
    explicit, env = simple(tmp_path, "explicit"), simple(tmp_path, "env")
    access = load(tmp_path, explicit=explicit, kubeconfig_env=str(env))
    assert (access.context, access.namespace, access.token) == ("explicit", "explicit-ns", "explicit-token")


def test_missing_explicit_kubeconfig_is_an_error(tmp_path):
    with pytest.raises(CliError, match="does not exist"):
        load(tmp_path, explicit=tmp_path / "nope.yaml", kubeconfig_env=str(simple(tmp_path, "env")))


def test_kubeconfig_env_wins_over_the_home_default(tmp_path):
    write(tmp_path / "home" / ".kube" / "config", yaml.safe_load(simple(tmp_path, "home").read_text()))
    assert load(tmp_path, kubeconfig_env=str(simple(tmp_path, "env"))).context == "env"
    assert load(tmp_path).context == "home"


def test_no_kubeconfig_anywhere_is_an_error(tmp_path):
    with pytest.raises(CliError, match="no kubeconfig found"):
        load(tmp_path)
    with pytest.raises(CliError, match="no kubeconfig found"):
        load(tmp_path, kubeconfig_env=str(tmp_path / "missing.yaml"))


def test_kubeconfig_list_merges_with_first_definition_winning(tmp_path):
    first = write(tmp_path / "first.yaml", kubeconfig(
        clusters=[("shared", {"server": "https://first.example"})],
        users=[("u", {"token": "first"})],
        contexts=[("one", {"cluster": "shared", "user": "u"})],
        current=""))
    second = write(tmp_path / "second.yaml", kubeconfig(
        clusters=[("shared", {"server": "https://second.example"}), ("only-second", {"server": "https://2.example"})],
        users=[("u", {"token": "second"})],
        contexts=[("one", {"cluster": "only-second", "user": "u"}), ("two", {"cluster": "only-second", "user": "u"})],
        current="two"))
    env = f"{tmp_path / 'missing.yaml'}:{first}::{second}"
    access = load(tmp_path, kubeconfig_env=env)
    # current-context: the first file setting one (the second); its cluster comes from the second file.
    assert (access.context, access.server, access.token) == ("two", "https://2.example", "first")
    one = load(tmp_path, kubeconfig_env=env, context="one")
    assert (one.server, one.token) == ("https://first.example", "first")  # "shared" as the first file defines it


def test_relative_files_resolve_against_the_kubeconfig_that_names_them(tmp_path):
    config_dir = tmp_path / "configs"
    (config_dir / "certs").mkdir(parents=True)
    (config_dir / "certs" / "token").write_text(f"  {SECRET_TOKEN}\n")
    (config_dir / "certs" / "ca.crt").write_bytes(b"CA-PEM")
    path = simple(config_dir, "rel", user={"tokenFile": "certs/token", "token": "inline"},
                  cluster={"certificate-authority": "certs/ca.crt"})
    access = load(tmp_path, kubeconfig_env=str(path))
    assert access.token == SECRET_TOKEN  # a token file wins over an inline token, as in client-go
    assert access.ca_pem == b"CA-PEM"


def test_inline_data_wins_over_files_and_is_base64(tmp_path):
    path = simple(tmp_path, "data", cluster={"certificate-authority": "/does/not/matter",
                                             "certificate-authority-data": base64.b64encode(b"INLINE").decode()})
    assert load(tmp_path, explicit=path).ca_pem == b"INLINE"


def test_context_selection(tmp_path):
    path = write(tmp_path / "multi.yaml", kubeconfig(
        clusters=[("c", {"server": "https://c.example"})], users=[("u", {"token": "t"})],
        contexts=[("a", {"cluster": "c", "user": "u"}), ("b", {"cluster": "c", "user": "u", "namespace": "bee"})],
        current="a"))
    assert load(tmp_path, explicit=path).context == "a"
    assert load(tmp_path, explicit=path, context="b").namespace == "bee"
    with pytest.raises(CliError, match='context "nope" not found'):
        load(tmp_path, explicit=path, context="nope")


def test_no_current_context_asks_for_one(tmp_path):
    path = write(tmp_path / "k.yaml", kubeconfig(clusters=[("c", {"server": "https://c.example"})],
                                                contexts=[("a", {"cluster": "c"})]))
    with pytest.raises(CliError, match="sets no current-context; pass --context"):
        load(tmp_path, explicit=path)
    assert load(tmp_path, explicit=path, context="a").token is None  # a context without a user: no credentials


def test_context_pointing_at_unknown_cluster_or_user(tmp_path):
    path = write(tmp_path / "k.yaml", kubeconfig(
        clusters=[("c", {"server": "https://c.example"})],
        contexts=[("no-cluster", {"cluster": "gone", "user": ""}), ("no-user", {"cluster": "c", "user": "gone"})]))
    with pytest.raises(CliError, match='cluster "gone" of context "no-cluster" not found'):
        load(tmp_path, explicit=path, context="no-cluster")
    with pytest.raises(CliError, match='user "gone" of context "no-user" not found'):
        load(tmp_path, explicit=path, context="no-user")


@pytest.mark.parametrize("cluster,user,message", [
    ({"server": "https://a.example", "insecure-skip-tls-verify": True}, {}, "insecure-skip-tls-verify"),
    ({"server": "http://a.example:8080"}, {}, "must be an https:// URL"),
    ({"server": "https://admin:hunter2@a.example"}, {}, "must not contain credentials"),
    ({"server": "https://a.example", "proxy-url": "http://proxy:3128"}, {}, "proxy-url"),
    ({"server": "https://a.example"}, {"exec": {"command": "get-token"}}, "exec credential plugins"),
    ({"server": "https://a.example"}, {"auth-provider": {"name": "oidc"}}, "auth-provider"),
    ({"server": "https://a.example"}, {"username": "u", "password": "hunter2"}, "basic authentication"),
    ({"server": "https://a.example"}, {"as": "someone-else"}, "impersonation"),
    ({"server": "https://a.example"}, {"client-key-data": base64.b64encode(FAKE_KEY_PEM).decode()},
     "both a client certificate and its key"),
    ({"server": "https://a.example"}, {"client-key-data": "%%%not-base64%%%", "client-certificate-data": "QQ=="},
     "client-key-data is not valid base64"),
    ({"server": "https://a.example"}, {"token": f"{SECRET_TOKEN}\r\nX-Injected: 1"}, "not one line"),
    ({"server": "https://a.example"}, {"token": f"{SECRET_TOKEN}\u2603"}, "not one line"),
    ({"server": "https://a.example"}, {"tokenFile": "/nonexistent/token"}, "cannot read tokenFile"),
])
def test_unsafe_or_unsupported_kubeconfigs_are_refused(tmp_path, cluster, user, message):
    path = simple(tmp_path, "bad", server=cluster.pop("server"), cluster=cluster, user=user)
    with pytest.raises(CliError, match=message) as raised:
        load(tmp_path, explicit=path)
    assert "hunter2" not in str(raised.value) and SECRET_TOKEN not in str(raised.value)


def test_malformed_yaml_names_the_position_but_never_the_content(tmp_path):
    key_text = FAKE_KEY_PEM.decode().splitlines()[1]
    path = write(tmp_path / "broken.yaml", f"users:\n- name: u\n  user:\n    client-key-data: {key_text}\n   bad: [\n")
    with pytest.raises(CliError) as raised:
        load(tmp_path, explicit=path)
    assert str(raised.value).startswith(f"{path}: not valid YAML (line ")
    assert key_text not in str(raised.value)


@pytest.mark.parametrize("document,message", [
    ("- just\n- a list\n", "not a kubeconfig"),
    ("clusters: {a: b}\n", "clusters must be a list"),
    ("users:\n- user: {token: x}\n", "users\\[0\\] has no name"),
])
def test_structurally_wrong_kubeconfigs_are_refused(tmp_path, document, message):
    with pytest.raises(CliError, match=message):
        load(tmp_path, explicit=write(tmp_path / "wrong.yaml", document))


def test_credentials_never_appear_in_the_repr(tmp_path):
    access = ClusterAccess(context="c", cluster="c", user="u", server="https://a.example",
                           client_cert_pem=b"CERT", client_key_pem=FAKE_KEY_PEM, token=SECRET_TOKEN)
    assert SECRET_TOKEN not in repr(access) and "PRIVATE KEY" not in repr(access)


# ----------------------------------------------------------------------------- a local API server


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class LocalPki:
    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes
    other_ca_pem: bytes


def _issue(ca_key, ca_name, cn, *, server: bool) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(hours=1)))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("api.internal.example")]), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    cert = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="module")
def pki() -> LocalPki:
    ca_key, ca_cert = _ca("test-ca")
    _, other_ca = _ca("other-ca")
    server_cert, server_key = _issue(ca_key, ca_cert.subject, "api", server=True)
    client_cert, client_key = _issue(ca_key, ca_cert.subject, "reviewer", server=False)
    return LocalPki(ca_cert.public_bytes(serialization.Encoding.PEM), server_cert, server_key, client_cert, client_key,
                   other_ca.public_bytes(serialization.Encoding.PEM))


CLUSTER_ROLES = [{"metadata": {"name": f"role-{i}"}, "rules": []} for i in range(5)]


class _Handler(BaseHTTPRequestHandler):
    """Answers like an API server: lists in pages, 401 without credentials, 403 on /forbidden."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        client_cert = self.connection.getpeercert()
        self.server.seen.append((url.path, query, self.headers.get("Authorization"), bool(client_cert)))
        if not client_cert and self.headers.get("Authorization") != f"Bearer {SECRET_TOKEN}":
            return self._send(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
        if url.path.endswith("/forbidden"):
            return self._send(403, {"kind": "Status", "code": 403,
                                    "message": 'clusterroles is forbidden: User "x" cannot list\x1b[31m'})
        if url.path.startswith("/prefix/apis/rbac.authorization.k8s.io/v1/"):
            plural = url.path.rsplit("/", 1)[1]
            items = CLUSTER_ROLES if plural == "clusterroles" else []
            start, limit = int(query.get("continue", "0")), int(query.get("limit", "500"))
            page = items[start:start + limit]
            meta = {"continue": str(start + limit)} if start + limit < len(items) else {}
            return self._send(200, {"kind": "List", "metadata": meta, "items": page})
        self._send(404, {"kind": "Status", "code": 404, "message": "not found"})

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def server(pki: LocalPki, tmp_path_factory) -> Iterator[ThreadingHTTPServer]:
    directory = tmp_path_factory.mktemp("server")
    (directory / "server.pem").write_bytes(pki.server_cert_pem + pki.server_key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=pki.ca_pem.decode())
    context.load_cert_chain(str(directory / "server.pem"))
    context.verify_mode = ssl.CERT_OPTIONAL
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def access_for(server: ThreadingHTTPServer, pki: LocalPki, **overrides: Any) -> ClusterAccess:
    fields = {"context": "c", "cluster": "c", "user": "reviewer",
              "server": f"https://127.0.0.1:{server.server_address[1]}/prefix", "ca_pem": pki.ca_pem}
    return ClusterAccess(**{**fields, **overrides})


def test_lists_every_page_with_limit_and_continue(server, pki):
    server.seen.clear()
    with ApiClient(access_for(server, pki, token=SECRET_TOKEN), page_size=2) as client:
        objects = list_rbac_objects(client)
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    assert [o["metadata"]["name"] for o in cluster_roles] == [f"role-{i}" for i in range(5)]
    assert all(o["apiVersion"] == "rbac.authorization.k8s.io/v1" for o in objects)
    pages = [q for path, q, _, _ in server.seen if path.endswith("/clusterroles")]
    assert pages == [{"limit": "2"}, {"limit": "2", "continue": "2"}, {"limit": "2", "continue": "4"}]
    assert {auth for *_, auth, _ in server.seen} == {f"Bearer {SECRET_TOKEN}"}


def test_client_certificate_from_kubeconfig_data_is_presented(server, pki, tmp_path):
    port = server.server_address[1]
    path = write(tmp_path / "k.yaml", kubeconfig(
        clusters=[("c", {"server": f"https://127.0.0.1:{port}/prefix",
                         "certificate-authority-data": base64.b64encode(pki.ca_pem).decode()})],
        users=[("reviewer", {"client-certificate-data": base64.b64encode(pki.client_cert_pem).decode(),
                             "client-key-data": base64.b64encode(pki.client_key_pem).decode()})],
        contexts=[("c", {"cluster": "c", "user": "reviewer"})], current="c"))
    server.seen.clear()
    with ApiClient(load(tmp_path, explicit=path)) as client:
        assert len(list_rbac_objects(client)) == len(CLUSTER_ROLES)
    assert all(has_cert and auth is None for _, _, auth, has_cert in server.seen)


def test_tls_server_name_is_what_the_certificate_is_checked_against(server, pki):
    with ApiClient(access_for(server, pki, token=SECRET_TOKEN, tls_server_name="api.internal.example")) as client:
        assert client.get_json("/apis/rbac.authorization.k8s.io/v1/roles")["items"] == []
    with (ApiClient(access_for(server, pki, token=SECRET_TOKEN, tls_server_name="other.example")) as client,
          pytest.raises(CliError, match="cannot verify the server certificate")):
        client.get_json("/apis/rbac.authorization.k8s.io/v1/roles")


def test_a_server_signed_by_another_ca_is_refused(server, pki):
    with (ApiClient(access_for(server, pki, token=SECRET_TOKEN, ca_pem=pki.other_ca_pem)) as client,
          pytest.raises(CliError, match="cannot verify the server certificate") as raised):
        client.get_json("/apis/rbac.authorization.k8s.io/v1/roles")
    assert SECRET_TOKEN not in str(raised.value)


def test_http_errors_are_one_line_without_credentials(server, pki):
    with (ApiClient(access_for(server, pki, token="wrong")) as client,
          pytest.raises(CliError, match='did not accept the credentials of user "reviewer" \\(401')):
        client.get_json("/apis/rbac.authorization.k8s.io/v1/roles")
    with (ApiClient(access_for(server, pki, token=SECRET_TOKEN)) as client,
          pytest.raises(CliError, match="answered 403") as raised):
        client.get_json("/forbidden")
    assert "\x1b" not in str(raised.value) and "cannot list" in str(raised.value)


def test_unreachable_server(pki):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    access = ClusterAccess(context="c", cluster="c", user="u", server=f"https://127.0.0.1:{port}", ca_pem=pki.ca_pem)
    with (ApiClient(access) as client,
          pytest.raises(CliError, match=f"cannot reach https://127.0.0.1:{port}: Connection refused")):
        client.get_json("/api")


def test_unusable_client_key_is_a_one_line_error(pki):
    access = ClusterAccess(context="c", cluster="c", user="u", server="https://127.0.0.1:1", ca_pem=pki.ca_pem,
                           client_cert_pem=pki.client_cert_pem, client_key_pem=FAKE_KEY_PEM)
    with pytest.raises(CliError, match='client certificate and key of user "u" cannot be used') as raised:
        ApiClient(access)
    assert "TUFURVJJ" not in str(raised.value)
