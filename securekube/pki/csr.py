"""PKCS#10 certificate signing requests for nodes: building, checking and signing them.

A kubelet proves who it wants to be with a CSR (subject `CN=system:node:<name>, O=system:nodes`,
signed by its fresh key); the API server's signer turns an approved one into a short-lived client
certificate from the cluster CA. The rules here are upstream's for the signer
`kubernetes.io/kube-apiserver-client-kubelet` (k8s.io/kubernetes pkg/apis/certificates
IsKubeletClientCSR), plus securekube's key policy: ECDSA P-256 only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from securekube.pki import certs
from securekube.pki.errors import PkiError
from securekube.pki.keys import PrivateKey
from securekube.pki.layout import KeyPair
from securekube.pki.profiles import CertProfile, Subject

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
# What a kubelet with an ECDSA key asks for; key encipherment is tolerated (RSA kubelets add it).
NODE_CLIENT_USAGES = frozenset({"digital signature", "client auth"})
NODE_CLIENT_OPTIONAL_USAGES = frozenset({"key encipherment"})
PEM_TYPE = "CERTIFICATE REQUEST"

# CSR usage names (certificates.k8s.io/v1 KeyUsage) -> profile usage names (see pki/profiles.py).
_KEY_USAGES = {"digital signature": "digitalSignature", "key encipherment": "keyEncipherment",
               "content commitment": "contentCommitment", "data encipherment": "dataEncipherment",
               "key agreement": "keyAgreement"}
_EXTENDED_KEY_USAGES = {"client auth": "clientAuth", "server auth": "serverAuth"}


class CsrError(PkiError):
    """A CSR that cannot be parsed, is not validly signed, or does not meet a signer's rules."""


def node_client_csr_pem(key: PrivateKey, node_name: str) -> bytes:
    """The PEM CSR a kubelet sends for its client certificate, signed by `key`."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, NODE_USER_PREFIX + node_name)])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM)


def parse_csr_pem(data: bytes) -> x509.CertificateSigningRequest:
    """One PEM `CERTIFICATE REQUEST` with a valid self-signature, or CsrError with upstream's wording."""
    text = data.decode("ascii", errors="replace")
    begin = f"-----BEGIN {PEM_TYPE}-----"
    if begin not in text or text.count("-----BEGIN ") != 1:
        raise CsrError(f"PEM block type must be {PEM_TYPE}")
    try:
        request = x509.load_pem_x509_csr(data)
    except ValueError:
        raise CsrError("x509: malformed certificate request") from None
    if not request.is_signature_valid:
        raise CsrError("x509: signature verification failure")
    return request


def _names(request: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in request.subject.get_attributes_for_oid(oid)]


def node_client_problems(request: x509.CertificateSigningRequest, usages: list[str] | tuple[str, ...]) -> list[str]:
    """Why `request` is not a well-formed kubelet client CSR (empty: it is one)."""
    problems = []
    organizations = _names(request, NameOID.ORGANIZATION_NAME)
    common_names = _names(request, NameOID.COMMON_NAME)
    if organizations != [NODES_GROUP]:
        problems.append(f'subject organization must be exactly ["{NODES_GROUP}"]')
    if len(common_names) != 1 or not common_names[0].startswith(NODE_USER_PREFIX) \
            or len(common_names[0]) == len(NODE_USER_PREFIX):
        problems.append(f'subject common name must be "{NODE_USER_PREFIX}<nodeName>"')
    other = [a for a in request.subject if a.oid not in (NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME)]
    if other:
        problems.append("subject may hold only the common name and organization")
    try:
        request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        problems.append("subject alternative names (DNS, email, IP, URI) are not allowed")
    except x509.ExtensionNotFound:
        pass
    given = set(usages)
    if len(given) != len(usages) or not NODE_CLIENT_USAGES <= given \
            or not given <= NODE_CLIENT_USAGES | NODE_CLIENT_OPTIONAL_USAGES:
        problems.append('usages must be "digital signature" and "client auth" (and optionally "key encipherment")')
    key = request.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        problems.append("the key must be ECDSA P-256")
    return problems


def node_name_of_csr(request: x509.CertificateSigningRequest) -> str:
    """The node name a (checked) kubelet client CSR asks for."""
    return _names(request, NameOID.COMMON_NAME)[0][len(NODE_USER_PREFIX):]


def sign_node_client_csr(request: x509.CertificateSigningRequest, usages: list[str] | tuple[str, ...],
                         ca: KeyPair, *, lifetime: timedelta, now: datetime) -> x509.Certificate:
    """A client certificate for a checked kubelet client CSR, signed by `ca`, valid for `lifetime`."""
    problems = node_client_problems(request, usages)
    if problems:
        raise CsrError("not a kubelet client certificate request: " + "; ".join(problems))
    profile = CertProfile(
        name="kube-apiserver-client-kubelet",
        subject=Subject(common_name=_names(request, NameOID.COMMON_NAME)[0], organizations=(NODES_GROUP,)),
        lifetime=lifetime,
        issuer="ca",
        key_usages=tuple(_KEY_USAGES[u] for u in usages if u in _KEY_USAGES),
        extended_key_usages=tuple(_EXTENDED_KEY_USAGES[u] for u in usages if u in _EXTENDED_KEY_USAGES),
    )
    public_key = request.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):  # checked above; keeps the types honest
        raise CsrError("the key must be ECDSA P-256")
    return certs.issue_leaf(profile, public_key, issuer_cert=ca.cert, issuer_key=ca.key, now=now)
