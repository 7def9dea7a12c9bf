"""ServiceAccount credentials served by the API: TokenRequest, token authentication, OIDC discovery.

`ServiceAccountTokens` holds the signing key, the verifying keys (the current one plus retired
ones kept for a grace period: `sa-*.pub` beside `sa.pub`), and answers
`POST .../serviceaccounts/NAME/token` (`kubectl create token`). Tokens are bound to their
ServiceAccount and optionally to a Pod or Secret, and die with them.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

from securekube.api import errors
from securekube.api.errors import ApiError, Cause
from securekube.authn.bootstrap import BootstrapTokenAuthenticator
from securekube.authn.interfaces import Authenticator, Credentials, UserInfo
from securekube.authn.serviceaccount import (
    BOUND_KINDS, DEFAULT_EXPIRATION_SECONDS, BoundObject, ServiceAccountTokenAuthenticator, TokenIssuer, jwks, key_id,
    openid_configuration,
)
from securekube.authn.union import UnionAuthenticator
from securekube.pki.keys import load_private_key, load_public_key
from securekube.pki.layout import PkiPaths
from securekube.registry.registry import Registry

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
_KIND_STORES = {"ServiceAccount": ("", "ServiceAccount"), "Pod": ("", "Pod"), "Secret": ("", "Secret"),
                "Node": ("", "Node")}


def _token_request_invalid(name: str, field: str, message: str) -> ApiError:
    return errors.invalid("TokenRequest", name, [Cause("FieldValueInvalid", message, field)], "authentication.k8s.io")


class ServiceAccountTokens:
    def __init__(self, registry: Registry, pki: PkiPaths, *, issuer: str = DEFAULT_ISSUER, jwks_uri: str = "") -> None:
        self.registry = registry
        self.issuer = issuer
        self.api_audiences = (issuer,)
        self._pki = pki
        self._discovery = openid_configuration(issuer, jwks_uri or f"{issuer}/openid/v1/jwks")
        self._bootstrap = BootstrapTokenAuthenticator(self._lookup_secret)
        self._stamp = self._key_files_stamp()
        self._load_keys()  # a missing or unreadable key at start-up stops start-up

    def _key_files(self) -> list[Path]:
        return [self._pki.sa_key, self._pki.sa_pub, *sorted(self._pki.root.glob("sa-*.pub"))]

    def _key_files_stamp(self) -> tuple:
        return tuple((p.name, p.stat().st_mtime_ns) for p in self._key_files())

    def _load_keys(self) -> None:
        """The signing key and every verifying key (current plus retired ones in their grace period)."""
        signing = load_private_key(self._pki.sa_key)
        public_keys = [load_public_key(p) for p in self._key_files()[1:]]
        verifying = {key_id(k): k for k in public_keys}
        issuer = TokenIssuer(signing, key_id(signing.public_key()), self.issuer, self.api_audiences)
        # Swapped together by plain assignment: readers see the old set or the new one.
        self._verifying, self._issuer, self._jwks = verifying, issuer, jwks(public_keys)
        self._sa_authenticator = ServiceAccountTokenAuthenticator(verifying, self.issuer, self.api_audiences,
                                                                  self._lookup)

    def check(self) -> bool:
        """Reloads the keys when their files change (`securekube pki rotate-sa-key`); a bad set keeps the old one."""
        try:
            stamp = self._key_files_stamp()
            if stamp == self._stamp:
                return False
            self._load_keys()
        except Exception:  # half-written files: keep serving with the previous keys, retry next tick
            return False
        self._stamp = stamp
        return True

    # -- authentication -----------------------------------------------------------------------
    def _lookup(self, kind: str, namespace: str, name: str) -> str | None:
        try:
            obj = self.registry.store_for_kind(*_KIND_STORES[kind]).get(namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        if obj["metadata"].get("deletionTimestamp"):
            return None  # a token dies when its object starts to go, as upstream
        return obj["metadata"].get("uid")

    def _lookup_secret(self, name: str) -> dict | None:
        try:
            return self.registry.store_for_kind("", "Secret").get("kube-system", name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def authenticate(self, creds: Credentials) -> UserInfo | None:
        """Bearer tokens for the API: ServiceAccount JWTs with the current keys, then bootstrap tokens."""
        user = self._sa_authenticator.authenticate(creds)
        return user if user is not None else self._bootstrap.authenticate(creds)

    def authenticator(self, audiences: tuple[str, ...] | None = None) -> Authenticator:
        """Token authentication for other `audiences` (a TokenReview); the API's own audiences: self."""
        if not audiences:
            return self
        return UnionAuthenticator(
            ServiceAccountTokenAuthenticator(self._verifying, self.issuer, audiences, self._lookup), self._bootstrap)

    def token_audiences(self, token: str, requested: tuple[str, ...]) -> list[str]:
        """Of the requested audiences, those an (already verified) token is for; bootstrap tokens: the API's."""
        parts = token.split(".")
        if len(parts) != 3:
            return [a for a in requested if a in self.api_audiences]
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else list(aud or [])
        return [a for a in requested if a in token_auds]

    # -- discovery ----------------------------------------------------------------------------
    def openid_configuration(self) -> dict:
        return self._discovery

    def jwks(self) -> dict:
        return self._jwks

    # -- TokenRequest -------------------------------------------------------------------------
    def request(self, namespace: str, sa_name: str, body: Any, user: UserInfo) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("spec") or {}, dict):
            raise errors.bad_request("a TokenRequest must be an object with a spec")
        if body.get("kind") not in (None, "TokenRequest"):
            raise errors.bad_request(f"the kind in the data ({body.get('kind')}) does not match the expected kind (TokenRequest)")
        sa = self.registry.store_for_kind("", "ServiceAccount").get(namespace, sa_name)
        spec = dict(body.get("spec") or {})
        audiences = spec.get("audiences") or list(self.api_audiences)
        if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
            raise _token_request_invalid(sa_name, "spec.audiences", "Invalid value: must be a list of non-empty strings")
        seconds = spec.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise _token_request_invalid(sa_name, "spec.expirationSeconds", "Invalid value: must be an integer")
        bound = self._bound_object(namespace, sa_name, spec.get("boundObjectRef"))
        try:
            token, expiry = self._issuer.issue(namespace, sa_name, sa["metadata"]["uid"], audiences=tuple(audiences),
                                               expiration_seconds=seconds, bound=bound)
        except ValueError as exc:
            raise _token_request_invalid(sa_name, "spec.expirationSeconds", f"Invalid value: {seconds}: {exc}") from None
        spec.update({"audiences": audiences, "expirationSeconds": int((expiry - dt.datetime.now(dt.timezone.utc)).total_seconds() + 0.5)})
        meta = {"name": sa_name, "namespace": namespace, "creationTimestamp": sa["metadata"].get("creationTimestamp")}
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": meta, "spec": spec,
                "status": {"token": token, "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}}

    def _bound_object(self, namespace: str, sa_name: str, ref: Any) -> BoundObject | None:
        if ref is None:
            return None
        if not isinstance(ref, dict) or ref.get("kind") not in BOUND_KINDS or not ref.get("name"):
            raise _token_request_invalid(sa_name, "spec.boundObjectRef",
                                         f"Invalid value: kind must be one of {', '.join(BOUND_KINDS)} and name is required")
        kind = ref["kind"]
        obj = self.registry.store_for_kind(*_KIND_STORES[kind]).get("" if kind == "Node" else namespace, ref["name"])
        uid = obj["metadata"]["uid"]
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(f"{kind.lower()}s", ref["name"],
                                  f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record ({uid}). The object might have been deleted and then recreated")
        return BoundObject(kind, ref["name"], uid)
