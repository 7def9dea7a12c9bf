"""certificates.k8s.io/v1 CertificateSigningRequest: a request for a certificate, approved, then signed.

Cluster-scoped, with upstream's three ways to write one, each allowed to change one thing:
- the main resource: metadata only (spec is immutable, status belongs to the subresources);
- `approval` (`kubectl certificate approve|deny`): the Approved/Denied conditions;
- `status` (the signer): status.certificate, once, and conditions other than Approved/Denied.
Who asked is never taken from the body: spec.username/uid/groups/extra are the authenticated
requester's (`record_requester`), so an approver can trust them. Validation follows upstream
(pkg/apis/certificates/validation): a parseable, validly signed PEM request, a signer name, known
usages, and conditions where Approved and Denied exclude each other and cannot be removed.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

from cryptography import x509

from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.certificates import CERTIFICATE_SIGNING_REQUEST
from securekube.pki.csr import CsrError, parse_csr_pem
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy

GROUP = "certificates.k8s.io"
APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
# Conditions that only ever hold (status "True") once present.
_TRUE_ONLY_TYPES = (APPROVED, DENIED, FAILED)
_STATUS_VALUES = ["False", "True", "Unknown"]
MIN_EXPIRATION_SECONDS = 600
KNOWN_USAGES = sorted({
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
})
_REQUESTER_FIELDS = ("username", "uid", "groups", "extra")
_SIGNER_DOMAIN = re.compile(rf"{v.DNS1123_LABEL}(\.{v.DNS1123_LABEL})+")
_SIGNER_PATH = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?")


def _spec(obj: dict) -> dict:
    return obj.get("spec") if isinstance(obj.get("spec"), dict) else {}


def _status(obj: dict) -> dict:
    return obj.get("status") if isinstance(obj.get("status"), dict) else {}


def conditions(obj: dict) -> list[dict]:
    """The CSR's status conditions (malformed entries left out)."""
    found = _status(obj).get("conditions")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def has_condition(obj: dict, kind: str) -> bool:
    """Whether the CSR carries a condition of type `kind` (Approved, Denied, Failed) that holds."""
    return any(c.get("type") == kind and c.get("status", "True") == "True" for c in conditions(obj))


def decoded_request(obj: dict) -> bytes:
    """spec.request as PEM bytes (raises ValueError when it is not base64)."""
    raw = _spec(obj).get("request")
    if not isinstance(raw, str):
        raise ValueError("spec.request must be a base64 string")
    return base64.b64decode(raw, validate=True)


def _condition_column(obj: dict, now: dt.datetime) -> str:
    shown = [c.get("type", "") for c in conditions(obj) if c.get("type") in _TRUE_ONLY_TYPES]
    if _status(obj).get("certificate"):
        shown.append("Issued")
    return ",".join(shown) or "Pending"


