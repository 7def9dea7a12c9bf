"""The bootstrap RBAC policy, evaluated by the RBAC authorizer."""
from __future__ import annotations

import pytest

from securekube.authn.interfaces import UserInfo
from securekube.authz.bootstrap_policy import ADMIN_GROUP, bootstrap_objects
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.rbac import RBACAuthorizer

RBAC = "rbac.authorization.k8s.io"
ADMIN = UserInfo("securekube-admin", groups=(ADMIN_GROUP, "system:authenticated"))
DEV = UserInfo("dev", groups=("system:authenticated",))
ANONYMOUS = UserInfo("system:anonymous", groups=("system:unauthenticated",))


@pytest.fixture
def authorizer() -> RBACAuthorizer:
    authorizer = RBACAuthorizer()
    for obj in bootstrap_objects():
        authorizer.apply(obj["kind"], obj)
    return authorizer


def res(user, verb, resource, namespace="", group="", name="", subresource="") -> Attributes:
    return Attributes(user=user, verb=verb, resource_request=True, namespace=namespace, api_group=group,
                      api_version="v1", resource=resource, subresource=subresource, name=name)


def url(user, verb, path) -> Attributes:
    return Attributes(user=user, verb=verb, resource_request=False, path=path)


def allowed(authorizer: RBACAuthorizer, attrs: Attributes) -> bool:
    return authorizer.authorize(attrs).verdict is Verdict.ALLOW


def bind(authorizer: RBACAuthorizer, role: str, namespace: str = "team-a") -> None:
    authorizer.apply("RoleBinding", {
        "metadata": {"name": f"dev-{role}", "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "dev"}],
    })


def test_every_object_is_a_labelled_autoupdating_rbac_object():
    objects = bootstrap_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("ClusterRole", n) for n in ("cluster-admin", "system:discovery", "system:basic-user",
                                          "system:public-info-viewer", "admin", "edit", "view")} <= names
    assert ("ClusterRoleBinding", ADMIN_GROUP) in names
    for obj in objects:
        assert obj["apiVersion"] == f"{RBAC}/v1"
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert obj["metadata"]["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    assert bootstrap_objects() == objects and bootstrap_objects()[0] is not objects[0]  # fresh copies


def test_admin_kubeconfig_group_can_do_everything(authorizer):
    for attrs in (
        res(ADMIN, "delete", "nodes", name="n1"),
        res(ADMIN, "list", "secrets", "kube-system"),
        res(ADMIN, "escalate", "clusterroles", group=RBAC, name="x"),
        url(ADMIN, "post", "/logs/anything"),
    ):
        assert allowed(authorizer, attrs), attrs
    assert authorizer.authorize(res(ADMIN, "get", "pods", "a", name="p")).reason == (
        f'RBAC: allowed by ClusterRoleBinding "{ADMIN_GROUP}" of ClusterRole "cluster-admin" to Group "{ADMIN_GROUP}"'
    )


def test_system_masters_gets_cluster_admin_through_the_upstream_binding(authorizer):
    root = UserInfo("root", groups=("system:masters",))
    decision = authorizer.authorize(res(root, "delete", "namespaces", name="x"))
    assert decision.verdict is Verdict.ALLOW
    assert 'ClusterRoleBinding "cluster-admin"' in decision.reason


def test_authenticated_users_may_discover_but_not_read_resources(authorizer):
    for path in ("/version", "/api", "/api/v1", "/apis", "/apis/apps/v1", "/healthz", "/openapi/v3"):
        assert allowed(authorizer, url(DEV, "get", path)), path
    assert allowed(authorizer, res(DEV, "create", "selfsubjectaccessreviews", group="authorization.k8s.io"))
    assert not allowed(authorizer, url(DEV, "post", "/api"))
    assert not allowed(authorizer, url(DEV, "get", "/metrics"))
    assert not allowed(authorizer, res(DEV, "list", "secrets", "team-a"))
    assert not allowed(authorizer, res(DEV, "list", "pods", ""))


def test_unauthenticated_users_see_only_public_info(authorizer):
    assert allowed(authorizer, url(ANONYMOUS, "get", "/version"))
    assert allowed(authorizer, url(ANONYMOUS, "get", "/readyz"))
    assert not allowed(authorizer, url(ANONYMOUS, "get", "/api"))


def test_view_reads_workloads_but_not_secrets(authorizer):
    bind(authorizer, "view")
    assert allowed(authorizer, res(DEV, "list", "pods", "team-a"))
    assert allowed(authorizer, res(DEV, "get", "pods", "team-a", name="p", subresource="log"))
    assert allowed(authorizer, res(DEV, "watch", "deployments", "team-a", group="apps"))
    assert allowed(authorizer, res(DEV, "get", "jobs", "team-a", group="batch", name="j"))
    assert not allowed(authorizer, res(DEV, "get", "secrets", "team-a", name="s"))
    assert not allowed(authorizer, res(DEV, "create", "pods", "team-a"))
    assert not allowed(authorizer, res(DEV, "list", "pods", "team-b"))


def test_edit_reads_secrets_and_writes_workloads_but_cannot_grant(authorizer):
    bind(authorizer, "edit")
    assert allowed(authorizer, res(DEV, "get", "secrets", "team-a", name="s"))
    assert allowed(authorizer, res(DEV, "create", "pods", "team-a"))
    assert allowed(authorizer, res(DEV, "list", "configmaps", "team-a"))  # read comes from view, via aggregation
    assert allowed(authorizer, res(DEV, "patch", "deployments", "team-a", group="apps", name="d", subresource="scale"))
    assert not allowed(authorizer, res(DEV, "create", "rolebindings", "team-a", group=RBAC))
    assert not allowed(authorizer, res(DEV, "update", "pods", "team-a", name="p", subresource="status"))


def test_admin_can_grant_within_its_namespace(authorizer):
    bind(authorizer, "admin")
    assert allowed(authorizer, res(DEV, "create", "rolebindings", "team-a", group=RBAC))
    assert allowed(authorizer, res(DEV, "delete", "secrets", "team-a", name="s"))
    assert allowed(authorizer, res(DEV, "get", "namespaces", "team-a", name="team-a"))
    assert not allowed(authorizer, res(DEV, "create", "rolebindings", "team-b", group=RBAC))
    assert not allowed(authorizer, res(DEV, "create", "clusterrolebindings", group=RBAC))
