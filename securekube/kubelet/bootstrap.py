"""TLS bootstrap and client certificate rotation: how a kubelet gets, and keeps, its own identity.

As upstream's kubelet: with no usable client certificate, it authenticates with a bootstrap token,
generates a fresh ECDSA P-256 key (which never leaves the node), sends a CertificateSigningRequest
for `CN=system:node:<name>, O=system:nodes` to signer kubernetes.io/kube-apiserver-client-kubelet,
waits until it is approved and signed, checks the certificate it got (its own key, the subject it
asked for, client auth, signed by the cluster CA), and writes its kubeconfig (mode 0600). From then
on it uses that certificate, and asks for the next one, the same way but as itself, once 70-90 %
of its lifetime has passed (upstream's jittered deadline).
"""
from __future__ import annotations

import base64
import datetime as dt
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from securekube.kubelet.apiclient import ApiClient, ApiClientError, ApiStatusError, Credentials, load_kubeconfig
from securekube.pki import files, keys
from securekube.pki.certs import extended_key_usages, is_signed_by
from securekube.pki.csr import KUBELET_CLIENT_SIGNER, NODE_USER_PREFIX, NODES_GROUP, node_client_csr_pem
from securekube.pki.errors import PkiError
from securekube.pki.kubeconfig import write_kubeconfig

CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLIENT_USAGES = ("digital signature", "client auth")
POLL_SECONDS = 0.2
# Upstream's rotation deadline: a random point between 70 % and 90 % of the validity period.
ROTATE_FROM, ROTATE_TO = 0.7, 0.9


class BootstrapError(RuntimeError):
    """The node could not obtain a client certificate (refused, timed out, or a wrong certificate)."""


@dataclass(frozen=True)
class BootstrapConfig:
    """Where the node's credentials live and how long it waits for a certificate."""

    node_name: str
    kubeconfig: Path  # the node's own kubeconfig, written here (0600)
    bootstrap_kubeconfig: Path | None = None  # a kubeconfig with a bootstrap token, for the first certificate
    csr_timeout_seconds: float = 60.0


def certificate_of(credentials: Credentials) -> x509.Certificate | None:
    """The client certificate in `credentials`, if any."""
    if not credentials.client_cert_pem:
        return None
    try:
        return x509.load_pem_x509_certificate(credentials.client_cert_pem)
    except ValueError:
        return None


def usable(credentials: Credentials, node_name: str, now: dt.datetime) -> bool:
    """Whether `credentials` hold this node's certificate, valid now and for a while yet."""
    cert = certificate_of(credentials)
    if cert is None:
        return False
    name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (bool(name) and name[0].value == NODE_USER_PREFIX + node_name
            and cert.not_valid_before_utc <= now < rotation_deadline(cert, fraction=1.0))


def rotation_deadline(cert: x509.Certificate, fraction: float | None = None) -> dt.datetime:
    """When to ask for the next certificate: `fraction` (random 0.7-0.9 by default) into the validity."""
    if fraction is None:
        fraction = ROTATE_FROM + (ROTATE_TO - ROTATE_FROM) * secrets.randbelow(1001) / 1000
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * fraction


