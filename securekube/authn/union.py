"""Tries each authenticator in order; the first that recognises the credential decides."""
from __future__ import annotations

from securekube.authn.interfaces import Authenticator, Credentials, UserInfo

AUTHENTICATED_GROUP = "system:authenticated"


class UnionAuthenticator:
    def __init__(self, *authenticators: Authenticator) -> None:
        if not authenticators:
            raise ValueError("at least one authenticator is required")  # no authn = fail closed at start-up
        self._authenticators = authenticators

    def authenticate(self, creds: Credentials) -> UserInfo | None:
        """The identity (plus system:authenticated), or None; AuthenticationError propagates."""
        for authenticator in self._authenticators:
            user = authenticator.authenticate(creds)
            if user is not None:
                if AUTHENTICATED_GROUP in user.groups:
                    return user
                return UserInfo(user.username, user.uid, user.groups + (AUTHENTICATED_GROUP,), user.extra)
        return None
