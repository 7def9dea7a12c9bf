"""Who may talk to the API server at all: TLS policy and client-certificate authentication, over real sockets."""
from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.integration.certs import issue_client, load_ca, make_ca

pytestmark = pytest.mark.integration


def test_no_client_certificate_is_401_with_no_detail(cluster):
    with cluster.client(cert=None) as client:
        response = client.get("/api/v1/namespaces")
    assert response.status_code == 401
    assert response.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_bearer_token_without_an_issuer_is_401(cluster):
    with cluster.client(cert=None, headers={"Authorization": "Bearer not-a-token"}) as client:
        assert client.get("/api/v1/namespaces").status_code == 401


def test_certificate_from_another_ca_is_refused(cluster, tmp_path):
    cert = issue_client(tmp_path, "stranger", make_ca(), "securekube-admin", ("securekube:cluster-admins",))
    with pytest.raises(httpx.TransportError):
        with cluster.client(cert=cert) as client:
            client.get("/api/v1/namespaces")


def test_expired_certificate_is_refused(cluster, tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    cert = issue_client(tmp_path, "expired", load_ca(cluster.pki), "securekube-admin", ("securekube:cluster-admins",),
                        not_before=now - dt.timedelta(days=2), not_after=now - dt.timedelta(days=1))
    with pytest.raises(httpx.TransportError):
        with cluster.client(cert=cert) as client:
            client.get("/api/v1/namespaces")


def test_certificate_maps_cn_to_user_and_is_denied_without_rbac(cluster, tmp_path):
    cert = issue_client(tmp_path, "alice", load_ca(cluster.pki), "alice", ("dev-team",))
    with cluster.client(cert=cert) as client:
        response = client.get("/api/v1/namespaces/default/configmaps")
        assert response.status_code == 403
        assert response.json()["message"] == ('configmaps is forbidden: User "alice" cannot list resource "configmaps" '
                                              'in API group "" in the namespace "default"')
        # system:authenticated may read /version (system:public-info-viewer), as upstream.
        assert client.get("/version").status_code == 200


def test_rbac_grant_takes_effect_for_the_certificate_identity(cluster, tmp_path):
    cert = issue_client(tmp_path, "bob", load_ca(cluster.pki), "bob", ("readers",))
    with cluster.client() as admin:
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "readers-view", "namespace": "default"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "Group", "name": "readers", "apiGroup": "rbac.authorization.k8s.io"}]}
        assert admin.post("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", json=binding).status_code == 201
    with cluster.client(cert=cert) as client:
        assert client.get("/api/v1/namespaces/default/configmaps").status_code == 200
        assert client.get("/api/v1/namespaces/kube-system/configmaps").status_code == 403
        assert client.get("/api/v1/namespaces/default/secrets").status_code == 403  # view never reads secrets


def _handshake(cluster, configure) -> bool:
    ctx = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    ctx.load_cert_chain(str(cluster.pki / "admin.crt"), str(cluster.pki / "admin.key"))
    configure(ctx)
    try:
        with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                return True
    except (ssl.SSLError, ConnectionError):
        return False


def test_tls_policy_only_ecdhe_aead_on_tls12_or_newer(cluster):
    def tls12_ecdhe_gcm(ctx):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")

    def tls12_cbc(ctx):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA")

    def tls13(ctx):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    assert _handshake(cluster, tls13)
    assert _handshake(cluster, tls12_ecdhe_gcm)
    assert not _handshake(cluster, tls12_cbc)
    # TLS 1.1 and older: the server context's minimum is checked in tests/unit/apiserver/test_tls.py
    # (this machine's OpenSSL client no longer offers them, so a handshake here could not fail).


def test_revoked_certificate_is_refused_even_on_an_open_connection(cluster, tmp_path):
    crt, key = issue_client(tmp_path, "frank", load_ca(cluster.pki), "frank", ("securekube:cluster-admins",))
    serial = x509.load_pem_x509_certificate(Path(crt).read_bytes()).serial_number
    with cluster.client(cert=(crt, key)) as frank:
        assert frank.get("/api/v1/namespaces").status_code == 200
        result = subprocess.run([sys.executable, "-m", "securekube.cli.main", "pki", "revoke", "--dir", str(cluster.pki),
                                 hex(serial)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "revoked" in result.stdout, result.stderr
        deadline = time.monotonic() + 15
        status = 200
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            status = frank.get("/api/v1/namespaces").status_code  # same keep-alive connection
        assert status == 401
    with cluster.client() as admin:
        assert admin.get("/api/v1/namespaces").status_code == 200
