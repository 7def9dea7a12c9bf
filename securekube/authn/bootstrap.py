"""Bootstrap tokens: short-lived `<id>.<secret>` bearer tokens that let a new node ask for its certificate.

Each token is backed by a Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
in kube-system, in upstream's format (token-id, token-secret, expiration, usage-bootstrap-*,
auth-extra-groups). The token id is public (it names the Secret); only the 16-character secret
part authenticates, and it is compared in constant time and never written to a message.

Upstream answers "not recognised" for every bad bootstrap token; here a credential that has the
bootstrap shape but fails a check raises AuthenticationError instead, so the audit log gets the
reason and the token is never offered to another authenticator.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
from typing import Any, Callable, Mapping

from securekube.authn.interfaces import AuthenticationError, Credentials, UserInfo

SECRET_NAMESPACE = "kube-system"
SECRET_NAME_PREFIX = "bootstrap-token-"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
USERNAME_PREFIX = "system:bootstrap:"
DEFAULT_GROUP = "system:bootstrappers"

TOKEN_ID_KEY = "token-id"
TOKEN_SECRET_KEY = "token-secret"
EXPIRATION_KEY = "expiration"
USAGE_AUTHENTICATION_KEY = "usage-bootstrap-authentication"
EXTRA_GROUPS_KEY = "auth-extra-groups"

_TOKEN = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
# Upstream's BootstrapGroupPattern: extra groups must live under system:bootstrappers:.
GROUP_PATTERN = r"system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]"
_GROUP = re.compile(GROUP_PATTERN)
# Go's time.RFC3339 layout: a date, a time, optional fractional seconds, a mandatory offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

Clock = Callable[[], dt.datetime]
# lookup_secret(name) -> the Secret object in kube-system (its `data` base64-encoded), or None.
SecretLookup = Callable[[str], Mapping[str, Any] | None]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class BootstrapTokenAuthenticator:
    """Authenticates bootstrap tokens against their kube-system Secrets; an Authenticator."""

    def __init__(self, lookup_secret: SecretLookup, clock: Clock = _utc_now) -> None:
        self._lookup_secret = lookup_secret
        self._clock = clock

    def authenticate(self, creds: Credentials) -> UserInfo | None:
        match = _TOKEN.fullmatch(_bearer_token(creds.authorization) or "")
        if match is None:
            return None
        token_id, token_secret = match.group(1), match.group(2)
        name = SECRET_NAME_PREFIX + token_id
        where = f"bootstrap: secret {SECRET_NAMESPACE}/{name}"
        secret = self._find_secret(name, where)
        data = _SecretData(secret, where)
        # Constant time, so the duration of a refusal does not tell how much of a guess was right.
        if not hmac.compare_digest(data.get(TOKEN_SECRET_KEY).encode(), token_secret.encode()):
            raise AuthenticationError(f"{where} has a different value for key {TOKEN_SECRET_KEY}")
        if data.get(TOKEN_ID_KEY) != token_id:
            raise AuthenticationError(f"{where} has a different value for key {TOKEN_ID_KEY}")
        self._check_not_expired(data.get(EXPIRATION_KEY), where)
        if data.get(USAGE_AUTHENTICATION_KEY) != "true":
            raise AuthenticationError(f"{where} is not marked {USAGE_AUTHENTICATION_KEY}: true")
        return UserInfo(username=USERNAME_PREFIX + token_id, groups=_groups(data.get(EXTRA_GROUPS_KEY), where))

    def _find_secret(self, name: str, where: str) -> Mapping[str, Any]:
        try:
            secret = self._lookup_secret(name)
        except Exception as exc:  # a lookup that breaks must refuse, not let the token through
            raise AuthenticationError(f"{where} could not be read: {type(exc).__name__}") from exc
        if secret is None:
            raise AuthenticationError(f"{where} does not exist")
        if not isinstance(secret, Mapping):
            raise AuthenticationError(f"{where} is not an object")
        metadata = secret.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        if metadata.get("namespace", SECRET_NAMESPACE) != SECRET_NAMESPACE:
            raise AuthenticationError(f"{where} was looked up in namespace {metadata.get('namespace')!r}")
        if metadata.get("deletionTimestamp"):
            raise AuthenticationError(f"{where} is deleted and awaiting removal")
        if secret.get("type") != SECRET_TYPE:
            raise AuthenticationError(f"{where} has invalid type, expected {SECRET_TYPE}")
        return secret

    def _check_not_expired(self, expiration: str, where: str) -> None:
        if not expiration:
            return  # upstream: a token without an expiration does not expire
        expires_at = _parse_rfc3339(expiration)
        if expires_at is None:
            # Fail closed like upstream: a date we cannot read is treated as already past.
            raise AuthenticationError(f"{where} has an unparseable {EXPIRATION_KEY}; treating it as expired")
        if self._clock() >= expires_at:
            raise AuthenticationError(f"{where} expired at {expiration}")


class _SecretData:
    """The decoded `data` of a bootstrap token Secret; a missing key reads as ""."""

    def __init__(self, secret: Mapping[str, Any], where: str) -> None:
        data = secret.get("data")
        self._data = data if isinstance(data, Mapping) else {}
        self._where = where

    def get(self, key: str) -> str:
        encoded = self._data.get(key)
        if encoded is None:
            return ""
        try:
            return base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise AuthenticationError(f"{self._where} has a value for key {key} that is not base64 UTF-8") from None

    def __repr__(self) -> str:
        return f"_SecretData(keys={sorted(self._data)})"  # never the values


def _groups(extra_groups: str, where: str) -> tuple[str, ...]:
    """system:bootstrappers plus the validated extra groups, deduplicated and sorted as upstream."""
    groups = {DEFAULT_GROUP}
    if extra_groups:
        for group in extra_groups.split(","):
            if not _GROUP.fullmatch(group):
                raise AuthenticationError(
                    f"{where} has invalid value for key {EXTRA_GROUPS_KEY}: "
                    f"bootstrap group {group[:300]!r} is invalid (must match {GROUP_PATTERN})"
                )
            groups.add(group)
    return tuple(sorted(groups))


def _parse_rfc3339(value: str) -> dt.datetime | None:
    if not _RFC3339.fullmatch(value):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    parts = authorization.split() if authorization else []
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]
