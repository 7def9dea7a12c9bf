"""Field accessors for audit.k8s.io Events read from untrusted files.

A log line is whatever someone wrote: any field may be missing or of the wrong JSON type. These
accessors return an empty value instead of raising, so one odd event cannot stop a review; the
reader has already rejected lines that are not Event-shaped objects.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Mapping

DECISION_ANNOTATION = "authorization.k8s.io/decision"
DECISION_ALLOW, DECISION_FORBID = "allow", "forbid"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
FINAL_STAGES = frozenset({"ResponseComplete", "Panic"})
UNAUTHENTICATED = "(unauthenticated)"  # how a request without a user name is shown

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CANONICAL_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z\Z")


def _obj(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict else _EMPTY


def _str(value: Any) -> str:
    return value if type(value) is str else ""


def user_name(event: Mapping[str, Any]) -> str:
    """Who authenticated (for an impersonated request: the impersonator)."""
    return _str(_obj(event.get("user")).get("username"))


def impersonated_name(event: Mapping[str, Any]) -> str:
    return _str(_obj(event.get("impersonatedUser")).get("username"))


def acting_name(event: Mapping[str, Any]) -> str:
    """Whose permissions authorized the request: the impersonated user if any, else the user."""
    return impersonated_name(event) or user_name(event)


def user_label(event: Mapping[str, Any]) -> str:
    """The user as a person reads it: `alice`, `alice (as bob)`, or `(unauthenticated)`."""
    name = user_name(event) or UNAUTHENTICATED
    impersonated = impersonated_name(event)
    return f"{name} (as {impersonated})" if impersonated else name


def groups(event: Mapping[str, Any]) -> list[str]:
    """The groups of the user and of the impersonated user."""
    found: list[str] = []
    for key in ("user", "impersonatedUser"):
        values = _obj(event.get(key)).get("groups")
        if type(values) is list:
            found.extend(v for v in values if type(v) is str)
    return found


def object_ref(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The objectRef; empty for non-resource requests (/healthz, /version, ...)."""
    return _obj(event.get("objectRef"))


def is_resource_request(event: Mapping[str, Any]) -> bool:
    return bool(_str(object_ref(event).get("resource")))


def resource(event: Mapping[str, Any]) -> str:
    return _str(object_ref(event).get("resource"))


def subresource(event: Mapping[str, Any]) -> str:
    return _str(object_ref(event).get("subresource"))


def api_group(event: Mapping[str, Any]) -> str:
    return _str(object_ref(event).get("apiGroup"))


def namespace(event: Mapping[str, Any]) -> str:
    return _str(object_ref(event).get("namespace"))


def name(event: Mapping[str, Any]) -> str:
    return _str(object_ref(event).get("name"))


def verb(event: Mapping[str, Any]) -> str:
    return _str(event.get("verb"))


def stage(event: Mapping[str, Any]) -> str:
    return _str(event.get("stage"))


def code(event: Mapping[str, Any]) -> int | None:
    """The HTTP status code of the response; None before the response (RequestReceived)."""
    value = _obj(event.get("responseStatus")).get("code")
    return value if type(value) is int else None


def decision(event: Mapping[str, Any]) -> str:
    """The authorizer's decision annotation: allow, forbid, or "" when not recorded."""
    return _str(_obj(event.get("annotations")).get(DECISION_ANNOTATION))


def is_denied(event: Mapping[str, Any]) -> bool:
    """Refused by authorization: a 403 response or a forbid decision."""
    return code(event) == 403 or decision(event) == DECISION_FORBID


def is_failed_authentication(event: Mapping[str, Any]) -> bool:
    return code(event) == 401


def source_ips(event: Mapping[str, Any]) -> list[str]:
    values = event.get("sourceIPs")
    return [v for v in values if type(v) is str] if type(values) is list else []


def source_ip(event: Mapping[str, Any]) -> str:
    """The first source IP: the client as the API server saw it (later ones are proxies)."""
    ips = source_ips(event)
    return ips[0] if ips else ""


def user_agent(event: Mapping[str, Any]) -> str:
    return _str(event.get("userAgent"))


def request_path(event: Mapping[str, Any]) -> str:
    """The requestURI without its query string (what RBAC nonResourceURLs match)."""
    return _str(event.get("requestURI")).split("?", 1)[0]


def timestamp_text(event: Mapping[str, Any]) -> str:
    """When the request arrived, as written in the log (the same on every stage of one request)."""
    # v1beta1 events also had `timestamp`; stageTimestamp is the last resort for odd writers.
    return (_str(event.get("requestReceivedTimestamp")) or _str(event.get("timestamp"))
            or _str(event.get("stageTimestamp")))


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC if the text has no offset); None if unreadable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def received_at(event: Mapping[str, Any]) -> datetime | None:
    return parse_time(timestamp_text(event))


def sortable_time(text: str) -> str | None:
    """The timestamp as UTC `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn`, which sorts as text; None if unreadable.

    Upstream writes UTC with a `Z` and 0-9 fraction digits; that common form is handled with string
    slicing (this runs once per request in summaries), anything else through a real parse.
    """
    if _CANONICAL_UTC.match(text):
        return text[:19] + "." + text[20:-1].ljust(9, "0")
    moment = parse_time(text)
    if moment is None:
        return None
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}000"


def is_service_account(user: str) -> bool:
    return user.startswith(SERVICE_ACCOUNT_PREFIX)


def resource_label(event: Mapping[str, Any]) -> str:
    """`pods`, `pods/exec`, `deployments.apps`; the URL path for a non-resource request."""
    res = resource(event)
    if not res:
        return request_path(event)
    group, sub = api_group(event), subresource(event)
    return res + (f".{group}" if group else "") + (f"/{sub}" if sub else "")


def object_label(event: Mapping[str, Any]) -> str:
    """The target in one cell: `pods/exec team-a/web-1`, `secrets team-a/*`, `nodes n1`, `/healthz`."""
    label = resource_label(event)
    if not resource(event):
        return label
    ns, obj = namespace(event), name(event)
    if ns:
        return f"{label} {ns}/{obj or '*'}"
    return f"{label} {obj}" if obj else f"{label} *"
