"""TLS bootstrap: the kubelet gets a certificate for its own key and name, checks it, and keeps it 0600."""
from __future__ import annotations

import base64
import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509

from securekube.kubelet import bootstrap
from securekube.kubelet.apiclient import Credentials, load_kubeconfig
from securekube.kubelet.bootstrap import BootstrapConfig, BootstrapError
from securekube.pki import certs, keys
from securekube.pki.csr import parse_csr_pem, sign_node_client_csr
from securekube.pki.layout import bootstrap as pki_bootstrap
from securekube.pki.layout import load_ca, PkiPaths
from securekube.pki.profiles import load_profiles


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    pki_bootstrap(tmp_path / "pki", load_profiles())
    return tmp_path / "pki"


class FakeApi:
    """The API as the kubelet sees it during bootstrap: CSRs it creates get signed (or denied)."""

    def __init__(self, pki: Path, outcome: str = "sign", sign_as: str | None = None) -> None:
        self.pki, self.outcome, self.sign_as = pki, outcome, sign_as
        self.created: list[dict] = []

    def create(self, path: str, body: dict) -> dict:
        assert path == bootstrap.CSR_PATH
        self.created.append(body)
        return {**body, "metadata": {"name": "node-csr-abcde"}}

    def get(self, path: str) -> dict:
        spec = self.created[-1]["spec"]
        if self.outcome == "deny":
            return {"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "NoWay",
                                               "message": "not you"}]}}
        pem = base64.b64decode(spec["request"])
        if self.sign_as:  # a signer that returns someone else's certificate
            pem = bootstrap.node_client_csr_pem(keys.generate_private_key(), self.sign_as)
        cert = sign_node_client_csr(parse_csr_pem(pem), spec["usages"], load_ca(PkiPaths(self.pki), "ca"),
                                    lifetime=dt.timedelta(hours=24), now=dt.datetime.now(dt.timezone.utc))
        return {"status": {"certificate": base64.b64encode(certs.certificate_pem(cert)).decode()}}


def config(tmp_path: Path) -> BootstrapConfig:
    return BootstrapConfig("node-a", tmp_path / "kubelet" / "kubeconfig", csr_timeout_seconds=2)


def test_the_kubelet_asks_for_its_own_name_and_writes_a_private_kubeconfig(tmp_path: Path, pki: Path) -> None:
    api = FakeApi(pki)
    creds = bootstrap.new_credentials(api, "https://127.0.0.1:6443", (pki / "ca.crt").read_bytes(), config(tmp_path))
    sent = api.created[0]
    assert sent["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert sent["spec"]["usages"] == ["digital signature", "client auth"]
    request = parse_csr_pem(base64.b64decode(sent["spec"]["request"]))
    assert request.subject.rfc4514_string() == "CN=system:node:node-a,O=system:nodes"
    kubeconfig = tmp_path / "kubelet" / "kubeconfig"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    stored = load_kubeconfig(kubeconfig)
    assert stored.client_cert_pem == creds.client_cert_pem and stored.server == "https://127.0.0.1:6443"
    assert bootstrap.usable(stored, "node-a", dt.datetime.now(dt.timezone.utc))
    assert not bootstrap.usable(stored, "node-b", dt.datetime.now(dt.timezone.utc))


def test_a_denied_request_is_an_error_naming_the_condition(tmp_path: Path, pki: Path) -> None:
    with pytest.raises(BootstrapError, match="node-csr-abcde denied: NoWay not you"):
        bootstrap.new_credentials(FakeApi(pki, "deny"), "https://x:1", (pki / "ca.crt").read_bytes(),
                                  config(tmp_path))


def test_a_certificate_for_another_key_or_name_is_refused(tmp_path: Path, pki: Path) -> None:
    with pytest.raises(BootstrapError, match="it is not for our key; it names another user"):
        bootstrap.new_credentials(FakeApi(pki, sign_as="node-b"), "https://x:1", (pki / "ca.crt").read_bytes(),
                                  config(tmp_path))
    assert not (tmp_path / "kubelet" / "kubeconfig").exists()


def test_a_certificate_from_another_ca_is_refused(tmp_path: Path, pki: Path) -> None:
    other = tmp_path / "other"
    pki_bootstrap(other, load_profiles())
    with pytest.raises(BootstrapError, match="the cluster CA did not sign it"):
        bootstrap.new_credentials(FakeApi(pki), "https://x:1", (other / "ca.crt").read_bytes(), config(tmp_path))


def test_a_usable_kubeconfig_is_reused_without_asking(tmp_path: Path, pki: Path) -> None:
    bootstrap.new_credentials(FakeApi(pki), "https://127.0.0.1:6443", (pki / "ca.crt").read_bytes(),
                              config(tmp_path))
    reused = bootstrap.node_credentials(config(tmp_path))  # no bootstrap kubeconfig: must not need one
    assert reused.client_cert_pem


def test_without_a_certificate_or_a_bootstrap_kubeconfig_the_node_cannot_join(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match="no bootstrap kubeconfig was given"):
        bootstrap.node_credentials(config(tmp_path))


def test_rotation_is_due_between_70_and_90_percent_of_the_lifetime(tmp_path: Path, pki: Path) -> None:
    creds = bootstrap.new_credentials(FakeApi(pki), "https://x:1", (pki / "ca.crt").read_bytes(), config(tmp_path))
    cert = x509.load_pem_x509_certificate(creds.client_cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    for _ in range(20):
        deadline = bootstrap.rotation_deadline(cert)
        assert start + (end - start) * 0.7 <= deadline <= start + (end - start) * 0.9
    expired = Credentials("https://x:1", b"", creds.client_cert_pem, creds.client_key_pem)
    assert not bootstrap.usable(expired, "node-a", end + dt.timedelta(seconds=1))


def test_rotation_gets_a_new_key_and_switches_the_client(tmp_path: Path, pki: Path) -> None:
    first = bootstrap.new_credentials(FakeApi(pki), "https://x:1", (pki / "ca.crt").read_bytes(), config(tmp_path))

    class RotatingApi(FakeApi):
        used: list[Credentials] = []

        def use(self, credentials: Credentials) -> None:
            self.used.append(credentials)

    api = RotatingApi(pki)
    second = bootstrap.rotate(api, first, config(tmp_path))
    assert api.used == [second]
    assert second.client_key_pem != first.client_key_pem
    assert load_kubeconfig(tmp_path / "kubelet" / "kubeconfig").client_cert_pem == second.client_cert_pem
