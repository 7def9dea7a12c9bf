"""The issued files work in a real TLS 1.3 handshake over loopback (OpenSSL via `ssl`)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from securekube.pki import certs
from securekube.pki.layout import PkiPaths
from securekube.pki.profiles import PkiProfiles
from securekube.pki.rotate import rotate_leaves


def _server_context(pki: PkiPaths) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(pki.cert("apiserver"), pki.key("apiserver"))
    context.load_verify_locations(pki.cert("ca"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _client_context(pki: PkiPaths, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.cert("ca")))
    context.load_cert_chain(cert, key)
    return context


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> str:
    """Returns the client identity the server saw (its subject's CN and O)."""
    seen: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def accept() -> None:
            conn, _ = listener.accept()
            with server.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.sendall(b"ok")

        thread = threading.Thread(target=accept)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=5) as raw:
            with client.wrap_socket(raw, server_hostname=host) as tls:
                assert tls.version() == "TLSv1.3"
                assert tls.recv(2) == b"ok"
        thread.join(5)
    subject = dict(pair[0] for pair in seen["peer"]["subject"])  # type: ignore[index]
    return f"{subject['commonName']}/{subject['organizationName']}"


def test_admin_logs_in_over_mtls_before_and_after_rotation(
    pki: PkiPaths, profiles: PkiProfiles, tmp_path: Path
) -> None:
    old_admin = tmp_path / "old-admin"
    old_admin.mkdir()
    (old_admin / "admin.crt").write_bytes(pki.cert("admin").read_bytes())
    (old_admin / "admin.key").write_bytes(pki.key("admin").read_bytes())
    client = _client_context(pki, pki.cert("admin"), pki.key("admin"))
    assert _handshake(_server_context(pki), client, "kubernetes.default.svc") == (
        "securekube-admin/securekube:cluster-admins"
    )

    rotate_leaves(pki.root, profiles)

    # The server reloads the rotated files; a client still holding the old admin
    # credential keeps working (same CA), and the new one works too.
    reloaded = _server_context(pki)
    old_client = _client_context(pki, old_admin / "admin.crt", old_admin / "admin.key")
    new_client = _client_context(pki, pki.cert("admin"), pki.key("admin"))
    assert _handshake(reloaded, old_client, "localhost").startswith("securekube-admin/")
    assert _handshake(reloaded, new_client, "localhost").startswith("securekube-admin/")


def test_a_server_reloading_mid_rotation_keeps_serving_and_rotate_repairs_it(
    pki: PkiPaths, profiles: PkiProfiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _server_context(pki)
    client = _client_context(pki, pki.cert("admin"), pki.key("admin"))

    def crash(path: Path, cert: object) -> None:
        raise OSError("simulated crash between a key and its certificate")

    with monkeypatch.context() as patched:
        patched.setattr(certs, "replace_certificate", crash)
        with pytest.raises(OSError, match="simulated crash"):
            rotate_leaves(pki.root, profiles)
    # On disk now: the new apiserver key beside the old certificate. A server that
    # reloads its live context in place (as the API server does) fails to load them...
    with pytest.raises(ssl.SSLError, match="KEY_VALUES_MISMATCH"):
        server.load_cert_chain(pki.cert("apiserver"), pki.key("apiserver"))
    # ...and keeps serving the pair it had.
    assert _handshake(server, client, "localhost").startswith("securekube-admin/")

    rotate_leaves(pki.root, profiles)
    server.load_cert_chain(pki.cert("apiserver"), pki.key("apiserver"))
    assert _handshake(server, client, "localhost").startswith("securekube-admin/")
