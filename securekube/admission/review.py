"""AdmissionRequest <-> admission.k8s.io/v1 AdmissionReview, in upstream's JSON.

The Rego policies read the review as kube-apiserver would send it to a webhook: empty optional
fields (name, namespace, subResource, object, oldObject, options, the parts of userInfo) are
absent, not empty. Gatekeeper templates read the same request as `input.review`, with the
namespace object under `_unstable.namespace` as Gatekeeper adds it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from securekube.admission.interfaces import AdmissionRequest
from securekube.authn.interfaces import UserInfo
from securekube.policy.admission_input import ADMISSION_REVIEW_API_VERSION, ADMISSION_REVIEW_KIND

__all__ = ["admission_review", "gatekeeper_review", "request_document", "request_from_review", "user_document"]


def user_document(user: UserInfo) -> dict[str, Any]:
    """authentication.k8s.io/v1 UserInfo JSON (empty fields left out)."""
    return user.to_dict()


def request_document(request: AdmissionRequest) -> dict[str, Any]:
    """The AdmissionReview's `request` for `request`."""
    kind = dict(request.kind)
    resource = dict(request.resource)
    document: dict[str, Any] = {
        "uid": request.uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "operation": request.operation,
        "userInfo": user_document(request.user_info),
        "dryRun": request.dry_run,
    }
    if request.sub_resource:
        document["subResource"] = document["requestSubResource"] = request.sub_resource
    if request.name:
        document["name"] = request.name
    if request.namespace:
        document["namespace"] = request.namespace
    if request.object is not None:
        document["object"] = request.object
    if request.old_object is not None:
        document["oldObject"] = request.old_object
    if request.options is not None:
        document["options"] = request.options
    return document


def admission_review(request: AdmissionRequest) -> dict[str, Any]:
    return {"apiVersion": ADMISSION_REVIEW_API_VERSION, "kind": ADMISSION_REVIEW_KIND,
            "request": request_document(request)}


def gatekeeper_review(request: AdmissionRequest) -> dict[str, Any]:
    """Gatekeeper's `input.review`: the request, and its Namespace under `_unstable`."""
    review = request_document(request)
    if request.namespace_object is not None:
        review["_unstable"] = {"namespace": request.namespace_object}
    return review


def _string_map(value: Any, keys: tuple[str, ...]) -> dict[str, str]:
    value = value if isinstance(value, Mapping) else {}
    return {key: str(value.get(key, "") or "") for key in keys}


def request_from_review(review: Mapping[str, Any],
                        namespace_object: dict[str, Any] | None = None) -> AdmissionRequest:
    """The AdmissionRequest an AdmissionReview describes (ValueError when it is not one)."""
    request = review.get("request")
    if not isinstance(request, Mapping):
        raise ValueError("the AdmissionReview has no request")
    user = request.get("userInfo") if isinstance(request.get("userInfo"), Mapping) else {}
    extra = user.get("extra") if isinstance(user.get("extra"), Mapping) else {}
    user_info = UserInfo(
        username=str(user.get("username", "") or ""), uid=str(user.get("uid", "") or ""),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        extra={str(k): tuple(str(v) for v in (values or ())) for k, values in extra.items()},
    )
    obj, old = request.get("object"), request.get("oldObject")
    options = request.get("options")
    return AdmissionRequest(
        uid=str(request.get("uid", "") or ""),
        kind=_string_map(request.get("kind"), ("group", "version", "kind")),
        resource=_string_map(request.get("resource"), ("group", "version", "resource")),
        sub_resource=str(request.get("subResource", "") or ""),
        name=str(request.get("name", "") or ""),
        namespace=str(request.get("namespace", "") or ""),
        operation=str(request.get("operation", "") or ""),
        user_info=user_info,
        object=dict(obj) if isinstance(obj, Mapping) else None,
        old_object=dict(old) if isinstance(old, Mapping) else None,
        dry_run=bool(request.get("dryRun", False)),
        options=dict(options) if isinstance(options, Mapping) else None,
        namespace_object=namespace_object,
    )
