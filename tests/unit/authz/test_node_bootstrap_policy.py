"""The bootstrap RBAC for joining nodes: who may ask for node certificates, and who may read kubelet logs."""
from __future__ import annotations

import pytest

from securekube.authn.interfaces import UserInfo
from securekube.authz.bootstrap_policy import KUBELET_CLIENT_USER, bootstrap_objects
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.rbac import RBACAuthorizer

CERTIFICATES = "certificates.k8s.io"
BOOTSTRAP = UserInfo("system:bootstrap:abcdef", groups=("system:bootstrappers", "system:authenticated"))
NODE = UserInfo("system:node:node-a", groups=("system:nodes", "system:authenticated"))
DEV = UserInfo("dev", groups=("system:authenticated",))
APISERVER = UserInfo(KUBELET_CLIENT_USER, groups=("system:authenticated",))


@pytest.fixture
def rbac() -> RBACAuthorizer:
    authorizer = RBACAuthorizer()
    for obj in bootstrap_objects():
        authorizer.apply(obj["kind"], obj)
    return authorizer


def allowed(rbac: RBACAuthorizer, user: UserInfo, verb: str, resource: str, group: str = CERTIFICATES,
            subresource: str = "", name: str = "") -> bool:
    attrs = Attributes(user=user, verb=verb, resource_request=True, api_group=group, api_version="v1",
                       resource=resource, subresource=subresource, name=name)
    return rbac.authorize(attrs).verdict is Verdict.ALLOW


def test_bootstrap_tokens_may_create_and_watch_csrs_and_nothing_else(rbac: RBACAuthorizer) -> None:
    for verb in ("create", "get", "list", "watch"):
        assert allowed(rbac, BOOTSTRAP, verb, "certificatesigningrequests")
    for verb in ("update", "delete"):
        assert not allowed(rbac, BOOTSTRAP, verb, "certificatesigningrequests")
    assert not allowed(rbac, BOOTSTRAP, "update", "certificatesigningrequests", subresource="approval")
    assert not allowed(rbac, BOOTSTRAP, "get", "secrets", group="")
    assert not allowed(rbac, DEV, "create", "certificatesigningrequests")


def test_auto_approval_grants_follow_kubeadm(rbac: RBACAuthorizer) -> None:
    assert allowed(rbac, BOOTSTRAP, "create", "certificatesigningrequests", subresource="nodeclient")
    assert not allowed(rbac, BOOTSTRAP, "create", "certificatesigningrequests", subresource="selfnodeclient")
    assert allowed(rbac, NODE, "create", "certificatesigningrequests", subresource="selfnodeclient")
    assert not allowed(rbac, NODE, "create", "certificatesigningrequests", subresource="nodeclient")


def test_only_the_api_servers_kubelet_client_reads_the_kubelet_api(rbac: RBACAuthorizer) -> None:
    for subresource in ("proxy", "log"):
        assert allowed(rbac, APISERVER, "get", "nodes", group="", subresource=subresource, name="node-a")
        assert not allowed(rbac, DEV, "get", "nodes", group="", subresource=subresource, name="node-a")
        assert not allowed(rbac, NODE, "get", "nodes", group="", subresource=subresource, name="node-a")
