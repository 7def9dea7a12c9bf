"""TLS for the API server: the hardened server context, and the ASGI TLS extension uvicorn lacks.

uvicorn does not expose the client certificate to the application. `TLSExtensionProtocol`
fills `scope["extensions"]["tls"]` (ASGI TLS extension: `client_cert_chain` as PEM strings,
`tls_version`, `cipher_suite`) for every request on a connection, from the connection's SSL
object. tests/unit/apiserver/test_tls.py covers it so an upgrade cannot silently break authn.
"""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # httptools is faster; h11 is the pure-Python fallback
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
except ImportError:  # pragma: no cover - depends on the environment
    _BaseProtocol = H11Protocol  # type: ignore[misc,assignment]

# CIS 1.2.29: only ECDHE key exchange with AEAD ciphers (TLS 1.3 suites are all AEAD).
TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
                "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"


@dataclass(frozen=True)
class ServingCerts:
    cert_file: str
    key_file: str
    client_ca_file: str


def server_context(certs: ServingCerts) -> ssl.SSLContext:
    """TLS 1.2+, ECDHE+AEAD only, client certificates verified against the cluster CA when sent.

    CERT_OPTIONAL rather than REQUIRED: a client may authenticate with a bearer token instead,
    and one with neither gets a 401 from the authentication stage. A certificate that is sent
    but fails verification (other CA, expired) ends the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(certs.cert_file, certs.key_file)
    ctx.load_verify_locations(certs.client_ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class CertReloader:
    """Reloads the serving certificate when its file changes, so `pki rotate` needs no restart.

    Only new handshakes see the new certificate; open connections keep theirs.
    """

    def __init__(self, ctx: ssl.SSLContext, certs: ServingCerts) -> None:
        self._ctx, self._certs = ctx, certs
        self._stamp = self._current_stamp()

    def _current_stamp(self) -> tuple[float, float]:
        return os.stat(self._certs.cert_file).st_mtime, os.stat(self._certs.key_file).st_mtime

    def check(self) -> bool:
        """Reloads if the files changed; returns True when it did. A half-written pair is retried later."""
        try:
            stamp = self._current_stamp()
            if stamp == self._stamp:
                return False
            self._ctx.load_cert_chain(self._certs.cert_file, self._certs.key_file)
        except (OSError, ssl.SSLError):
            return False  # keep serving the old certificate; try again on the next tick
        self._stamp = stamp
        return True


def tls_scope_extension(transport: Any) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = (ssl.DER_cert_to_PEM_cert(der),) if der else ()
    cipher = ssl_object.cipher()
    return {
        "client_cert_chain": chain,
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }


class TLSExtensionProtocol(_BaseProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol, plus the ASGI TLS extension in every request's scope."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        extension = tls_scope_extension(transport)
        if extension is None:
            return
        app = self.app

        async def with_tls(scope: dict, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = extension
            await app(scope, receive, send)

        self.app = with_tls
