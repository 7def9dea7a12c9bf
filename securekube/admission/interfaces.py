"""Admission: the checks a write passes after authorization and before it is stored.

A request is an `AdmissionRequest` (the fields of an admission.k8s.io/v1 AdmissionReview's
`request`, plus the Namespace it lives in). Each stage is a `MutatingAdmission` (may return a
changed object) or a `ValidatingAdmission` (may only allow or deny); `chain.py` runs the
mutating ones first, then the validating ones, as kube-apiserver does.

A stage denies by raising `AdmissionError`, a Kubernetes `Status` error with upstream's code and
wording (403 Forbidden for a policy denial, 422 Invalid for a malformed policy label). Warnings
go back to the client (the `Warning` header); audit annotations go into the request's audit
event. A stage that fails in any other way is treated as a denial by the chain (fail closed).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo

__all__ = [
    "CONNECT",
    "CREATE",
    "DELETE",
    "OPERATIONS",
    "UPDATE",
    "AdmissionError",
    "AdmissionRequest",
    "AdmissionResult",
    "MutatingAdmission",
    "ValidatingAdmission",
]

CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"
OPERATIONS = frozenset({CREATE, UPDATE, DELETE, CONNECT})


@dataclass(frozen=True)
class AdmissionRequest:
    """One write as admission sees it: the AdmissionReview v1 `request` fields.

    `kind` is {"group", "version", "kind"} of the object (for CONNECT, of the options object such
    as PodExecOptions); `resource` is {"group", "version", "resource"}. `object` is the new
    object (None for DELETE), `old_object` the stored one (None for CREATE and CONNECT), `options`
    the operation's options (CreateOptions, ...). `namespace_object` is the Namespace the request
    is in, for Pod Security labels and namespace selectors; None for cluster-scoped resources.
    Objects are plain JSON-like dicts; stages never change them in place.
    """

    uid: str
    kind: Mapping[str, str]
    resource: Mapping[str, str]
    sub_resource: str
    name: str
    namespace: str
    operation: str
    user_info: UserInfo
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool = False
    options: dict[str, Any] | None = None
    namespace_object: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(sorted(OPERATIONS))}")

    @property
    def group_resource(self) -> tuple[str, str]:
        return self.resource.get("group", ""), self.resource.get("resource", "")


@dataclass
class AdmissionResult:
    """What a stage (or the whole chain) decided when it allowed the request."""

    object: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class AdmissionError(ApiError):
    """A denial, as the `Status` the client receives.

    `warnings` and `audit_annotations` are what the chain gathered before the denial (they are
    still returned to the client and recorded in the audit event, as upstream does).
    """

    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api_error(cls, error: ApiError) -> AdmissionError:
        return cls(error.code, error.reason, error.message, dict(error.details))


class MutatingAdmission(Protocol):
    """A stage that may change the object; `name` identifies it in errors and audit annotations."""

    name: str

    def admit(self, request: AdmissionRequest) -> AdmissionResult:
        """The object to continue with (`request.object` when unchanged); raises AdmissionError to deny."""
        ...


class ValidatingAdmission(Protocol):
    """A stage that allows or denies; it never changes the object."""

    name: str

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        """Warnings and audit annotations of an allowed request; raises AdmissionError to deny."""
        ...
