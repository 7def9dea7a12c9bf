"""API errors as Kubernetes `Status` objects, with upstream reasons, codes and message forms."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One entry of `details.causes`: what is wrong with which field."""

    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    message: str
    field: str


@dataclass
class ApiError(Exception):
    """An error the API returns to the client as a `Status`."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    {"name": name, "group": group, "kind": resource})


def no_such_resource() -> ApiError:
    """A path the server does not serve (upstream's generic 404)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    {"name": name, "group": group, "kind": resource})


def conflict(resource: str, name: str, why: str, group: str = "") -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                    {"name": name, "group": group, "kind": resource})


STALE_OBJECT = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> ApiError:
    summary = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(
        422, "Invalid", f'{kind} "{name}" is invalid: {summary}',
        {"name": name, "group": group, "kind": kind,
         "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    # Upstream says nothing more: which check failed is for the audit log only.
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(resource: str, name: str, message: str, group: str = "") -> ApiError:
    what = _qualified(resource, group) or "resource"
    target = f'{what} "{name}"' if name else what
    return ApiError(403, "Forbidden", f"{target} is forbidden: {message}",
                    {"name": name, "group": group, "kind": resource} if resource else {})


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json (got {content_type!r})")


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)
