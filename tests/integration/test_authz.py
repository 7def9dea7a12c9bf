"""Authorization as a user sees it: kubectl auth can-i/whoami, impersonation, review APIs, over real TLS."""
from __future__ import annotations

import pytest

from tests.integration.certs import issue_client, load_ca

pytestmark = pytest.mark.integration

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def test_auth_can_i_and_whoami(cluster):
    assert cluster.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    whoami = cluster.kubectl("auth", "whoami").stdout
    assert "securekube-admin" in whoami and "securekube:cluster-admins" in whoami
    assert "system:masters" not in whoami  # CIS 5.1.7


def test_can_i_as_another_user_follows_their_bindings(cluster):
    cluster.kubectl("create", "namespace", "imp")
    cluster.kubectl("-n", "imp", "create", "role", "pod-getter", "--verb=get", "--resource=pods")
    cluster.kubectl("-n", "imp", "create", "rolebinding", "carol-gets", "--role=pod-getter", "--user=carol")
    allowed = cluster.kubectl("auth", "can-i", "get", "pods", "-n", "imp", "--as", "carol")
    assert allowed.stdout.strip() == "yes"
    denied = cluster.kubectl("auth", "can-i", "list", "pods", "-n", "imp", "--as", "carol", check=False)
    assert denied.returncode == 1 and denied.stdout.strip() == "no"
    forbidden = cluster.kubectl("get", "secrets", "-n", "imp", "--as", "carol", check=False)
    assert 'User "carol" cannot list resource "secrets" in API group "" in the namespace "imp"' in forbidden.stderr
    whoami = cluster.kubectl("auth", "whoami", "--as", "carol", "--as-group", "qa").stdout
    assert "carol" in whoami and "qa" in whoami


def test_impersonation_needs_the_impersonate_verb(cluster, tmp_path):
    cert = issue_client(tmp_path, "dave", load_ca(cluster.pki), "dave")
    with cluster.client(cert=cert, headers={"Impersonate-User": "securekube-admin"}) as client:
        response = client.get("/api/v1/namespaces")
    assert response.status_code == 403
    assert response.json()["message"] == ('users "securekube-admin" is forbidden: User "dave" cannot impersonate '
                                          'resource "users" in API group "" at the cluster scope')
    with cluster.client(cert=cert, headers={"Impersonate-Group": "system:masters"}) as client:
        assert client.get("/api/v1/namespaces").status_code == 400  # a group without a user


def test_subject_access_review_and_self_review(cluster, tmp_path):
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "erin", "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "default"}}}
    with cluster.client() as admin:
        status = admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar).json()["status"]
        assert status["allowed"] is False
        sar["spec"]["groups"] = ["securekube:cluster-admins"]
        status = admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar).json()["status"]
        assert status["allowed"] is True and "cluster-admin" in status["reason"]
        bad = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "erin"}}
        assert admin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=bad).status_code == 422
    cert = issue_client(tmp_path, "erin", load_ca(cluster.pki), "erin")
    with cluster.client(cert=cert) as erin:
        # Any authenticated user may ask about itself (system:basic-user) but not about others.
        ssar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "default"}}}
        response = erin.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=ssar)
        assert response.status_code == 201 and response.json()["status"]["allowed"] is False
        assert erin.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar).status_code == 403
        me = erin.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                       json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).json()
        assert me["status"]["userInfo"] == {"username": "erin", "groups": ["system:authenticated"]}
