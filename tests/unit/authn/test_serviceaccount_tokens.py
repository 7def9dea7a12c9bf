"""ServiceAccount tokens: what TokenIssuer signs, what the authenticator accepts and refuses, OIDC documents.

The malicious tokens are built by hand (base64url + JSON + our own signatures) so that a
refusal is proven against exactly the bytes an attacker would send.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from securekube.authn.bootstrap import BootstrapTokenAuthenticator
from securekube.authn.interfaces import AuthenticationError, Credentials, UserInfo
from securekube.authn.serviceaccount import (
    DEFAULT_VERIFIED_CACHE_SIZE,
    BoundObject,
    ServiceAccountTokenAuthenticator,
    TokenIssuer,
    jwks,
    key_id,
    openid_configuration,
)
from securekube.authn.union import UnionAuthenticator
from securekube.pki.keys import generate_private_key, public_key_pem
from tests.helpers import FakeClock

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
NS, SA, SA_UID = "team-a", "builder", "sa-uid-1"
POD = BoundObject("Pod", "builder-7f9c", "pod-uid-1")
SECRET = BoundObject("Secret", "builder-token", "secret-uid-1")
NODE = BoundObject("Node", "worker-1", "node-uid-1")


class Objects:
    """The cluster's current objects as the authenticator's lookup callback sees them: kind/ns/name -> uid."""

    def __init__(self) -> None:
        self.uids: dict[tuple[str, str, str], str] = {
            ("ServiceAccount", NS, SA): SA_UID,
            ("Pod", NS, POD.name): POD.uid,
            ("Secret", NS, SECRET.name): SECRET.uid,
            ("Node", "", NODE.name): NODE.uid,
        }

    def lookup(self, kind: str, namespace: str, name: str) -> str | None:
        return self.uids.get((kind, namespace, name))


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return generate_private_key()


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return generate_private_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def objects() -> Objects:
    return Objects()


@pytest.fixture
def issuer(signing_key: ec.EllipticCurvePrivateKey, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(signing_key, key_id(signing_key.public_key()), ISSUER, API_AUDIENCES, clock=clock)


def authenticator_for(
    clock: FakeClock, objects: Objects, *keys: ec.EllipticCurvePrivateKey, cache_size: int = DEFAULT_VERIFIED_CACHE_SIZE
) -> ServiceAccountTokenAuthenticator:
    verifying = {key_id(k.public_key()): k.public_key() for k in keys}
    return ServiceAccountTokenAuthenticator(
        verifying, ISSUER, API_AUDIENCES, objects.lookup, clock=clock, verified_cache_size=cache_size
    )


@pytest.fixture(params=[DEFAULT_VERIFIED_CACHE_SIZE, 0], ids=["cached", "uncached"])
def authn(
    request: pytest.FixtureRequest, signing_key: ec.EllipticCurvePrivateKey, clock: FakeClock, objects: Objects
) -> ServiceAccountTokenAuthenticator:
    # Every behaviour must be the same whether or not signature verdicts are remembered.
    return authenticator_for(clock, objects, signing_key, cache_size=request.param)


def bearer(token: str) -> Credentials:
    return Credentials(client_cert_chain=(), authorization=f"Bearer {token}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj).encode())


def decode_segment(seg: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def valid_claims(**overrides: Any) -> dict[str, Any]:
    """The claims TokenIssuer would write for a pod-bound token issued at NOW."""
    now = int(NOW.timestamp())
    claims: dict[str, Any] = {
        "aud": list(API_AUDIENCES),
        "exp": now + 3600,
        "iat": now,
        "iss": ISSUER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": NS,
            "pod": {"name": POD.name, "uid": POD.uid},
            "serviceaccount": {"name": SA, "uid": SA_UID},
        },
        "nbf": now,
        "sub": f"system:serviceaccount:{NS}:{SA}",
    }
    claims.update(overrides)
    return claims


def es256_token(key: ec.EllipticCurvePrivateKey, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A token signed by hand with ES256 (raw r||s), with any header and claims we like."""
    header = {"alg": "ES256", "kid": key_id(key.public_key())} if header is None else header
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256).sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def refusal(authn: ServiceAccountTokenAuthenticator, token: str) -> str:
    """The audit reason for a refused token; fails the test if the token is accepted or passed over."""
    with pytest.raises(AuthenticationError) as info:
        authn.authenticate(bearer(token))
    reason = str(info.value)
    # The reason goes to the audit log: it must never carry the credential itself.
    signature = token.rsplit(".", 1)[-1]
    assert token not in reason
    assert not signature or signature not in reason
    return reason


