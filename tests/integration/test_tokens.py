"""ServiceAccount tokens end to end: TokenRequest, use, refusal cases over real TLS, TokenReview, OIDC discovery."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from securekube.authn.serviceaccount import key_id
from tests.integration.cluster import restricted_pod_yaml

pytestmark = pytest.mark.integration
ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def robot(cluster):
    cluster.kubectl("create", "namespace", "tok")
    cluster.kubectl("-n", "tok", "create", "serviceaccount", "robot")
    cluster.kubectl("-n", "tok", "create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps")
    cluster.kubectl("-n", "tok", "create", "rolebinding", "robot-reads", "--role=cm-reader",
                    "--serviceaccount=tok:robot")
    return cluster


def bearer(cluster, token: str):
    return cluster.client(cert=None, headers={"Authorization": f"Bearer {token}"})


def sa_claims(cluster, **overrides) -> dict:
    with cluster.client() as admin:
        sa = admin.get("/api/v1/namespaces/tok/serviceaccounts/robot").json()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": [ISSUER], "sub": "system:serviceaccount:tok:robot", "iat": now, "nbf": now,
              "exp": now + 3600, "jti": "test",
              "kubernetes.io": {"namespace": "tok", "serviceaccount": {"name": "robot", "uid": sa["metadata"]["uid"]}}}
    claims.update(overrides)
    return claims


def signing_key(cluster):
    pem = (cluster.pki / "sa.key").read_bytes()
    return serialization.load_pem_private_key(pem, password=None)


def test_kubectl_create_token_authenticates_and_is_authorized(robot):
    token = robot.kubectl("-n", "tok", "create", "token", "robot").stdout.strip()
    with bearer(robot, token) as client:
        assert client.get("/api/v1/namespaces/tok/configmaps").status_code == 200
        denied = client.get("/api/v1/namespaces/tok/secrets")
        assert denied.status_code == 403
        assert 'User "system:serviceaccount:tok:robot" cannot list resource "secrets"' in denied.json()["message"]


def test_official_python_client_with_a_token(robot):
    from kubernetes import client as k8s

    token = robot.kubectl("-n", "tok", "create", "token", "robot").stdout.strip()
    configuration = k8s.Configuration(host=robot.url, api_key={"authorization": f"Bearer {token}"})
    configuration.ssl_ca_cert = str(robot.pki / "ca.crt")
    with k8s.ApiClient(configuration) as api_client:
        items = k8s.CoreV1Api(api_client).list_namespaced_config_map("tok").items
    assert isinstance(items, list)


def test_expiration_below_ten_minutes_is_422(robot):
    with robot.client() as admin:
        response = admin.post("/api/v1/namespaces/tok/serviceaccounts/robot/token",
                              json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                    "spec": {"expirationSeconds": 599}})
    assert response.status_code == 422
    assert "less than 10 minutes" in response.json()["message"]


def test_token_bound_to_a_pod_dies_with_the_pod(robot):
    robot.kubectl("apply", "-f", "-", input=restricted_pod_yaml("holder", "tok"))
    token = robot.kubectl("-n", "tok", "create", "token", "robot", "--bound-object-kind=Pod",
                          "--bound-object-name=holder").stdout.strip()
    with bearer(robot, token) as client:
        assert client.get("/api/v1/namespaces/tok/configmaps").status_code == 200
        robot.kubectl("-n", "tok", "delete", "pod", "holder")
        assert client.get("/api/v1/namespaces/tok/configmaps").status_code == 401


def test_token_dies_with_its_service_account(robot):
    robot.kubectl("-n", "tok", "create", "serviceaccount", "shortlived")
    token = robot.kubectl("-n", "tok", "create", "token", "shortlived").stdout.strip()
    with bearer(robot, token) as client:
        assert client.get("/version").status_code == 200
        robot.kubectl("-n", "tok", "delete", "serviceaccount", "shortlived")
        robot.kubectl("-n", "tok", "create", "serviceaccount", "shortlived")  # same name, new uid
        assert client.get("/version").status_code == 401


def _unsigned(claims: dict) -> str:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def forged_tokens(cluster) -> dict[str, str]:
    key = signing_key(cluster)
    kid = key_id(key.public_key())
    public_pem = (cluster.pki / "sa.pub").read_bytes()
    stranger = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    hs256_header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": kid}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(sa_claims(cluster)).encode()).rstrip(b"=")
    mac = hmac.new(public_pem, hs256_header + b"." + payload, hashlib.sha256).digest()
    hs256 = (hs256_header + b"." + payload + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    return {
        "alg none": _unsigned(sa_claims(cluster)),
        "HS256 keyed with the public key": hs256,
        "other issuer": jwt.encode(sa_claims(cluster, iss="https://evil.example"), key, "ES256", headers={"kid": kid}),
        "other audience": jwt.encode(sa_claims(cluster, aud=["vault"]), key, "ES256", headers={"kid": kid}),
        "expired": jwt.encode(sa_claims(cluster, iat=now - 7200, nbf=now - 7200, exp=now - 3600), key, "ES256",
                              headers={"kid": kid}),
        "not yet valid": jwt.encode(sa_claims(cluster, nbf=now + 3600, iat=now + 3600, exp=now + 7200), key, "ES256",
                                    headers={"kid": kid}),
        "unknown kid": jwt.encode(sa_claims(cluster), stranger, "ES256", headers={"kid": key_id(stranger.public_key())}),
        "signed by a stranger with our kid": jwt.encode(sa_claims(cluster), stranger, "ES256", headers={"kid": kid}),
    }


def test_every_forged_token_is_a_bare_401(robot):
    for case, token in forged_tokens(robot).items():
        with bearer(robot, token) as client:
            response = client.get("/api/v1/namespaces/tok/configmaps")
        assert response.status_code == 401, case
        assert response.json()["message"] == "Unauthorized", case


def test_the_genuine_control_token_works(robot):
    key = signing_key(robot)
    token = jwt.encode(sa_claims(robot), key, "ES256", headers={"kid": key_id(key.public_key())})
    with bearer(robot, token) as client:
        assert client.get("/api/v1/namespaces/tok/configmaps").status_code == 200


def test_token_review_and_oidc_discovery(robot):
    token = robot.kubectl("-n", "tok", "create", "token", "robot", "--audience=vault").stdout.strip()
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    with robot.client() as admin:
        status = admin.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()["status"]
        assert status["authenticated"] is False  # not valid for the API's audience
        review["spec"]["audiences"] = ["vault"]
        status = admin.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()["status"]
        assert status["authenticated"] is True and status["audiences"] == ["vault"]
        assert status["user"]["username"] == "system:serviceaccount:tok:robot"
    api_token = robot.kubectl("-n", "tok", "create", "token", "robot").stdout.strip()
    with bearer(robot, api_token) as client:  # system:serviceaccounts may read discovery documents
        config = client.get("/.well-known/openid-configuration").json()
        assert config["issuer"] == ISSUER and config["id_token_signing_alg_values_supported"] == ["ES256"]
        keys = client.get("/openid/v1/jwks").json()["keys"]
        assert keys[0]["kid"] == key_id(signing_key(robot).public_key())


def test_signing_key_rotation_keeps_old_tokens_valid(robot):
    old_token = robot.kubectl("-n", "tok", "create", "token", "robot").stdout.strip()
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    result = subprocess.run([sys.executable, "-m", "securekube.cli.main", "pki", "rotate-sa-key", "--dir",
                             str(robot.pki)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 15
    new_token = old_token
    while jwt.get_unverified_header(new_token)["kid"] == old_kid and time.monotonic() < deadline:
        time.sleep(0.5)
        new_token = robot.kubectl("-n", "tok", "create", "token", "robot").stdout.strip()
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    for token in (old_token, new_token):  # the retired key still verifies during its grace period
        with bearer(robot, token) as client:
            assert client.get("/api/v1/namespaces/tok/configmaps").status_code == 200
    with bearer(robot, new_token) as client:
        kids = {k["kid"] for k in client.get("/openid/v1/jwks").json()["keys"]}
    assert old_kid in kids and jwt.get_unverified_header(new_token)["kid"] in kids
