"""Builders for audit.k8s.io/v1 Event objects, field for field as kube-apiserver writes them.

`new_event` is the one way securekube makes an event. It applies the level (no request body below
Request, no response body below RequestResponse, no bodies at all for non-resource requests) and
always strips secret values, whatever the policy says: the data of Secrets, tokens in TokenRequest
and TokenReview objects, and `kubectl apply`'s copy of a Secret in its last-applied annotation.
A policy that logs secrets at RequestResponse is a mistake this module does not let through.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes

API_VERSION = "audit.k8s.io/v1"

LEVEL_NONE = "None"
LEVEL_METADATA = "Metadata"
LEVEL_REQUEST = "Request"
LEVEL_REQUEST_RESPONSE = "RequestResponse"
LEVELS = (LEVEL_NONE, LEVEL_METADATA, LEVEL_REQUEST, LEVEL_REQUEST_RESPONSE)

STAGE_REQUEST_RECEIVED = "RequestReceived"
STAGE_RESPONSE_STARTED = "ResponseStarted"
STAGE_RESPONSE_COMPLETE = "ResponseComplete"
STAGE_PANIC = "Panic"
STAGES = (STAGE_REQUEST_RECEIVED, STAGE_RESPONSE_STARTED, STAGE_RESPONSE_COMPLETE, STAGE_PANIC)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Kinds whose values are credentials, and the fields that hold them.
_SECRET_FIELDS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "Secret": (("data",), ("stringData",), ("metadata", "annotations", LAST_APPLIED)),
    "TokenRequest": (("status", "token"),),
    "TokenReview": (("spec", "token"), ("status", "token")),
}
# The same fields by (group, resource, subresource), for bodies without a kind (merge patches).
_SECRET_RESOURCES: Mapping[tuple[str, str, str], str] = {
    ("", "secrets", ""): "Secret",
    ("", "serviceaccounts", "token"): "TokenRequest",
    ("authentication.k8s.io", "tokenreviews", ""): "TokenReview",
}


def micro_time(moment: datetime) -> str:
    """A timestamp as metav1.MicroTime: RFC 3339 in UTC with microseconds, e.g. 2024-01-02T03:04:05.123456Z."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    # isoformat, not strftime: it always writes four year digits (glibc's %Y does not below 1000),
    # and it is the cheaper of the two on a path every request takes twice.
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


def now_micro_time() -> str:
    """The current time as metav1.MicroTime."""
    return micro_time(datetime.now(timezone.utc))


def user_info(user: UserInfo) -> dict[str, Any]:
    """authentication.k8s.io/v1 UserInfo as upstream serializes it (empty fields omitted)."""
    return user.to_dict()


def object_reference(attrs: Attributes, *, uid: str = "", resource_version: str = "") -> dict[str, Any] | None:
    """The event's objectRef for a resource request (lists included, without a name); None otherwise."""
    if not attrs.resource_request:
        return None
    fields = (
        ("resource", attrs.resource), ("namespace", attrs.namespace), ("name", attrs.name),
        ("uid", uid), ("apiGroup", attrs.api_group), ("apiVersion", attrs.api_version),
        ("resourceVersion", resource_version), ("subresource", attrs.subresource),
    )
    return {key: value for key, value in fields if value}