# --- issuing ---------------------------------------------------------------------------------


def test_issued_token_has_upstream_header_and_claims(issuer: TokenIssuer, signing_key: ec.EllipticCurvePrivateKey) -> None:
    token, expiry = issuer.issue(NS, SA, SA_UID, bound=POD)
    header_seg, payload_seg, _ = token.split(".")
    assert decode_segment(header_seg) == {"alg": "ES256", "kid": key_id(signing_key.public_key())}
    claims = decode_segment(payload_seg)
    now = int(NOW.timestamp())
    assert set(claims) == {"aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "system:serviceaccount:team-a:builder"
    assert claims["aud"] == [ISSUER]
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (now, now, now + 3600)
    assert uuid.UUID(claims["jti"]).version == 4
    assert claims["kubernetes.io"] == {
        "namespace": NS,
        "pod": {"name": POD.name, "uid": POD.uid},
        "serviceaccount": {"name": SA, "uid": SA_UID},
    }
    assert expiry == NOW + dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("bound", "claim"),
    [(SECRET, "secret"), (NODE, "node"), (None, None)],
)
def test_bound_object_claim_per_kind(issuer: TokenIssuer, bound: BoundObject | None, claim: str | None) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, bound=bound)
    private = decode_segment(token.split(".")[1])["kubernetes.io"]
    expected: dict[str, Any] = {"namespace": NS, "serviceaccount": {"name": SA, "uid": SA_UID}}
    if bound is not None:
        expected[claim] = {"name": bound.name, "uid": bound.uid}
    assert private == expected


def test_every_token_gets_its_own_jti(issuer: TokenIssuer) -> None:
    first, _ = issuer.issue(NS, SA, SA_UID)
    second, _ = issuer.issue(NS, SA, SA_UID)
    assert decode_segment(first.split(".")[1])["jti"] != decode_segment(second.split(".")[1])["jti"]


def test_requested_audiences_replace_the_api_audiences(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, audiences=["vault", "https://sts.example"])
    assert decode_segment(token.split(".")[1])["aud"] == ["vault", "https://sts.example"]


def test_expiration_below_ten_minutes_is_refused_with_upstream_message(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="^may not specify a duration less than 10 minutes$"):
        issuer.issue(NS, SA, SA_UID, expiration_seconds=599)
    _, expiry = issuer.issue(NS, SA, SA_UID, expiration_seconds=600)
    assert expiry == NOW + dt.timedelta(minutes=10)


def test_expiration_above_upstream_limit_is_refused(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match=r"^may not specify a duration larger than 2\^32 seconds$"):
        issuer.issue(NS, SA, SA_UID, expiration_seconds=2**32 + 1)


def test_long_expiration_is_capped_at_48_hours(issuer: TokenIssuer) -> None:
    token, expiry = issuer.issue(NS, SA, SA_UID, expiration_seconds=7 * 24 * 3600)
    assert expiry == NOW + dt.timedelta(hours=48)
    assert decode_segment(token.split(".")[1])["exp"] == int(NOW.timestamp()) + 48 * 3600


def test_issuer_refuses_a_key_id_not_derived_from_its_key(signing_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError, match="key_id"):
        TokenIssuer(signing_key, "my-key", ISSUER, API_AUDIENCES)


def test_issuer_repr_shows_no_key_material(issuer: TokenIssuer, signing_key: ec.EllipticCurvePrivateKey) -> None:
    text = repr(issuer)
    assert str(signing_key.private_numbers().private_value) not in text
    assert ISSUER in text


# --- key ids ---------------------------------------------------------------------------------


def test_key_id_matches_known_answer() -> None:
    # Known answer computed with openssl for the P-256 key whose private scalar is 1:
    # openssl ec -pubout -outform DER | openssl dgst -sha256 -binary | base64url
    generator_key = ec.derive_private_key(1, ec.SECP256R1()).public_key()
    assert key_id(generator_key) == "XNJS-wzokyQ2-vjM0QQJgbie5K1rn-niorfnGqyyfNM"


