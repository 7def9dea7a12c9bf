"""certificates.k8s.io/v1 CertificateSigningRequest."""
from __future__ import annotations

from securekube.api.schema import BYTES, INT32, STRING, TIME, GroupVersionKind, array, field, map_of, obj
from securekube.api.schemas.meta import kind_object

CERTIFICATES = "io.k8s.api.certificates.v1"

CSR_CONDITION = obj(
    f"{CERTIFICATES}.CertificateSigningRequestCondition", "A decision or outcome of a request: Approved, Denied "
                                                          "or Failed.",
    field("lastTransitionTime", TIME, "When the status last changed."),
    field("lastUpdateTime", TIME, "When the condition was last written."),
    field("message", STRING, "Detail in words."),
    field("reason", STRING, "Short reason."),
    field("status", STRING, "True, False or Unknown.", required=True),
    field("type", STRING, "Approved, Denied or Failed.", required=True),
)

CSR_SPEC = obj(
    f"{CERTIFICATES}.CertificateSigningRequestSpec", "The certificate asked for, and who asked.",
    field("expirationSeconds", INT32, "Requested certificate lifetime; the signer may shorten it."),
    # Free keys, each with a list of values: upstream's map[string]ExtraValue.
    field("extra", map_of(array(STRING)), "Extra attributes of the requester; set by the server."),
    field("groups", array(STRING), "Groups of the requester; set by the server."),
    field("request", BYTES, "PEM-encoded PKCS#10 request, base64-encoded.", required=True),
    field("signerName", STRING, "Signer asked to sign, such as kubernetes.io/kube-apiserver-client.",
          required=True),
    field("uid", STRING, "UID of the requester; set by the server."),
    field("usages", array(STRING), "Key usages asked for, such as digital signature and client auth."),
    field("username", STRING, "Name of the requester; set by the server."),
)

CSR_STATUS = obj(
    f"{CERTIFICATES}.CertificateSigningRequestStatus", "The decision about a request and the certificate issued.",
    field("certificate", BYTES, "PEM-encoded certificate once issued, base64-encoded."),
    field("conditions", array(CSR_CONDITION), "Approval, denial and failure."),
)

CERTIFICATE_SIGNING_REQUEST = kind_object(
    f"{CERTIFICATES}.CertificateSigningRequest", "A request to have a certificate signed by a named signer.",
    GroupVersionKind("certificates.k8s.io", "v1", "CertificateSigningRequest"),
    field("spec", CSR_SPEC, "The request.", required=True),
    field("status", CSR_STATUS, "The decision and the certificate."),
)