def response_status(code: int, *, status: str = "", message: str = "", reason: str = "",
                    details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The event's responseStatus (a metav1.Status): just the code on success, as upstream."""
    out: dict[str, Any] = {"metadata": {}}
    if status:
        out["status"] = status
    if message:
        out["message"] = message
    if reason:
        out["reason"] = reason
    if details:
        out["details"] = dict(details)
    out["code"] = code
    return out


def new_event(
    *,
    audit_id: str,
    stage: str,
    level: str,
    request_uri: str,
    verb: str,
    user: UserInfo,
    request_received: datetime,
    stage_time: datetime | None = None,
    impersonated_user: UserInfo | None = None,
    source_ips: Iterable[str] = (),
    user_agent: str = "",
    object_ref: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
    request_object: Any = None,
    response_object: Any = None,
    omit_managed_fields: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An audit.k8s.io/v1 Event in upstream's field order, with bodies cut to what `level` allows.

    `verb` is the API verb (get, list, create, ...), or the lower-case HTTP method for a
    non-resource request. Secret values are stripped from the bodies at every level.
    """
    if level not in LEVELS or level == LEVEL_NONE:
        raise ValueError(f"an audit event needs level Metadata, Request or RequestResponse, not {level!r}")
    if stage not in STAGES:
        raise ValueError(f"unknown audit stage {stage!r}")
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": API_VERSION,
        "level": level,
        "auditID": audit_id,
        "stage": stage,
        "requestURI": request_uri,
        "verb": verb,
        "user": user_info(user),
    }
    if impersonated_user is not None:
        event["impersonatedUser"] = user_info(impersonated_user)
    ips = list(source_ips)
    if ips:
        event["sourceIPs"] = ips
    if user_agent:
        event["userAgent"] = user_agent
    if object_ref:
        event["objectRef"] = dict(object_ref)
    if status is not None:
        event["responseStatus"] = dict(status)
    if object_ref:  # upstream records no bodies for non-resource requests
        ref = object_ref
        request_body, response_body = redact_for_level(
            level, request_object, response_object, api_group=str(ref.get("apiGroup", "")),
            resource=str(ref.get("resource", "")), subresource=str(ref.get("subresource", "")))
        if omit_managed_fields:
            request_body, response_body = strip_managed_fields(request_body), strip_managed_fields(response_body)
        if request_body is not None:
            event["requestObject"] = request_body
        if response_body is not None:
            event["responseObject"] = response_body
    event["requestReceivedTimestamp"] = micro_time(request_received)
    event["stageTimestamp"] = micro_time(stage_time or datetime.now(timezone.utc))
    if annotations:
        event["annotations"] = dict(annotations)
    return event


def redact_for_level(level: str, request_obj: Any, response_obj: Any, *, api_group: str = "",
                     resource: str = "", subresource: str = "") -> tuple[Any, Any]:
    """The request and response bodies an event at `level` may carry, with secret values removed.

    Returns copies (the caller's objects are never changed). A body that cannot be inspected (not
    a JSON object, e.g. a JSON patch list) is dropped entirely when it targets a secret resource.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown audit level {level!r}")
    keep_request = level in (LEVEL_REQUEST, LEVEL_REQUEST_RESPONSE)
    keep_response = level == LEVEL_REQUEST_RESPONSE
    sensitive_kind = _SECRET_RESOURCES.get((api_group, resource, subresource))
    request = _redact_body(request_obj, sensitive_kind) if keep_request else None
    response = _redact_body(response_obj, sensitive_kind) if keep_response else None
    return request, response


def strip_managed_fields(obj: Any) -> Any:
    """A copy of an object (or of each item of a list) without metadata.managedFields, as upstream's omitManagedFields."""
    if not isinstance(obj, dict):
        return obj
    out = _without_managed_fields(obj)
    items = out.get("items")
    if isinstance(items, list):
        out["items"] = [_without_managed_fields(item) if isinstance(item, dict) else item for item in items]
    return out


def event_list(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An audit.k8s.io/v1 EventList, the body upstream's webhook backend POSTs."""
    return {"kind": "EventList", "apiVersion": API_VERSION, "metadata": {}, "items": [dict(e) for e in events]}


def _redact_body(body: Any, sensitive_kind: str | None) -> Any:
    if body is None:
        return None
    if sensitive_kind is not None and not isinstance(body, dict):
        return None  # e.g. a JSON patch of a Secret: its values cannot be told apart, so none is kept
    copied = _copy_stripping_secrets(body)
    if sensitive_kind is not None and isinstance(copied, dict) and copied.get("kind") != sensitive_kind:
        # A body without the kind (a merge patch): strip the fields where that kind keeps its secrets.
        _strip_fields(copied, _SECRET_FIELDS[sensitive_kind])
    return copied


def _copy_stripping_secrets(value: Any) -> Any:
    # A deep copy that removes secret fields from every object of a secret kind at any depth
    # (list items, Table rows with includeObject=Object, ...).
    if isinstance(value, dict):
        copied = {key: _copy_stripping_secrets(item) for key, item in value.items()}
        fields = _SECRET_FIELDS.get(copied.get("kind")) if isinstance(copied.get("kind"), str) else None
        if fields:
            _strip_fields(copied, fields)
        return copied
    if isinstance(value, (list, tuple)):
        return [_copy_stripping_secrets(item) for item in value]
    return value


def _strip_fields(obj: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> None:
    for path in paths:
        parent: Any = obj
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return dict(obj)
    out = dict(obj)
    out["metadata"] = {key: value for key, value in metadata.items() if key != "managedFields"}
    return out
