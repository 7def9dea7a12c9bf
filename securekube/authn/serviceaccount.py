"""ServiceAccount tokens: issuing bound JWTs, authenticating them, and the OIDC discovery documents.

The tokens have the shape of upstream's TokenRequest tokens (ES256, `kid` header, the private
`kubernetes.io` claim), so the official clients, `kubectl create token` and relying parties that
read /.well-known/openid-configuration treat them like a real cluster's.

Verification never lets the token choose how it is checked: the algorithm is fixed to ES256 and
the key is the one listed under the token's `kid`. The header's `alg` is only compared, so `none`,
HS256 keyed with the public key, or any other algorithm is refused before a signature is looked at.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from securekube.authn.interfaces import AuthenticationError, Credentials, UserInfo

ALGORITHM = "ES256"
PRIVATE_CLAIM = "kubernetes.io"
USERNAME_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
NAMESPACE_GROUP_PREFIX = "system:serviceaccounts:"

# The keys upstream puts into UserInfo.extra for a bound token.
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"

DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 10 * 60  # upstream TokenRequest validation
MAX_REQUESTABLE_EXPIRATION_SECONDS = 1 << 32  # upstream TokenRequest validation
MAX_EXPIRATION_SECONDS = 48 * 3600  # securekube's --service-account-max-token-expiration
MAX_LEEWAY_SECONDS = 60  # upstream's clock-skew allowance (go-jose DefaultLeeway)
# Our tokens are about 1 KiB; anything far larger is not ours and is not worth parsing.
MAX_TOKEN_LENGTH = 16 * 1024
# Tokens whose signature check is remembered (about 3 KiB each): one per pod or client in use.
DEFAULT_VERIFIED_CACHE_SIZE = 4096

BOUND_KINDS = ("Pod", "Secret", "Node")
_CLAIM_FOR_KIND = {"Pod": "pod", "Secret": "secret", "Node": "node"}
# The signature may be empty so that an unsigned (`alg: none`) token claiming our issuer is
# recognised, and refused with a reason, rather than passed over.
_JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

PublicKey = ec.EllipticCurvePublicKey
PrivateKey = ec.EllipticCurvePrivateKey
Clock = Callable[[], dt.datetime]
# lookup(kind, namespace, name) -> the object's current uid, or None when it does not exist.
# kind is "ServiceAccount", "Pod", "Secret" or "Node" (namespace "" for a Node).
ObjectLookup = Callable[[str, str, str], str | None]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class BoundObject:
    """The object a token's life is tied to (TokenRequest spec.boundObjectRef): Pod, Secret or Node."""

    kind: str
    name: str
    uid: str

    def __post_init__(self) -> None:
        if self.kind not in BOUND_KINDS:
            raise ValueError(f"bound object kind must be one of {', '.join(BOUND_KINDS)}, got {self.kind!r}")
        if not self.name or not self.uid:
            raise ValueError("bound object name and uid are required")


def service_account_username(namespace: str, name: str) -> str:
    """The username of a ServiceAccount: `system:serviceaccount:<namespace>:<name>`."""
    return f"{USERNAME_PREFIX}{namespace}:{name}"


