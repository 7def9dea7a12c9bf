"""CertificateSigningRequest and Lease through their stores: requester, approval, signing, validation."""
from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable

import pytest

from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo
from securekube.pki import certs, keys
from securekube.pki.csr import node_client_csr_pem
from securekube.pki.profiles import CertProfile, Subject
from securekube.registry.kinds.certificatesigningrequests import CertificateSigningRequestStrategy
from securekube.registry.kinds.leases import LeaseStrategy
from securekube.registry.resource import Strategy
from securekube.registry.store import Store

MakeStore = Callable[[type[Strategy]], Store]
BOOTSTRAP = UserInfo("system:bootstrap:abcdef", groups=("system:bootstrappers", "system:authenticated"))
APPROVED = {"type": "Approved", "status": "True", "reason": "KubectlApprove", "message": "ok"}


def causes_of(call: Callable[[], object]) -> list[tuple[str, str]]:
    with pytest.raises(ApiError) as raised:
        call()
    assert raised.value.code == 422
    return [(c["field"], c["message"]) for c in raised.value.details["causes"]]


def csr_body(name: str = "node-csr-1", **spec: object) -> dict:
    request = node_client_csr_pem(keys.generate_private_key(), "node-a")
    body = {"request": base64.b64encode(request).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"], **spec}
    return {"metadata": {"name": name}, "spec": body}


def certificate_b64() -> str:
    ca_key = keys.generate_private_key()
    now = dt.datetime.now(dt.timezone.utc)
    ca = certs.issue_ca(CertProfile("ca", Subject("ca"), dt.timedelta(days=1), is_ca=True,
                                    key_usages=("digitalSignature", "keyCertSign", "cRLSign")), ca_key, now=now)
    return base64.b64encode(certs.certificate_pem(ca)).decode()


@pytest.fixture
def csrs(make_store: MakeStore) -> Store:
    return make_store(CertificateSigningRequestStrategy)


def test_the_requester_comes_from_authentication_never_from_the_body(csrs: Store) -> None:
    body = csr_body(username="system:node:node-a", groups=["system:nodes"], uid="forged")
    created = csrs.create("", body, requester=BOOTSTRAP)
    assert created["spec"]["username"] == "system:bootstrap:abcdef"
    assert created["spec"]["groups"] == ["system:bootstrappers", "system:authenticated"]
    assert "uid" not in created["spec"]
    assert created["status"] == {}


def test_without_a_requester_nobody_is_recorded(csrs: Store) -> None:
    created = csrs.create("", csr_body(username="system:node:node-a"))
    assert "username" not in created["spec"]


def test_a_csr_cannot_be_created_approved_or_signed(csrs: Store) -> None:
    body = {**csr_body(), "status": {"conditions": [APPROVED], "certificate": certificate_b64()}}
    assert csrs.create("", body, requester=BOOTSTRAP)["status"] == {}


def test_request_signer_and_usages_are_validated(csrs: Store) -> None:
    bad = csr_body(signerName="no-slash", usages=["client auth", "client auth", "flying"])
    bad["spec"]["request"] = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").decode()
    found = dict(causes_of(lambda: csrs.create("", bad, requester=BOOTSTRAP)))
    assert found["spec.request"] == 'Invalid value: "<request data>": PEM block type must be CERTIFICATE REQUEST'
    assert found["spec.signerName"].endswith("must be a fully qualified domain and path of the form "
                                             "'example.com/signer-name'")
    assert found["spec.usages[1]"] == 'Duplicate value: "client auth"'
    assert found["spec.usages[2]"].startswith('Unsupported value: "flying": supported values: "any"')


def test_a_tampered_request_fails_its_signature_check(csrs: Store) -> None:
    body = csr_body()
    pem = base64.b64decode(body["spec"]["request"])
    lines = pem.decode().splitlines()
    middle = len(lines) // 2
    lines[middle] = lines[middle][:-4] + ("AAAA" if not lines[middle].endswith("AAAA") else "BBBB")
    body["spec"]["request"] = base64.b64encode("\n".join(lines).encode() + b"\n").decode()
    found = dict(causes_of(lambda: csrs.create("", body, requester=BOOTSTRAP)))
    assert "spec.request" in found


def test_expiration_must_be_at_least_ten_minutes(csrs: Store) -> None:
    found = dict(causes_of(lambda: csrs.create("", csr_body(expirationSeconds=599), requester=BOOTSTRAP)))
    assert found["spec.expirationSeconds"] == ("Invalid value: 599: may not specify a duration less than 600 "
                                               "seconds (10 minutes)")


def _approve(csrs: Store, condition: dict) -> dict:
    def add(obj: dict) -> dict:
        obj["status"].setdefault("conditions", []).append(condition)
        return obj
    return csrs.guaranteed_update("", "node-csr-1", add, subresource="approval")


def test_approval_adds_a_timestamped_condition_and_nothing_else(csrs: Store) -> None:
    csrs.create("", csr_body(), requester=BOOTSTRAP)

    def approve_and_tamper(obj: dict) -> dict:
        obj["status"]["conditions"] = [dict(APPROVED)]
        obj["status"]["certificate"] = certificate_b64()
        obj["spec"]["username"] = "system:node:node-a"
        return obj

    approved = csrs.guaranteed_update("", "node-csr-1", approve_and_tamper, subresource="approval")
    assert [c["type"] for c in approved["status"]["conditions"]] == ["Approved"]
    assert approved["status"]["conditions"][0]["lastUpdateTime"]
    assert "certificate" not in approved["status"]
    assert approved["spec"]["username"] == "system:bootstrap:abcdef"


def test_approval_conditions_cannot_be_set_through_status_or_the_main_resource(csrs: Store) -> None:
    csrs.create("", csr_body(), requester=BOOTSTRAP)
    found = causes_of(lambda: csrs.guaranteed_update(
        "", "node-csr-1", lambda o: {**o, "status": {"conditions": [APPROVED]}}, subresource="status"))
    assert ("status.conditions", 'Forbidden: updates may not add a condition of type "Approved"') in found
    unchanged = csrs.guaranteed_update("", "node-csr-1", lambda o: {**o, "status": {"conditions": [APPROVED]}})
    assert unchanged["status"] == {}


def test_approved_and_denied_exclude_each_other_and_stay(csrs: Store) -> None:
    csrs.create("", csr_body(), requester=BOOTSTRAP)
    _approve(csrs, dict(APPROVED))
    denied = {"type": "Denied", "status": "True", "reason": "No"}
    found = causes_of(lambda: _approve(csrs, denied))
    assert ("status.conditions[1].type", 'Invalid value: "Denied": Approved and Denied conditions are mutually '
                                         "exclusive") in found
    found = causes_of(lambda: csrs.guaranteed_update(
        "", "node-csr-1", lambda o: {**o, "status": {"conditions": []}}, subresource="approval"))
    assert found == [("status.conditions", 'Forbidden: updates may not remove a condition of type "Approved"')]


def test_approval_conditions_hold_only_as_true(csrs: Store) -> None:
    csrs.create("", csr_body(), requester=BOOTSTRAP)
    found = causes_of(lambda: _approve(csrs, {"type": "Approved", "status": "False"}))
    assert found == [("status.conditions[0].status", 'Unsupported value: "False": supported values: "True"')]


def test_the_certificate_is_set_once_through_status_after_approval(csrs: Store) -> None:
    csrs.create("", csr_body(), requester=BOOTSTRAP)
    certificate = certificate_b64()

    def sign(obj: dict) -> dict:
        obj["status"]["certificate"] = certificate
        return obj

    found = causes_of(lambda: csrs.guaranteed_update("", "node-csr-1", sign, subresource="status"))
    assert found == [("status.certificate", "Forbidden: may only be set on an approved request")]
    _approve(csrs, dict(APPROVED))
    signed = csrs.guaranteed_update("", "node-csr-1", sign, subresource="status")
    assert signed["status"]["certificate"] == certificate
    other = certificate_b64()
    found = causes_of(lambda: csrs.guaranteed_update(
        "", "node-csr-1", lambda o: {**o, "status": {**o["status"], "certificate": other}}, subresource="status"))
    assert found == [("status.certificate", "Forbidden: updates may not modify existing certificate content")]


def test_a_certificate_must_be_pem_certificates(csrs: Store) -> None:
    csrs.create("", csr_body(), requester=BOOTSTRAP)
    _approve(csrs, dict(APPROVED))
    junk = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").decode()
    found = causes_of(lambda: csrs.guaranteed_update(
        "", "node-csr-1", lambda o: {**o, "status": {**o["status"], "certificate": junk}}, subresource="status"))
    assert found == [("status.certificate", 'Invalid value: "<certificate data>": only CERTIFICATE PEM blocks are '
                                            'allowed, found "PRIVATE KEY"')]


def test_csr_table_shows_requestor_and_condition(csrs: Store) -> None:
    created = csrs.create("", csr_body(expirationSeconds=86400), requester=BOOTSTRAP)
    columns = {c.name: c.render(created, dt.datetime.now(dt.timezone.utc)) for c in csrs.strategy.columns}
    assert (columns["Requestor"], columns["RequestedDuration"], columns["Condition"]) == (
        "system:bootstrap:abcdef", "24h", "Pending")
    approved = _approve(csrs, dict(APPROVED))
    assert csrs.strategy.columns[-1].render(approved, dt.datetime.now(dt.timezone.utc)) == "Approved"


def lease(name: str = "node-a", **spec: object) -> dict:
    return {"metadata": {"name": name}, "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                                                  "renewTime": "2024-05-01T12:00:00.123456Z", **spec}}


def test_a_node_lease_round_trips(make_store: MakeStore) -> None:
    leases = make_store(LeaseStrategy)
    created = leases.create("kube-node-lease", lease())
    assert created["metadata"]["namespace"] == "kube-node-lease"
    assert json.loads(json.dumps(created["spec"]))["renewTime"] == "2024-05-01T12:00:00.123456Z"


def test_lease_validation(make_store: MakeStore) -> None:
    leases = make_store(LeaseStrategy)
    found = dict(causes_of(lambda: leases.create("kube-node-lease", lease(
        leaseDurationSeconds=0, leaseTransitions=-1, renewTime="yesterday", preferredHolder="x"))))
    assert found["spec.leaseDurationSeconds"] == "Invalid value: 0: must be greater than 0"
    assert found["spec.leaseTransitions"] == "Invalid value: -1: must be greater than or equal to 0"
    assert found["spec.renewTime"].startswith('Invalid value: "yesterday": must be an RFC 3339 time')
    assert found["spec.preferredHolder"] == "Forbidden: may only be specified if `strategy` is defined"


def test_null_condition_times_from_kubectl_are_filled_in(csrs: Store) -> None:
    csrs.create("", csr_body(), requester=BOOTSTRAP)
    approved = _approve(csrs, {**APPROVED, "lastTransitionTime": None, "lastUpdateTime": None})
    condition = approved["status"]["conditions"][0]
    assert condition["lastTransitionTime"] and condition["lastUpdateTime"]
