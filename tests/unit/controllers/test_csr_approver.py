"""The CSR approver approves kubelet client CSRs from bootstrap tokens and nodes, and nothing else."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from securekube.authn.interfaces import UserInfo
from securekube.authz.rbac import RBACAuthorizer
from securekube.controllers.csr_approver import NEW_NODE_MESSAGE, RENEWAL_MESSAGE, CsrApprover, decide
from securekube.registry.registry import Registry

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _pem(subject: list[tuple[x509.ObjectIdentifier, str]], key=None,
         sans: list[x509.GeneralName] | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(oid, value) for oid, value in subject]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _never_live(name: str) -> bool:
    return False


def _with_requester(csr: dict, user: UserInfo) -> dict:
    csr["spec"].update(username=user.username, groups=list(user.groups))
    return csr


def test_a_bootstrap_token_gets_a_new_node_approved(make_csr, bootstrap_user, rbac: RBACAuthorizer) -> None:
    verdict = decide(_with_requester(make_csr(), bootstrap_user), rbac, _never_live)
    assert (verdict.approve, verdict.why) == (True, NEW_NODE_MESSAGE)


def test_a_node_renews_its_own_certificate(make_csr, node_user, rbac: RBACAuthorizer) -> None:
    verdict = decide(_with_requester(make_csr("node-a"), node_user("node-a")), rbac, lambda name: True)
    assert (verdict.approve, verdict.why) == (True, RENEWAL_MESSAGE)


def test_a_node_cannot_get_another_nodes_certificate(make_csr, node_user, rbac: RBACAuthorizer) -> None:
    verdict = decide(_with_requester(make_csr("node-b"), node_user("node-a")), rbac, _never_live)
    assert not verdict.approve
    assert "neither a bootstrap token nor node node-b itself" in verdict.why


def test_a_bootstrap_token_cannot_take_over_a_live_node(make_csr, bootstrap_user, rbac: RBACAuthorizer) -> None:
    verdict = decide(_with_requester(make_csr("node-a"), bootstrap_user), rbac, lambda name: name == "node-a")
    assert (verdict.approve, verdict.why) == (False, "node node-a is live: a bootstrap token may only join a new node")


def test_without_the_rbac_grant_nothing_is_approved(make_csr, bootstrap_user) -> None:
    verdict = decide(_with_requester(make_csr(), bootstrap_user), RBACAuthorizer(), _never_live)
    assert (verdict.approve, verdict.why) == (
        False, "system:bootstrap:abcdef may not create certificatesigningrequests/nodeclient")


def test_other_users_and_groups_are_not_approved(make_csr, rbac: RBACAuthorizer) -> None:
    lookalike = UserInfo("system:bootstrap:abcdef", groups=("system:authenticated",))
    assert not decide(_with_requester(make_csr(), lookalike), rbac, _never_live).approve
    admin = UserInfo("securekube-admin", groups=("securekube:cluster-admins",))
    assert not decide(_with_requester(make_csr(), admin), rbac, _never_live).approve


@pytest.mark.parametrize(("subject", "sans", "usages", "key", "problem"), [
    ([(NameOID.ORGANIZATION_NAME, "system:masters"), (NameOID.COMMON_NAME, "system:node:node-a")], None,
     ("digital signature", "client auth"), None, 'subject organization must be exactly ["system:nodes"]'),
    ([(NameOID.ORGANIZATION_NAME, "system:nodes"), (NameOID.ORGANIZATION_NAME, "system:masters"),
      (NameOID.COMMON_NAME, "system:node:node-a")], None,
     ("digital signature", "client auth"), None, 'subject organization must be exactly ["system:nodes"]'),
    ([(NameOID.ORGANIZATION_NAME, "system:nodes"), (NameOID.COMMON_NAME, "node-a")], None,
     ("digital signature", "client auth"), None, 'subject common name must be "system:node:<nodeName>"'),
    ([(NameOID.ORGANIZATION_NAME, "system:nodes"), (NameOID.COMMON_NAME, "system:node:node-a")],
     [x509.DNSName("kubernetes.default")], ("digital signature", "client auth"), None,
     "subject alternative names (DNS, email, IP, URI) are not allowed"),
    ([(NameOID.ORGANIZATION_NAME, "system:nodes"), (NameOID.COMMON_NAME, "system:node:node-a")], None,
     ("digital signature", "client auth", "server auth"), None, "usages must be"),
    ([(NameOID.ORGANIZATION_NAME, "system:nodes"), (NameOID.COMMON_NAME, "system:node:node-a")], None,
     ("digital signature", "client auth"), "rsa", "the key must be ECDSA P-256"),
])
def test_malformed_node_client_requests_stay_pending(make_csr, bootstrap_user, rbac, subject, sans, usages, key,
                                                     problem) -> None:
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if key == "rsa" else None
    csr = make_csr(pem=_pem(subject, signing_key, sans), usages=usages)
    verdict = decide(_with_requester(csr, bootstrap_user), rbac, _never_live)
    assert not verdict.approve
    assert problem in verdict.why


def test_key_encipherment_is_tolerated(make_csr, bootstrap_user, rbac) -> None:
    csr = make_csr(usages=("digital signature", "key encipherment", "client auth"))
    assert decide(_with_requester(csr, bootstrap_user), rbac, _never_live).approve


def test_other_signers_and_decided_requests_are_left_alone(make_csr, bootstrap_user, rbac) -> None:
    other = make_csr(signerName="kubernetes.io/kube-apiserver-client")
    assert decide(_with_requester(other, bootstrap_user), rbac, _never_live).why == "not for the kubelet client signer"
    denied = _with_requester(make_csr(), bootstrap_user)
    denied["status"] = {"conditions": [{"type": "Denied", "status": "True"}]}
    assert decide(denied, rbac, _never_live).why == "already decided"


def _lease(renewed: dt.datetime) -> dict:
    return {"metadata": {"name": "node-a"}, "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40,
                                                      "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def test_a_node_is_live_while_its_lease_is_current(registry: Registry, rbac) -> None:
    approver = CsrApprover(registry, rbac, clock=lambda: NOW)
    assert not approver.node_is_live("node-a")  # no Node
    registry.store_for_kind("", "Node").create("", {"metadata": {"name": "node-a"}})
    assert not approver.node_is_live("node-a")  # no Lease
    leases = registry.store_for_kind("coordination.k8s.io", "Lease")
    leases.create("kube-node-lease", _lease(NOW - dt.timedelta(seconds=10)))
    assert approver.node_is_live("node-a")
    leases.guaranteed_update("kube-node-lease", "node-a",
                             lambda lease: {**lease, "spec": _lease(NOW - dt.timedelta(seconds=41))["spec"]})
    assert not approver.node_is_live("node-a")


def test_approval_is_written_through_the_approval_subresource(registry: Registry, rbac, make_csr,
                                                              bootstrap_user) -> None:
    csrs = registry.store_for_kind("certificates.k8s.io", "CertificateSigningRequest")
    csrs.create("", make_csr(), requester=bootstrap_user)
    CsrApprover(registry, rbac, clock=lambda: NOW).approve_if_allowed("node-csr-1")
    condition = csrs.get("", "node-csr-1")["status"]["conditions"][0]
    assert (condition["type"], condition["status"], condition["reason"], condition["message"]) == (
        "Approved", "True", "AutoApproved", NEW_NODE_MESSAGE)


def test_a_forged_requester_in_the_body_is_not_believed(registry: Registry, rbac, make_csr, bootstrap_user) -> None:
    csrs = registry.store_for_kind("certificates.k8s.io", "CertificateSigningRequest")
    dev = UserInfo("dev", groups=("system:authenticated",))
    forged = make_csr(username=bootstrap_user.username, groups=list(bootstrap_user.groups))
    csrs.create("", forged, requester=dev)
    CsrApprover(registry, rbac, clock=lambda: NOW).approve_if_allowed("node-csr-1")
    assert csrs.get("", "node-csr-1")["status"] == {}
