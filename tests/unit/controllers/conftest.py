"""A registry on real SQLite storage, the bootstrap RBAC policy, and helpers to make node CSRs."""
from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from securekube.authn.interfaces import UserInfo
from securekube.authz.bootstrap_policy import bootstrap_objects
from securekube.authz.rbac import RBACAuthorizer
from securekube.pki import keys
from securekube.pki.csr import node_client_csr_pem
from securekube.registry.registry import Registry
from securekube.storage.sqlite import SqliteStorage
from securekube.storage.transform.identity import IdentityTransformer

def _csr_object(node: str = "node-a", name: str = "node-csr-1", key: ec.EllipticCurvePrivateKey | None = None,
               usages: tuple[str, ...] = ("digital signature", "client auth"), pem: bytes | None = None,
               **spec: object) -> dict:
    request = pem or node_client_csr_pem(key or keys.generate_private_key(), node)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "usages": list(usages),
                     "signerName": "kubernetes.io/kube-apiserver-client-kubelet", **spec}}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    storage = SqliteStorage(tmp_path / "state.db")
    yield Registry(storage, lambda resource, group: IdentityTransformer())
    storage.close()


@pytest.fixture
def rbac() -> RBACAuthorizer:
    authorizer = RBACAuthorizer()
    for obj in bootstrap_objects():
        authorizer.apply(obj["kind"], obj)
    return authorizer


@pytest.fixture
def make_csr():
    """Builds a CertificateSigningRequest object for a node (a fresh P-256 key unless `key`/`pem` given)."""
    return _csr_object


@pytest.fixture
def bootstrap_user() -> UserInfo:
    return UserInfo("system:bootstrap:abcdef", groups=("system:bootstrappers", "system:authenticated"))


@pytest.fixture
def node_user():
    """The identity of node `name`, as its client certificate authenticates."""
    return lambda name: UserInfo(f"system:node:{name}", groups=("system:nodes", "system:authenticated"))
