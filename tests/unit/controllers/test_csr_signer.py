"""The kubelet client signer: approved CSRs get a short-lived certificate from the cluster CA, others nothing."""
from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securekube.controllers.csr_signer import CsrSigner, SignerConfig
from securekube.pki import certs, keys
from securekube.pki.layout import bootstrap
from securekube.pki.profiles import load_profiles
from securekube.registry.registry import Registry

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
APPROVED = {"type": "Approved", "status": "True", "reason": "AutoApproved"}


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    bootstrap(tmp_path / "pki", load_profiles(), now=NOW)
    return tmp_path / "pki"


def _submit(registry: Registry, csr: dict, approve: bool = True) -> None:
    store = registry.store_for_kind("certificates.k8s.io", "CertificateSigningRequest")
    store.create("", csr)
    if approve:
        store.guaranteed_update("", csr["metadata"]["name"],
                                lambda o: {**o, "status": {"conditions": [dict(APPROVED)]}}, subresource="approval")


def _status(registry: Registry, name: str = "node-csr-1") -> dict:
    return registry.store_for_kind("certificates.k8s.io", "CertificateSigningRequest").get("", name)["status"]


def test_an_approved_node_csr_gets_a_24h_client_certificate_from_the_ca(registry: Registry, pki: Path,
                                                                         make_csr) -> None:
    key = keys.generate_private_key()
    _submit(registry, make_csr("node-a", key=key))
    CsrSigner(registry, SignerConfig(pki), clock=lambda: NOW).sign_if_approved("node-csr-1")
    cert = x509.load_pem_x509_certificate(base64.b64decode(_status(registry)["certificate"]))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node-a"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]
    assert keys.same_public_key(cert.public_key(), key.public_key())
    assert certs.is_signed_by(cert, certs.load_certificate(pki / "ca.crt"))
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=24)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_shorter_requested_lifetime_is_honoured(registry: Registry, pki: Path, make_csr) -> None:
    _submit(registry, make_csr(expirationSeconds=3600))
    CsrSigner(registry, SignerConfig(pki), clock=lambda: NOW).sign_if_approved("node-csr-1")
    cert = x509.load_pem_x509_certificate(base64.b64decode(_status(registry)["certificate"]))
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=1)


def test_a_pending_csr_is_not_signed(registry: Registry, pki: Path, make_csr) -> None:
    _submit(registry, make_csr(), approve=False)
    CsrSigner(registry, SignerConfig(pki), clock=lambda: NOW).sign_if_approved("node-csr-1")
    assert _status(registry) == {}


def test_an_approved_but_malformed_request_fails_instead_of_being_signed(registry: Registry, pki: Path,
                                                                         make_csr) -> None:
    _submit(registry, make_csr(usages=("digital signature", "client auth", "server auth")))
    CsrSigner(registry, SignerConfig(pki), clock=lambda: NOW).sign_if_approved("node-csr-1")
    status = _status(registry)
    assert "certificate" not in status
    failed = status["conditions"][-1]
    assert (failed["type"], failed["reason"]) == ("Failed", "SignerValidationFailure")
    assert "usages must be" in failed["message"]
