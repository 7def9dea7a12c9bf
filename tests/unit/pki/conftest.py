"""Shared fixtures for the PKI tests: shipped profiles, a fixed clock, a fresh PKI dir."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)

from securekube.pki.certs import utcnow
from securekube.pki.layout import PkiPaths, bootstrap
from securekube.pki.profiles import PkiProfiles, load_profiles


@pytest.fixture(scope="session")
def profiles() -> PkiProfiles:
    return load_profiles()


@pytest.fixture
def now() -> datetime:
    # Real time (so a TLS handshake accepts the certificates), whole seconds (X.509 precision).
    return utcnow().replace(microsecond=0)


@pytest.fixture
def pki(tmp_path: Path, profiles: PkiProfiles, now: datetime) -> PkiPaths:
    return bootstrap(tmp_path / "pki", profiles, now=now)


@pytest.fixture
def load_cert() -> Callable[[PkiPaths, str], x509.Certificate]:
    def load(paths: PkiPaths, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(paths.cert(name).read_bytes())

    return load


@pytest.fixture
def verify_server() -> Callable[..., list[x509.Certificate]]:
    """Verifies a serving certificate for a host name or IP the way a TLS client would."""

    def verify(leaf: x509.Certificate, ca: x509.Certificate, host: str, at: datetime):
        try:
            subject: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            subject = x509.DNSName(host)
        verifier = PolicyBuilder().store(Store([ca])).time(at).build_server_verifier(subject)
        return verifier.verify(leaf, [])

    return verify


@pytest.fixture
def verify_client() -> Callable[..., object]:
    """Verifies a client certificate (clientAuth EKU required) as a Kubernetes API server would.

    Kubernetes client certificates carry their identity in the subject and have no SAN,
    so the end-entity policy lets the SAN be absent; everything else is webpki's default.
    """

    def verify(leaf: x509.Certificate, ca: x509.Certificate, at: datetime):
        ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )
        verifier = (
            PolicyBuilder()
            .store(Store([ca]))
            .time(at)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
            .build_client_verifier()
        )
        return verifier.verify(leaf, [])

    return verify
