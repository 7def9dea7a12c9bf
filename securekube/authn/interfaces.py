"""Authentication: who is making a request.

Each method (x509 client certificates, ServiceAccount tokens, ...) is an `Authenticator`;
`union.py` tries them in order. An authenticator that does not recognise the credential
returns None; one that recognises it but finds it invalid raises `AuthenticationError`
(so a bad token is never passed on to a weaker method).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity, in the shape of authentication.k8s.io/v1 UserInfo."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The authentication.k8s.io/v1 UserInfo JSON, empty fields left out as upstream serializes it."""
        out: dict[str, Any] = {}
        if self.username:
            out["username"] = self.username
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {key: list(values) for key, values in self.extra.items()}
        return out


@dataclass(frozen=True)
class Credentials:
    """What a request presented: the TLS-verified client chain and the Authorization header.

    The chain is as the ASGI TLS extension carries it: PEM strings, the client's own first.
    """

    client_cert_chain: tuple[str, ...]
    authorization: str | None


class AuthenticationError(Exception):
    """The credential was recognised but is not valid; the reason goes to the audit log only."""


class Authenticator(Protocol):
    def authenticate(self, creds: Credentials) -> UserInfo | None: ...