def check_issued(cert_pem: bytes, key: keys.PrivateKey, node_name: str, ca_pem: bytes) -> x509.Certificate:
    """The certificate the signer returned, if it is what we asked for; BootstrapError otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise BootstrapError("the signed certificate does not parse") from None
    cas = x509.load_pem_x509_certificates(ca_pem)
    problems = []
    if not keys.same_public_key(cert.public_key(), key.public_key()):
        problems.append("it is not for our key")
    if cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value != NODE_USER_PREFIX + node_name:
        problems.append("it names another user")
    if [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] != [NODES_GROUP]:
        problems.append("it names other groups")
    if "clientAuth" not in extended_key_usages(cert):
        problems.append("it is not for client authentication")
    if not any(is_signed_by(cert, ca) for ca in cas):
        problems.append("the cluster CA did not sign it")
    if problems:
        raise BootstrapError("the signed certificate is refused: " + "; ".join(problems))
    return cert


def request_certificate(client: ApiClient, node_name: str, key: keys.PrivateKey, timeout_seconds: float) -> bytes:
    """Sends a CSR for `node_name` signed by `key`; returns the PEM certificate once it is signed."""
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-csr-"},
            "spec": {"request": base64.b64encode(node_client_csr_pem(key, node_name)).decode("ascii"),
                     "signerName": KUBELET_CLIENT_SIGNER, "usages": list(CLIENT_USAGES)}}
    try:
        name = client.create(CSR_PATH, body)["metadata"]["name"]
    except ApiStatusError as exc:
        raise BootstrapError(f"cannot create the certificate signing request: {exc.message}") from None
    deadline = time.monotonic() + timeout_seconds
    while True:
        csr = client.get(f"{CSR_PATH}/{name}")
        status = csr.get("status") or {}
        for condition in status.get("conditions") or ():
            if condition.get("type") in ("Denied", "Failed"):
                raise BootstrapError(f"certificate signing request {name} {condition['type'].lower()}: "
                                     f"{condition.get('reason', '')} {condition.get('message', '')}".rstrip())
        if status.get("certificate"):
            return base64.b64decode(status["certificate"])
        if time.monotonic() > deadline:
            raise BootstrapError(f"certificate signing request {name} was not approved and signed within "
                                 f"{timeout_seconds:g} s (see `kubectl get csr {name}`)")
        time.sleep(POLL_SECONDS)


def new_credentials(client: ApiClient, server: str, ca_pem: bytes, config: BootstrapConfig) -> Credentials:
    """Asks for a new client certificate through `client` and writes the node's kubeconfig with it."""
    key = keys.generate_private_key()
    cert_pem = request_certificate(client, config.node_name, key, config.csr_timeout_seconds)
    check_issued(cert_pem, key, config.node_name, ca_pem)
    key_pem = keys.private_key_pem(key)
    try:
        files.ensure_directory(config.kubeconfig.parent)
        write_kubeconfig(config.kubeconfig, cluster_name="securekube", server_url=server, ca_pem=ca_pem,
                         user_name=NODE_USER_PREFIX + config.node_name, client_cert_pem=cert_pem,
                         client_key_pem=key_pem)
    except PkiError as exc:
        raise BootstrapError(str(exc)) from None
    return Credentials(server=server, ca_pem=ca_pem, client_cert_pem=cert_pem, client_key_pem=key_pem)


def node_credentials(config: BootstrapConfig, now: dt.datetime | None = None) -> Credentials:
    """The node's credentials: its kubeconfig's while usable, else new ones through the bootstrap token."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if config.kubeconfig.exists():
        try:
            current = load_kubeconfig(config.kubeconfig)
        except ApiClientError:
            current = None
        if current is not None and usable(current, config.node_name, now):
            return current
    if config.bootstrap_kubeconfig is None:
        raise BootstrapError(f"{config.kubeconfig} holds no valid certificate for node {config.node_name} and no "
                             "bootstrap kubeconfig was given")
    bootstrap = load_kubeconfig(config.bootstrap_kubeconfig)
    if not bootstrap.token:
        raise BootstrapError(f"{config.bootstrap_kubeconfig} has no bootstrap token")
    return new_credentials(ApiClient(bootstrap), bootstrap.server, bootstrap.ca_pem, config)


def rotate(client: ApiClient, current: Credentials, config: BootstrapConfig) -> Credentials:
    """The next certificate, requested as the node itself; the client switches to it."""
    fresh = new_credentials(client, current.server, current.ca_pem, config)
    client.use(fresh)
    return fresh


def describe(cert: x509.Certificate) -> str:
    """A one-line description of a client certificate for logs (never key material)."""
    return (f"{cert.subject.rfc4514_string()} serial {cert.serial_number:x} valid until "
            f"{cert.not_valid_after_utc.isoformat()}")