# --- authenticating good tokens --------------------------------------------------------------


def test_pod_bound_token_authenticates_with_upstream_user_info(issuer: TokenIssuer, authn: ServiceAccountTokenAuthenticator) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, bound=POD)
    jti = decode_segment(token.split(".")[1])["jti"]
    assert authn.authenticate(bearer(token)) == UserInfo(
        username="system:serviceaccount:team-a:builder",
        uid=SA_UID,
        groups=("system:serviceaccounts", "system:serviceaccounts:team-a"),
        extra={
            "authentication.kubernetes.io/pod-name": (POD.name,),
            "authentication.kubernetes.io/pod-uid": (POD.uid,),
            "authentication.kubernetes.io/credential-id": (f"JTI={jti}",),
        },
    )


def test_node_bound_token_carries_node_extras(issuer: TokenIssuer, authn: ServiceAccountTokenAuthenticator) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, bound=NODE)
    user = authn.authenticate(bearer(token))
    assert user is not None
    assert user.extra["authentication.kubernetes.io/node-name"] == (NODE.name,)
    assert user.extra["authentication.kubernetes.io/node-uid"] == (NODE.uid,)
    assert "authentication.kubernetes.io/pod-name" not in user.extra


def test_secret_bound_and_unbound_tokens_carry_only_the_credential_id(
    issuer: TokenIssuer, authn: ServiceAccountTokenAuthenticator
) -> None:
    for bound in (SECRET, None):
        token, _ = issuer.issue(NS, SA, SA_UID, bound=bound)
        user = authn.authenticate(bearer(token))
        assert user is not None and user.username == "system:serviceaccount:team-a:builder"
        assert set(user.extra) == {"authentication.kubernetes.io/credential-id"}


def test_token_for_a_requested_audience_needs_that_audience_accepted(
    issuer: TokenIssuer, signing_key: ec.EllipticCurvePrivateKey, clock: FakeClock, objects: Objects
) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, audiences=["vault"])
    vault = ServiceAccountTokenAuthenticator(
        {key_id(signing_key.public_key()): signing_key.public_key()}, ISSUER, ("vault",), objects.lookup, clock=clock
    )
    assert vault.authenticate(bearer(token)) is not None
    api = authenticator_for(clock, objects, signing_key)
    assert "audiences" in refusal(api, token)


def test_bearer_scheme_is_case_insensitive(issuer: TokenIssuer, authn: ServiceAccountTokenAuthenticator) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID)
    assert authn.authenticate(Credentials((), f"bearer {token}")) is not None


# --- credentials that are not ours are passed over ---------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer abcdef.0123456789abcdef", "Bearer not-a-jwt", "Bearer a.b.c"],
)
def test_credentials_that_are_not_service_account_tokens_are_not_recognised(
    authn: ServiceAccountTokenAuthenticator, authorization: str | None
) -> None:
    assert authn.authenticate(Credentials((), authorization)) is None


def test_token_from_another_issuer_is_passed_over_and_ends_unauthenticated(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey, clock: FakeClock
) -> None:
    # Signed with our own key, so only the issuer check can keep it out.
    token = es256_token(signing_key, valid_claims(iss="https://other-cluster.example"))
    assert authn.authenticate(bearer(token)) is None
    union = UnionAuthenticator(authn, BootstrapTokenAuthenticator(lambda name: None, clock=clock))
    assert union.authenticate(bearer(token)) is None


# --- forged and invalid tokens are refused ---------------------------------------------------


def test_alg_none_is_refused(authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey) -> None:
    kid = key_id(signing_key.public_key())
    for alg in ("none", "None", "NONE"):
        unsigned = f"{segment({'alg': alg, 'kid': kid})}.{segment(valid_claims())}."
        assert "algorithm" in refusal(authn, unsigned)
    # ... also when something that looks like a signature is attached.
    with_junk = f"{segment({'alg': 'none', 'kid': kid})}.{segment(valid_claims())}.{b64url(b'x' * 64)}"
    assert "algorithm" in refusal(authn, with_junk)


