"""Authorization as a user sees it: kubectl auth can-i/whoami, impersonation, review APIs, over real TLS."""
from __future__ import annotations

import pytest

from tests.integration.certs import issue_client, load_ca
from tests.integration.cluster import restricted_pod_yaml

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


def test_can_i_list_shows_the_rules(cluster):
    out = cluster.kubectl("auth", "can-i", "--list", "-n", "default").stdout
    assert "selfsubjectaccessreviews.authorization.k8s.io" in out and "*.*" in out


def _user(cluster, tmp_path, name: str, groups: tuple[str, ...] = ()):
    return cluster.client(cert=issue_client(tmp_path, name, load_ca(cluster.pki), name, groups))


def test_escalation_is_refused_and_nothing_is_stored(cluster, tmp_path):
    cluster.kubectl("create", "namespace", "esc")
    cluster.kubectl("-n", "esc", "create", "rolebinding", "gina-edit", "--clusterrole=edit", "--user=gina")
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "gina-admin"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "User", "name": "gina", "apiGroup": "rbac.authorization.k8s.io"}]}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "too-much"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]},
                      {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]}
    with _user(cluster, tmp_path, "gina") as gina:
        # edit may write ConfigMaps, but not grant itself cluster-admin or a role with more than it holds.
        assert gina.post("/api/v1/namespaces/esc/configmaps",
                         json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}).status_code == 201
        refused = gina.post(f"{RBAC}/namespaces/esc/rolebindings", json=binding)
        assert refused.status_code == 403
        refused = gina.post(f"{RBAC}/namespaces/esc/roles", json=role)
        assert refused.status_code == 403
    with cluster.client() as admin:
        assert admin.get(f"{RBAC}/namespaces/esc/rolebindings/gina-admin").status_code == 404
        assert admin.get(f"{RBAC}/namespaces/esc/roles/too-much").status_code == 404
        # The admin holds every permission, so the same writes succeed for it.
        assert admin.post(f"{RBAC}/namespaces/esc/roles", json=role).status_code == 201


def test_role_writer_with_bind_may_bind_what_it_does_not_hold(cluster, tmp_path):
    cluster.kubectl("create", "namespace", "bindns")
    cluster.kubectl("-n", "bindns", "create", "role", "binder", "--verb=create,get",
                    "--resource=rolebindings.rbac.authorization.k8s.io")
    cluster.kubectl("-n", "bindns", "create", "rolebinding", "hank-binder", "--role=binder", "--user=hank")
    with cluster.client() as admin:
        grant = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "bind-view"},
                 "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                            "verbs": ["bind"], "resourceNames": ["view"]}]}
        assert admin.post(f"{RBAC}/namespaces/bindns/roles", json=grant).status_code == 201
    cluster.kubectl("-n", "bindns", "create", "rolebinding", "hank-bind-view", "--role=bind-view", "--user=hank")
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "ivy-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "ivy", "apiGroup": "rbac.authorization.k8s.io"}]}
    with _user(cluster, tmp_path, "hank") as hank:
        assert hank.post(f"{RBAC}/namespaces/bindns/rolebindings", json=binding).status_code == 201
        binding["metadata"]["name"], binding["roleRef"]["name"] = "ivy-edit", "edit"
        assert hank.post(f"{RBAC}/namespaces/bindns/rolebindings", json=binding).status_code == 403


def test_node_identity_reaches_only_its_own_pods_secrets(cluster, tmp_path):
    cluster.kubectl("create", "namespace", "nodes")
    for name in ("mine", "theirs"):
        cluster.kubectl("-n", "nodes", "create", "secret", "generic", name, f"--from-literal=k={name}")
    pods = ""
    for pod, node, secret in (("p-mine", "node-a", "mine"), ("p-theirs", "node-b", "theirs")):
        pods += "---" + restricted_pod_yaml(pod, "nodes", node_name=node,
                                           volumes=f"volumes: [{{name: s, secret: {{secretName: {secret}}}}}]")
    cluster.kubectl("apply", "-f", "-", input=pods)
    with _user(cluster, tmp_path, "system:node:node-a", ("system:nodes",)) as node:
        assert node.get("/api/v1/namespaces/nodes/secrets/mine").status_code == 200
        assert node.get("/api/v1/namespaces/nodes/secrets/theirs").status_code == 403
        assert node.get("/api/v1/namespaces/nodes/pods/p-mine").status_code == 200
        assert node.get("/api/v1/namespaces/nodes/pods/p-theirs").status_code == 403
    cluster.kubectl("-n", "nodes", "delete", "pod", "p-mine", "--grace-period=0", "--force")
    with _user(cluster, tmp_path, "system:node:node-a", ("system:nodes",)) as node:
        assert node.get("/api/v1/namespaces/nodes/secrets/mine").status_code == 403


def test_opa_policies_bind_even_cluster_admins(cluster):
    denied = cluster.kubectl("get", "secrets", "-n", "audit-system", check=False)
    assert denied.returncode != 0
    assert 'cannot list resource "secrets" in API group "" in the namespace "audit-system": audit-system-secrets' \
        in denied.stderr
    refused = cluster.kubectl("delete", "namespace", "kube-public", check=False)
    assert refused.returncode != 0 and "protect-system-namespaces" in refused.stderr
    masters = cluster.kubectl("get", "pods", "--as=x", "--as-group=system:masters", check=False)
    assert 'cannot impersonate resource "groups"' in masters.stderr
    assert cluster.kubectl("get", "namespace", "kube-public").returncode == 0
