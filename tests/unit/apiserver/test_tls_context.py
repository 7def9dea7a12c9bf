"""The server TLS context and the ASGI TLS extension that carries the client certificate to authentication."""
from __future__ import annotations

import asyncio
import ssl
import threading

import httpx
import pytest
import uvicorn

from securekube.apiserver.tls import ServingCerts, TLSExtensionProtocol, server_context
from securekube.pki.layout import bootstrap
from securekube.pki.profiles import load_profiles
from tests.integration.cluster import free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    bootstrap(root, load_profiles())
    return root


def test_context_refuses_old_protocols_and_weak_ciphers(pki):
    ctx = server_context(ServingCerts(str(pki / "apiserver.crt"), str(pki / "apiserver.key"), str(pki / "ca.crt")))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["kea"] == "kx-ecdhe" and c["aead"] for c in tls12)


def test_client_certificate_reaches_the_app_through_the_tls_extension(pki):
    seen: list[dict] = []

    async def app(scope, receive, send):
        seen.append(scope.get("extensions", {}).get("tls", {}))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=TLSExtensionProtocol, lifespan="off", log_level="error")
    config.load()
    config.ssl = server_context(ServingCerts(str(pki / "apiserver.crt"), str(pki / "apiserver.key"), str(pki / "ca.crt")))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.02)
        client_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        client_ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        with httpx.Client(verify=client_ctx) as client:
            assert client.get(f"https://127.0.0.1:{port}/").status_code == 204
        anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        with httpx.Client(verify=anonymous) as client:
            assert client.get(f"https://127.0.0.1:{port}/").status_code == 204
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    with_cert, without_cert = seen
    assert len(with_cert["client_cert_chain"]) == 1
    assert with_cert["client_cert_chain"][0] == (pki / "admin.crt").read_text()
    assert with_cert["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert without_cert["client_cert_chain"] == ()
