"""Client-certificate authentication: CN is the user, each O is a group (upstream mapping).

The TLS layer has already verified the chain against the cluster CA (a certificate from
another CA or an expired one fails the handshake); this module maps the verified leaf to an
identity and re-checks its validity window, because a keep-alive connection can outlive it.
"""
from __future__ import annotations

import datetime as dt
import functools
from typing import Callable

from cryptography import x509
from cryptography.x509.oid import NameOID

from securekube.authn.interfaces import AuthenticationError, Credentials, UserInfo


@functools.lru_cache(maxsize=1024)
def _parse(pem: str) -> tuple[x509.Certificate, UserInfo | None]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or not str(cns[0].value):
        return cert, None
    groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return cert, UserInfo(username=str(cns[0].value), groups=groups)


class X509Authenticator:
    """Maps a TLS-verified client certificate to a user, refusing revoked serials."""

    def __init__(self, revoked: Callable[[], frozenset[int]] = frozenset,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        """`revoked()` returns the current revoked serials (securekube/pki/revocation.py keeps them fresh)."""
        self._revoked = revoked
        self._clock = clock

    def authenticate(self, creds: Credentials) -> UserInfo | None:
        if not creds.client_cert_chain:
            return None
        try:
            cert, user = _parse(creds.client_cert_chain[0])
        except ValueError:
            raise AuthenticationError("x509: client certificate could not be parsed") from None
        now = self._clock()
        if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
            raise AuthenticationError(f"x509: certificate serial {cert.serial_number} has expired or is not yet valid")
        if cert.serial_number in self._revoked():
            raise AuthenticationError(f"x509: certificate serial {cert.serial_number:x} is revoked")
        if user is None:
            raise AuthenticationError("x509: certificate has no common name")
        return user