def test_hs256_keyed_with_the_public_key_is_refused(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    # The classic confusion attack: the public key (which anyone can fetch from the JWKS) used as an HMAC secret.
    kid = key_id(signing_key.public_key())
    for secret in (
        public_key_pem(signing_key.public_key()),
        signing_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    ):
        signing_input = f"{segment({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{segment(valid_claims())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert "algorithm 'HS256' is not allowed" in refusal(authn, f"{signing_input}.{b64url(mac)}")
        # Claiming ES256 in the header does not make an HMAC verify either.
        relabelled = f"{segment({'alg': 'ES256', 'kid': kid})}.{segment(valid_claims())}"
        mac = hmac.new(secret, relabelled.encode(), hashlib.sha256).digest()
        assert "signature is invalid" in refusal(authn, f"{relabelled}.{b64url(mac)}")


@pytest.mark.parametrize("alg", ["ES384", "RS256", "PS256", "EdDSA", "es256"])
def test_any_algorithm_other_than_es256_is_refused(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey, alg: str
) -> None:
    token = es256_token(signing_key, valid_claims(), header={"alg": alg, "kid": key_id(signing_key.public_key())})
    assert "algorithm" in refusal(authn, token)


def test_tampered_claims_fail_the_signature(issuer: TokenIssuer, authn: ServiceAccountTokenAuthenticator) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID)
    assert authn.authenticate(bearer(token)) is not None  # the genuine token is known (and cached) first
    header_seg, payload_seg, signature_seg = token.split(".")
    claims = decode_segment(payload_seg)
    claims["kubernetes.io"]["namespace"] = "kube-system"
    claims["sub"] = f"system:serviceaccount:kube-system:{SA}"
    tampered = f"{header_seg}.{segment(claims)}.{signature_seg}"
    for _ in range(2):  # and a refusal is not remembered as anything else
        assert "signature is invalid" in refusal(authn, tampered)


def test_wrong_audience_is_refused(authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey) -> None:
    for aud in (["https://other.example"], "https://other.example", [], 42):
        assert "aud" in refusal(authn, es256_token(signing_key, valid_claims(aud=aud)))


def test_single_string_audience_is_accepted(authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey) -> None:
    assert authn.authenticate(bearer(es256_token(signing_key, valid_claims(aud=ISSUER)))) is not None


def test_expired_token_is_refused_after_the_leeway(
    issuer: TokenIssuer, authn: ServiceAccountTokenAuthenticator, clock: FakeClock
) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, expiration_seconds=600)
    clock.advance(600 + 60)  # at the end of upstream's one-minute skew allowance: still accepted
    assert authn.authenticate(bearer(token)) is not None
    clock.advance(1)
    assert "expired" in refusal(authn, token)


def test_not_yet_valid_token_is_refused_beyond_the_leeway(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    now = int(NOW.timestamp())
    within = es256_token(signing_key, valid_claims(nbf=now + 60, iat=now + 60))
    assert authn.authenticate(bearer(within)) is not None
    assert "not valid yet" in refusal(authn, es256_token(signing_key, valid_claims(nbf=now + 61)))
    assert "issued in the future" in refusal(authn, es256_token(signing_key, valid_claims(iat=now + 3600)))


def test_leeway_is_configurable_down_to_zero_but_not_above_a_minute(
    signing_key: ec.EllipticCurvePrivateKey, clock: FakeClock, objects: Objects
) -> None:
    keys = {key_id(signing_key.public_key()): signing_key.public_key()}
    strict = ServiceAccountTokenAuthenticator(keys, ISSUER, API_AUDIENCES, objects.lookup, clock=clock, leeway_seconds=0)
    now = int(NOW.timestamp())
    assert "not valid yet" in refusal(strict, es256_token(signing_key, valid_claims(nbf=now + 1)))
    with pytest.raises(ValueError, match="leeway"):
        ServiceAccountTokenAuthenticator(keys, ISSUER, API_AUDIENCES, objects.lookup, leeway_seconds=61)


def test_unknown_key_id_is_refused(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey
) -> None:
    assert "key id" in refusal(authn, es256_token(other_key, valid_claims()))
    no_kid = es256_token(signing_key, valid_claims(), header={"alg": "ES256"})
    assert "key id" in refusal(authn, no_kid)
    # Another key's signature under our kid is just a bad signature.
    forged = es256_token(other_key, valid_claims(), header={"alg": "ES256", "kid": key_id(signing_key.public_key())})
    assert "signature is invalid" in refusal(authn, forged)


def test_critical_header_extensions_are_refused(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    header = {"alg": "ES256", "kid": key_id(signing_key.public_key()), "b64": False, "crit": ["b64"]}
    assert "critical" in refusal(authn, es256_token(signing_key, valid_claims(), header=header))


def _without(claims: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    target = claims
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return claims


@pytest.mark.parametrize(
    "path",
    [
        ("aud",), ("exp",), ("nbf",), ("iat",), ("jti",), ("sub",), ("kubernetes.io",),
        ("kubernetes.io", "namespace"), ("kubernetes.io", "serviceaccount"),
        ("kubernetes.io", "serviceaccount", "uid"), ("kubernetes.io", "pod", "uid"),
    ],
    ids=lambda path: ".".join(path),
)
def test_token_missing_a_claim_is_refused(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey, path: tuple[str, ...]
) -> None:
    refusal(authn, es256_token(signing_key, _without(valid_claims(), path)))


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "never"), ("exp", True), ("exp", float("nan")), ("exp", float("inf")), ("exp", 10**400), ("jti", "")],
)
def test_malformed_claim_values_are_refused(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey, claim: str, value: Any
) -> None:
    assert claim in refusal(authn, es256_token(signing_key, valid_claims(**{claim: value})))