def key_id(public_key: PublicKey) -> str:
    """The `kid` of a public key as upstream derives it: base64url(SHA-256(DER SubjectPublicKeyInfo)).

    Deriving it from the key (rather than naming keys) means every API server that holds the
    same key advertises the same kid, and the kid cannot be turned back into the key.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


_derive_key_id = key_id  # TokenIssuer's `key_id` parameter shadows the function inside __init__


def _require_p256(key: object, what: str, private: bool) -> None:
    wanted = ec.EllipticCurvePrivateKey if private else ec.EllipticCurvePublicKey
    curve = getattr(key, "curve", None) if isinstance(key, wanted) else None
    if not isinstance(curve, ec.SECP256R1):
        raise ValueError(f"{what} must be an ECDSA P-256 {'private' if private else 'public'} key")


def _require_audiences(audiences: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(audiences, str):
        raise ValueError(f"{what} must be a sequence of strings, not one string")
    result = tuple(audiences)
    if not result or not all(isinstance(a, str) and a for a in result):
        raise ValueError(f"{what} must be a non-empty list of non-empty strings")
    return result


class TokenIssuer:
    """Signs ServiceAccount tokens the way the TokenRequest API does (ES256, bound, expiring)."""

    def __init__(
        self,
        signing_key: PrivateKey,
        key_id: str,
        issuer: str,
        api_audiences: tuple[str, ...],
        clock: Clock = _utc_now,
    ) -> None:
        _require_p256(signing_key, "the signing key", private=True)
        if key_id != _derive_key_id(signing_key.public_key()):
            # A kid that is not derived from the key would not match the published JWKS.
            raise ValueError("key_id must be key_id(signing_key.public_key())")
        if not issuer:
            raise ValueError("issuer is required")
        self._signing_key = signing_key
        self._key_id = key_id
        self._issuer = issuer
        self._api_audiences = _require_audiences(api_audiences, "api_audiences")
        self._clock = clock
        self._jws = jwt.PyJWS(algorithms=[ALGORITHM])

    def __repr__(self) -> str:
        return f"TokenIssuer(issuer={self._issuer!r}, key_id={self._key_id!r})"

    def issue(
        self,
        namespace: str,
        sa_name: str,
        sa_uid: str,
        *,
        audiences: Iterable[str] | None = None,
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        bound: BoundObject | None = None,
    ) -> tuple[str, dt.datetime]:
        """A signed token for the ServiceAccount and the moment it expires.

        `audiences` defaults to the API server's own. `expiration_seconds` below 10 minutes is
        refused as upstream refuses it; above the server maximum (48 h) it is shortened, as
        upstream shortens it, so callers must use the returned expiry, not their request.
        """
        if not namespace or not sa_name or not sa_uid:
            raise ValueError("namespace, service account name and uid are required")
        seconds = _granted_expiration(expiration_seconds)
        token_audiences = self._api_audiences if audiences is None else _require_audiences(audiences, "audiences")
        now = int(self._clock().timestamp())
        private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": sa_name, "uid": sa_uid}}
        if bound is not None:
            private[_CLAIM_FOR_KIND[bound.kind]] = {"name": bound.name, "uid": bound.uid}
        claims = {
            "aud": list(token_audiences),
            "exp": now + seconds,
            "iat": now,
            "iss": self._issuer,
            "jti": str(uuid.uuid4()),
            PRIVATE_CLAIM: private,
            "nbf": now,
            "sub": service_account_username(namespace, sa_name),
        }
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        # typ=None drops pyjwt's default "typ" header: upstream tokens carry only alg and kid.
        token = self._jws.encode(
            payload, self._signing_key, algorithm=ALGORITHM, headers={"kid": self._key_id, "typ": None}
        )
        return token, dt.datetime.fromtimestamp(now + seconds, dt.timezone.utc)


def _granted_expiration(requested: int) -> int:
    if isinstance(requested, bool) or not isinstance(requested, int):
        raise ValueError("expirationSeconds must be an integer")
    if requested < MIN_EXPIRATION_SECONDS:
        raise ValueError("may not specify a duration less than 10 minutes")
    if requested > MAX_REQUESTABLE_EXPIRATION_SECONDS:
        raise ValueError("may not specify a duration larger than 2^32 seconds")
    return min(requested, MAX_EXPIRATION_SECONDS)


class ServiceAccountTokenAuthenticator:
    """Authenticates bearer tokens issued by our TokenIssuer; implements the Authenticator protocol.

    A token whose (unverified) `iss` is not ours is not recognised (None), so another token
    authenticator may try it. Once it claims our issuer, every failure raises
    AuthenticationError with the reason for the audit log.

    Several verifying keys mean a key rotation in progress: tokens signed with any listed key
    verify, and dropping the old key from the list ends its grace period.

    What can never change for a given token string and this instance's keys (the signature and
    the shape, issuer and audience of its claims) is remembered for the last
    `verified_cache_size` tokens that passed, because a client sends the same token on every
    request and the ES256 check is most of the cost. Time windows and the existence of the
    ServiceAccount and bound object are checked on every call. Refusals are never remembered.
    """

    def __init__(
        self,
        verifying_keys: Mapping[str, PublicKey],
        issuer: str,
        audiences: tuple[str, ...],
        lookup: ObjectLookup,
        clock: Clock = _utc_now,
        leeway_seconds: int = MAX_LEEWAY_SECONDS,
        verified_cache_size: int = DEFAULT_VERIFIED_CACHE_SIZE,
    ) -> None:
        if not verifying_keys:
            raise ValueError("at least one verifying key is required")
        for kid, key in verifying_keys.items():
            _require_p256(key, f"verifying key {kid!r}", private=False)
            if kid != key_id(key):
                raise ValueError(f"verifying key listed as {kid!r} has key id {key_id(key)!r}")
        if not issuer:
            raise ValueError("issuer is required")
        if not 0 <= leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS}")
        self._keys = dict(verifying_keys)  # a copy: the key set cannot change under a running check
        self._issuer = issuer
        self._audiences = frozenset(_require_audiences(audiences, "audiences"))
        self._lookup = lookup
        self._clock = clock
        self._leeway = leeway_seconds
        self._es256 = ECAlgorithm(ECAlgorithm.SHA256)
        if verified_cache_size < 0:
            raise ValueError("verified_cache_size must not be negative")
        # Per instance, so a new key set (a new authenticator) never sees an old verdict; only
        # tokens that verified are stored, which bounds it to tokens we really issued.
        self._verified: OrderedDict[str, _VerifiedToken] = OrderedDict()
        self._verified_max = verified_cache_size
        self._verified_lock = threading.Lock()

    def authenticate(self, creds: Credentials) -> UserInfo | None:
        token = _bearer_token(creds.authorization)
        if token is None or len(token) > MAX_TOKEN_LENGTH or not _JWS_COMPACT.fullmatch(token):
            return None
        verified = self._remembered(token)
        if verified is None:
            header_b64, payload_b64, signature_b64 = token.split(".")
            # Parsed once: the signature check below covers exactly these bytes.
            claims = _json_object(payload_b64)
            if claims is None or claims.get("iss") != self._issuer:
                return None
            verified = self._verify(header_b64, payload_b64, signature_b64, claims)
            self._remember(token, verified)
        self._check_times(verified)
        self._check_objects_still_exist(verified.subject)
        return verified.subject.user_info()

    def _remembered(self, token: str) -> _VerifiedToken | None:
        with self._verified_lock:
            verified = self._verified.get(token)
            if verified is not None:
                self._verified.move_to_end(token)
            return verified

    def _remember(self, token: str, verified: _VerifiedToken) -> None:
        if self._verified_max == 0:
            return
        with self._verified_lock:
            self._verified[token] = verified
            if len(self._verified) > self._verified_max:
                self._verified.popitem(last=False)

    def _verify(self, header_b64: str, payload_b64: str, signature_b64: str,
                claims: Mapping[str, Any]) -> _VerifiedToken:
        """The signature and every claim check that does not depend on the time or the cluster's objects.

        `claims` is the payload segment parsed; it is trusted only once the signature over that
        segment has verified.
        """
        self._verify_signature(header_b64, payload_b64, signature_b64)
        self._check_audience(claims)
        exp, nbf, iat = (_numeric_date(claims, name) for name in ("exp", "nbf", "iat"))
        return _VerifiedToken(exp, nbf, iat, _Subject.from_claims(claims))

    def _verify_signature(self, header_b64: str, payload_b64: str, signature_b64: str) -> None:
        header = _json_object(header_b64)
        if header is None:
            raise AuthenticationError("serviceaccount: token header is not a JSON object")
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise AuthenticationError(f"serviceaccount: token algorithm {str(alg)[:20]!r} is not allowed (only ES256)")
        if "crit" in header:
            # We understand no JWS extensions, so RFC 7515 requires refusing any marked critical.
            raise AuthenticationError("serviceaccount: token header has unsupported critical extensions")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthenticationError(f"serviceaccount: token key id {str(kid)[:64]!r} is not a current verifying key")
        signature = _b64url_decode(signature_b64)
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if signature is None or not self._es256.verify(signing_input, key, signature):
            raise AuthenticationError("serviceaccount: token signature is invalid")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        aud = claims.get("aud")
        token_audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(token_audiences, list) or not all(isinstance(a, str) for a in token_audiences):
            raise AuthenticationError("serviceaccount: token has no valid aud claim")
        if self._audiences.isdisjoint(token_audiences):
            raise AuthenticationError(
                f"serviceaccount: token audiences {sorted(token_audiences)[:8]} are not accepted by this server"
            )

    def _check_times(self, token: _VerifiedToken) -> None:
        now = self._clock().timestamp()
        # Same comparisons as upstream (go-jose with leeway): skew between API servers sharing
        # a key must not fail fresh tokens, and an expired token gets at most `leeway` more.
        if now - self._leeway > token.exp:
            raise AuthenticationError("serviceaccount: token has expired")
        if now + self._leeway < token.nbf:
            raise AuthenticationError("serviceaccount: token is not valid yet (nbf is in the future)")
        if now + self._leeway < token.iat:
            raise AuthenticationError("serviceaccount: token was issued in the future (iat)")

    def _check_objects_still_exist(self, subject: _Subject) -> None:
        """A token dies with its ServiceAccount and its bound object, including when they are recreated."""
        ns = subject.namespace
        self._require_uid("ServiceAccount", ns, subject.sa_name, subject.sa_uid)
        if subject.bound is not None:
            bound_ns = "" if subject.bound.kind == "Node" else ns
            self._require_uid(subject.bound.kind, bound_ns, subject.bound.name, subject.bound.uid)

    def _require_uid(self, kind: str, namespace: str, name: str, claimed_uid: str) -> None:
        where = f"{namespace}/{name}" if namespace else name
        try:
            current_uid = self._lookup(kind, namespace, name)
        except Exception as exc:  # a lookup that breaks must refuse, not let the token through
            raise AuthenticationError(f"serviceaccount: could not look up {kind} {where}: {type(exc).__name__}") from exc
        if current_uid is None:
            raise AuthenticationError(f"serviceaccount: token has been invalidated: {kind} {where} no longer exists")
        if current_uid != claimed_uid:
            raise AuthenticationError(
                f"serviceaccount: {kind} {where} UID ({current_uid}) does not match claim ({claimed_uid})"
            )


@dataclass(frozen=True)
class _Subject:
    """Who a verified token speaks for, read from its `sub`, `jti` and `kubernetes.io` claims."""

    namespace: str
    sa_name: str
    sa_uid: str
    jti: str
    bound: BoundObject | None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> _Subject:
        private = claims.get(PRIVATE_CLAIM)
        if not isinstance(private, dict):
            raise AuthenticationError(f"serviceaccount: token has no {PRIVATE_CLAIM} claim")
        namespace = private.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            raise AuthenticationError("serviceaccount: token has no namespace claim")
        sa_name, sa_uid = _name_and_uid(private, "serviceaccount")
        if claims.get("sub") != service_account_username(namespace, sa_name):
            raise AuthenticationError("serviceaccount: token sub does not match its serviceaccount claim")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise AuthenticationError("serviceaccount: token has no jti claim")
        bound = [
            BoundObject(kind, *_name_and_uid(private, claim))
            for kind, claim in _CLAIM_FOR_KIND.items()
            if claim in private
        ]
        if len(bound) > 1:
            raise AuthenticationError("serviceaccount: token is bound to more than one object")
        return cls(namespace, sa_name, sa_uid, jti, bound[0] if bound else None)

    def user_info(self) -> UserInfo:
        extra: dict[str, tuple[str, ...]] = {}
        if self.bound is not None and self.bound.kind == "Pod":
            extra[POD_NAME_KEY] = (self.bound.name,)
            extra[POD_UID_KEY] = (self.bound.uid,)
        if self.bound is not None and self.bound.kind == "Node":
            extra[NODE_NAME_KEY] = (self.bound.name,)
            extra[NODE_UID_KEY] = (self.bound.uid,)
        extra[CREDENTIAL_ID_KEY] = (f"JTI={self.jti}",)
        return UserInfo(
            username=service_account_username(self.namespace, self.sa_name),
            uid=self.sa_uid,
            groups=(ALL_SERVICE_ACCOUNTS_GROUP, NAMESPACE_GROUP_PREFIX + self.namespace),
            extra=extra,
        )


@dataclass(frozen=True)
class _VerifiedToken:
    """A token whose signature and static claims passed; what is left to check on each use."""

    exp: float
    nbf: float
    iat: float
    subject: _Subject


def _name_and_uid(private: Mapping[str, Any], claim: str) -> tuple[str, str]:
    ref = private.get(claim)
    name = ref.get("name") if isinstance(ref, dict) else None
    uid = ref.get("uid") if isinstance(ref, dict) else None
    if not isinstance(name, str) or not name or not isinstance(uid, str) or not uid:
        raise AuthenticationError(f"serviceaccount: token {claim} claim needs a name and a uid")
    return name, uid


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer too large for a float
        number = math.nan
    # NaN or infinity would make the time comparisons pass or fail silently.
    if not math.isfinite(number):
        raise AuthenticationError(f"serviceaccount: token has no valid {name} claim")
    return number


def _bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    parts = authorization.split() if authorization else []
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def _b64url_decode(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _json_object(segment: str) -> dict[str, Any] | None:
    raw = _b64url_decode(segment)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def openid_configuration(issuer: str, jwks_uri: str) -> dict[str, Any]:
    """The document upstream serves at /.well-known/openid-configuration for the SA issuer.

    Only the fields a relying party needs to verify tokens: Kubernetes is not a login provider.
    """
    issuer_url = urlsplit(issuer)
    # The OIDC discovery rules for an issuer URL, with upstream's messages.
    if issuer_url.scheme != "https":
        raise ValueError(f"issuer URL must use https scheme, got: {issuer}")
    if issuer_url.query:
        raise ValueError(f"issuer URL may not include a query, got: {issuer}")
    if issuer_url.fragment:
        raise ValueError(f"issuer URL may not include a fragment, got: {issuer}")
    if urlsplit(jwks_uri).scheme != "https":
        raise ValueError(f"jwksURI requires https scheme, parsed as: {jwks_uri}")
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
    }


def jwks(public_keys: Iterable[PublicKey]) -> dict[str, Any]:
    """The JSON Web Key Set upstream serves at /openid/v1/jwks: every key a token may be signed with."""
    keys: list[dict[str, str]] = []
    seen: set[str] = set()
    for key in public_keys:
        _require_p256(key, "a published key", private=False)
        kid = key_id(key)
        if kid in seen:
            continue
        seen.add(kid)
        numbers = key.public_numbers()
        keys.append({
            "use": "sig",
            "kty": "EC",
            "kid": kid,
            "crv": "P-256",
            "alg": ALGORITHM,
            "x": _coordinate(numbers.x),
            "y": _coordinate(numbers.y),
        })
    if not keys:
        raise ValueError("no keys provided for validating keyset")
    return {"keys": keys}


def _coordinate(value: int) -> str:
    # RFC 7518 6.2.1.2: fixed length (32 bytes for P-256), so leading zero bytes are kept.
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode("ascii")