def _duration_column(obj: dict, now: dt.datetime) -> str:
    seconds = _spec(obj).get("expirationSeconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return "<none>"
    # Upstream's printer: the shortest exact form of the duration.
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def _now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validate_signer_name(name: Any) -> list[Cause]:
    field = "spec.signerName"
    if not name:
        return [v.required(field)]
    if not isinstance(name, str):
        return [v.type_error(field, name, "a string")]
    domain, slash, path = name.partition("/")
    if not slash or not path:
        return [v.invalid(field, name, "must be a fully qualified domain and path of the form "
                                       "'example.com/signer-name'")]
    causes = []
    if len(domain) > 253 or not _SIGNER_DOMAIN.fullmatch(domain):
        causes.append(v.invalid(field, name, "validating domain: should be a domain with at least two "
                                             "segments separated by dots"))
    if len(path) > 253 or not _SIGNER_PATH.fullmatch(path):
        causes.append(v.invalid(field, name, "validating path: must consist of alphanumeric characters, "
                                             "'-', '_', '.' or '/'"))
    return causes


def _validate_request(obj: dict) -> list[Cause]:
    if not _spec(obj).get("request"):
        return [v.required("spec.request")]
    try:
        parse_csr_pem(decoded_request(obj))
    except (ValueError, binascii.Error):
        return [Cause("FieldValueInvalid", "Invalid value: \"<request data>\": must be base64-encoded PEM",
                      "spec.request")]
    except CsrError as error:
        return [Cause("FieldValueInvalid", f"Invalid value: \"<request data>\": {error}", "spec.request")]
    return []


def _validate_usages(usages: Any) -> list[Cause]:
    if not usages:
        return [v.required("spec.usages")]
    if not isinstance(usages, list):
        return [v.type_error("spec.usages", usages, "a list of strings")]
    causes, seen = [], set()
    for i, usage in enumerate(usages):
        if usage not in KNOWN_USAGES:
            causes.append(v.unsupported(f"spec.usages[{i}]", usage, KNOWN_USAGES))
        elif usage in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{usage}"', f"spec.usages[{i}]"))
        seen.add(usage)
    return causes


def _validate_conditions(obj: dict) -> list[Cause]:
    raw = _status(obj).get("conditions")
    if raw is None:
        return []
    if not isinstance(raw, list):
        return [v.type_error("status.conditions", raw, "a list")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, condition in enumerate(raw):
        field = f"status.conditions[{i}]"
        if not isinstance(condition, dict):
            causes.append(v.type_error(field, condition, "an object"))
            continue
        kind, status = condition.get("type"), condition.get("status")
        if not kind:
            causes.append(v.required(f"{field}.type"))
        allowed = ["True"] if kind in _TRUE_ONLY_TYPES else _STATUS_VALUES
        if not status:
            causes.append(v.required(f"{field}.status"))
        elif status not in allowed:
            causes.append(v.unsupported(f"{field}.status", status, allowed))
        if kind == APPROVED and DENIED in seen or kind == DENIED and APPROVED in seen:
            causes.append(v.invalid(f"{field}.type", kind, "Approved and Denied conditions are mutually exclusive"))
        if kind in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{kind}"', f"{field}.type"))
        if isinstance(kind, str):
            seen.add(kind)
    return causes


def certificate_problem(encoded: Any) -> str | None:
    """Why status.certificate is not one or more PEM CERTIFICATE blocks (None when it is, or is empty)."""
    if not encoded:
        return None
    try:
        pem = base64.b64decode(encoded, validate=True)
    except (TypeError, ValueError, binascii.Error):
        return "must be base64-encoded PEM"
    blocks = re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", pem, re.S)
    if not blocks:
        return "must contain at least one CERTIFICATE PEM block"
    for label, body in blocks:
        if label != b"CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{label.decode()}"'
        if b":" in body:
            return "no PEM block headers are permitted"
        try:
            x509.load_pem_x509_certificate(b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n")
        except ValueError:
            return "x509: malformed certificate"
    return None


def _with_types(obj: dict, kinds: tuple[str, ...]) -> list[dict]:
    return [c for c in conditions(obj) if c.get("type") in kinds]


def _stamp_condition_times(new: dict, old: dict | None) -> None:
    """lastUpdateTime defaults to now; lastTransitionTime is kept while a condition's status holds (upstream)."""
    previous = {c.get("type"): c for c in conditions(old)} if old else {}
    now = _now_text()
    for condition in conditions(new):
        # Clients (kubectl) send unset times as null.
        if not condition.get("lastUpdateTime"):
            condition["lastUpdateTime"] = now
        before = previous.get(condition.get("type"))
        if condition.get("lastTransitionTime"):
            continue
        if before is not None and before.get("status") == condition.get("status") and before.get("lastTransitionTime"):
            condition["lastTransitionTime"] = before["lastTransitionTime"]
        else:
            condition["lastTransitionTime"] = now


class CertificateSigningRequestStrategy(Strategy):
    type = ResourceType(GROUP, "v1", "CertificateSigningRequest", "certificatesigningrequests",
                        "certificatesigningrequest", False, ("csr",), ("status", "approval"))
    has_status = True
    status_subresources = ("status", "approval")
    name_check = staticmethod(v.path_segment_name)  # upstream: "We don't care what you call your certificate requests"
    schema = field_paths(CERTIFICATE_SIGNING_REQUEST)
    columns = (
        NAME_COLUMN, AGE_COLUMN,
        Column("SignerName", "string", lambda o, now: _spec(o).get("signerName", "")),
        Column("Requestor", "string", lambda o, now: _spec(o).get("username", "")),
        Column("RequestedDuration", "string", _duration_column),
        Column("Condition", "string", _condition_column),
    )
    extra_field_selectors = {"spec.signerName": lambda o: _spec(o).get("signerName", "")}

    def prepare_create(self, obj: dict) -> None:
        super().prepare_create(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for key in _REQUESTER_FIELDS:  # only ever the authenticated requester (record_requester)
                spec.pop(key, None)

    def initial_status(self, obj: dict) -> None:
        obj["status"] = {}  # never pre-approved

    def record_requester(self, obj: dict, user: Any) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec["username"] = user.username
        if user.uid:
            spec["uid"] = user.uid
        spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {key: list(values) for key, values in user.extra.items()}

    def prepare_update(self, new: dict, old: dict, subresource: str) -> None:
        super().prepare_update(new, old, subresource)  # main resource: status from the stored object
        if "spec" in old:
            new["spec"] = old["spec"]  # immutable after creation, through every path
        status = new.get("status")
        if not isinstance(status, dict):
            return
        if subresource == "approval":
            # The approval writes conditions only; the certificate is the signer's.
            if "certificate" in _status(old):
                status["certificate"] = _status(old)["certificate"]
            else:
                status.pop("certificate", None)
        if subresource in self.status_subresources:
            _stamp_condition_times(new, old)

    def validate(self, obj: dict) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [v.required("spec")]
        causes = _validate_request(obj) + _validate_usages(spec.get("usages")) + _validate_signer_name(
            spec.get("signerName"))
        seconds = spec.get("expirationSeconds")
        if seconds is not None:
            if not isinstance(seconds, int) or isinstance(seconds, bool):
                causes.append(v.type_error("spec.expirationSeconds", seconds, "an integer"))
            elif seconds < MIN_EXPIRATION_SECONDS:
                causes.append(v.invalid("spec.expirationSeconds", seconds,
                                        "may not specify a duration less than 600 seconds (10 minutes)"))
        status = obj.get("status")
        if status is not None and not isinstance(status, dict):
            return causes + [v.type_error("status", status, "an object")]
        causes += _validate_conditions(obj)
        problem = certificate_problem(_status(obj).get("certificate"))
        if problem:
            causes.append(Cause("FieldValueInvalid", f'Invalid value: "<certificate data>": {problem}',
                                "status.certificate"))
        return causes

    def validate_subresource_update(self, new: dict, old: dict, subresource: str) -> list[Cause]:
        causes = []
        for kind in _TRUE_ONLY_TYPES:
            if len(_with_types(new, (kind,))) < len(_with_types(old, (kind,))):
                causes.append(v.forbidden("status.conditions", f'updates may not remove a condition of type "{kind}"'))
        if subresource != "approval":
            for kind in (APPROVED, DENIED):
                before, after = _with_types(old, (kind,)), _with_types(new, (kind,))
                if len(after) > len(before):
                    causes.append(v.forbidden("status.conditions", f'updates may not add a condition of type "{kind}"'))
                elif len(after) == len(before) and after != before:
                    causes.append(v.forbidden("status.conditions",
                                              f'updates may not modify a condition of type "{kind}"'))
        certificate, previous = _status(new).get("certificate"), _status(old).get("certificate")
        if certificate != previous:
            if subresource != "status":
                causes.append(v.forbidden("status.certificate", "updates may not set certificate content"))
            elif previous:
                causes.append(v.forbidden("status.certificate", "updates may not modify existing certificate content"))
            elif not has_condition(new, APPROVED) or has_condition(new, DENIED) or has_condition(new, FAILED):
                # Stricter than upstream, which leaves this to each signer: no certificate without approval.
                causes.append(v.forbidden("status.certificate", "may only be set on an approved request"))
        return causes