def test_sub_must_name_the_service_account_of_the_private_claim(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    token = es256_token(signing_key, valid_claims(sub="system:serviceaccount:kube-system:admin"))
    assert "sub" in refusal(authn, token)


def test_token_bound_to_two_objects_is_refused(
    authn: ServiceAccountTokenAuthenticator, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    claims = valid_claims()
    claims["kubernetes.io"]["secret"] = {"name": SECRET.name, "uid": SECRET.uid}
    assert "more than one" in refusal(authn, es256_token(signing_key, claims))


# --- tokens die with their objects -----------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "deleted"),
    [
        (POD, ("Pod", NS, POD.name)),
        (SECRET, ("Secret", NS, SECRET.name)),
        (NODE, ("Node", "", NODE.name)),
        (POD, ("ServiceAccount", NS, SA)),
    ],
    ids=["pod", "secret", "node", "serviceaccount"],
)
def test_token_is_refused_once_its_object_is_deleted(
    issuer: TokenIssuer,
    authn: ServiceAccountTokenAuthenticator,
    objects: Objects,
    bound: BoundObject,
    deleted: tuple[str, str, str],
) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, bound=bound)
    assert authn.authenticate(bearer(token)) is not None
    del objects.uids[deleted]
    reason = refusal(authn, token)
    assert "no longer exists" in reason and deleted[0] in reason


@pytest.mark.parametrize(
    "recreated",
    [("ServiceAccount", NS, SA), ("Pod", NS, POD.name)],
    ids=["serviceaccount", "pod"],
)
def test_token_is_refused_when_its_object_was_recreated_with_a_new_uid(
    issuer: TokenIssuer, authn: ServiceAccountTokenAuthenticator, objects: Objects, recreated: tuple[str, str, str]
) -> None:
    token, _ = issuer.issue(NS, SA, SA_UID, bound=POD)
    objects.uids[recreated] = "uid-of-the-new-object"
    assert "does not match claim" in refusal(authn, token)


def test_a_failing_lookup_refuses(issuer: TokenIssuer, signing_key: ec.EllipticCurvePrivateKey, clock: FakeClock) -> None:
    def broken(kind: str, namespace: str, name: str) -> str | None:
        raise OSError("storage is down")

    keys = {key_id(signing_key.public_key()): signing_key.public_key()}
    authn = ServiceAccountTokenAuthenticator(keys, ISSUER, API_AUDIENCES, broken, clock=clock)
    token, _ = issuer.issue(NS, SA, SA_UID)
    assert "could not look up ServiceAccount" in refusal(authn, token)


# --- key rotation ------------------------------------------------------------------------------


def test_rotation_old_tokens_verify_while_the_old_key_is_listed(
    signing_key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey, clock: FakeClock, objects: Objects
) -> None:
    old_issuer = TokenIssuer(signing_key, key_id(signing_key.public_key()), ISSUER, API_AUDIENCES, clock=clock)
    new_issuer = TokenIssuer(other_key, key_id(other_key.public_key()), ISSUER, API_AUDIENCES, clock=clock)
    old_token, _ = old_issuer.issue(NS, SA, SA_UID)
    new_token, _ = new_issuer.issue(NS, SA, SA_UID)

    during_grace = authenticator_for(clock, objects, other_key, signing_key)
    assert during_grace.authenticate(bearer(old_token)) is not None
    assert during_grace.authenticate(bearer(new_token)) is not None

    after_grace = authenticator_for(clock, objects, other_key)
    assert after_grace.authenticate(bearer(new_token)) is not None
    assert "key id" in refusal(after_grace, old_token)


def test_authenticator_refuses_misconfigured_keys(signing_key: ec.EllipticCurvePrivateKey, objects: Objects) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ServiceAccountTokenAuthenticator({}, ISSUER, API_AUDIENCES, objects.lookup)
    with pytest.raises(ValueError, match="key id"):
        ServiceAccountTokenAuthenticator({"renamed": signing_key.public_key()}, ISSUER, API_AUDIENCES, objects.lookup)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ValueError, match="P-256"):
        ServiceAccountTokenAuthenticator({key_id(p384): p384}, ISSUER, API_AUDIENCES, objects.lookup)


# --- OIDC discovery ----------------------------------------------------------------------------


def test_openid_configuration_document() -> None:
    assert openid_configuration("https://kubernetes.default.svc", "https://10.0.0.1:6443/openid/v1/jwks") == {
        "issuer": "https://kubernetes.default.svc",
        "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }


@pytest.mark.parametrize(
    ("issuer_url", "jwks_uri", "message"),
    [
        ("http://kubernetes.default.svc", "https://h/openid/v1/jwks", "issuer URL must use https scheme"),
        ("https://k8s.example?x=1", "https://h/openid/v1/jwks", "issuer URL may not include a query"),
        ("https://k8s.example#frag", "https://h/openid/v1/jwks", "issuer URL may not include a fragment"),
        ("https://k8s.example", "http://h/openid/v1/jwks", "jwksURI requires https scheme"),
    ],
)
def test_openid_configuration_refuses_urls_upstream_refuses(issuer_url: str, jwks_uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        openid_configuration(issuer_url, jwks_uri)


def test_jwks_known_answer_for_the_curve_generator() -> None:
    generator_key = ec.derive_private_key(1, ec.SECP256R1()).public_key()
    gx = bytes.fromhex("6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296")
    gy = bytes.fromhex("4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5")
    assert jwks([generator_key]) == {
        "keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": "XNJS-wzokyQ2-vjM0QQJgbie5K1rn-niorfnGqyyfNM",
            "crv": "P-256",
            "alg": "ES256",
            "x": b64url(gx),
            "y": b64url(gy),
        }]
    }


def test_jwks_coordinates_keep_leading_zero_bytes() -> None:
    scalar = 2
    while ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_numbers().x >= 1 << 248:
        scalar += 1
    key = ec.derive_private_key(scalar, ec.SECP256R1()).public_key()
    x = jwks([key])["keys"][0]["x"]
    assert len(base64.urlsafe_b64decode(x + "=")) == 32 and len(x) == 43


def test_jwks_lists_every_rotation_key_once_and_refuses_none(
    signing_key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey
) -> None:
    keys = jwks([signing_key.public_key(), other_key.public_key(), signing_key.public_key()])["keys"]
    assert [k["kid"] for k in keys] == [key_id(signing_key.public_key()), key_id(other_key.public_key())]
    with pytest.raises(ValueError, match="no keys provided"):
        jwks([])


def test_relying_party_verifies_our_token_with_the_published_jwks(
    signing_key: ec.EllipticCurvePrivateKey, other_key: ec.EllipticCurvePrivateKey
) -> None:
    # A third party (here pyjwt's own JWK support) needs nothing but the discovery documents.
    issuer = TokenIssuer(signing_key, key_id(signing_key.public_key()), ISSUER, ("vault",))
    token, _ = issuer.issue(NS, SA, SA_UID)
    published = {k["kid"]: k for k in jwks([other_key.public_key(), signing_key.public_key()])["keys"]}
    jwk = jwt.PyJWK(published[jwt.get_unverified_header(token)["kid"]])
    claims = jwt.decode(token, jwk, algorithms=["ES256"], audience="vault", issuer=ISSUER)
    assert claims["sub"] == "system:serviceaccount:team-a:builder"
