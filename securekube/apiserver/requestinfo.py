"""What a request is about, parsed from method, path and query as upstream's RequestInfoFactory does."""
from __future__ import annotations

from dataclasses import dataclass

# /api/v1/namespaces/{name}/{these} address the namespace itself, not a resource inside it.
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class RequestInfo:
    is_resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def parse_request_info(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    method = method.upper()
    parts = [p for p in path.strip("/").split("/") if p]
    nonresource_verb = {"GET": "get", "HEAD": "get"}.get(method, method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(False, path, nonresource_verb)
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if not rest:
            return RequestInfo(False, path, nonresource_verb)
        group, rest = rest[0], rest[1:]
    if not rest:
        return RequestInfo(False, path, nonresource_verb)  # /api or /apis/<group>: discovery
    version, rest = rest[0], rest[1:]
    if not rest:
        return RequestInfo(False, path, nonresource_verb)  # /api/v1: discovery
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        # Deeper paths (e.g. pods/x/proxy/...) are not served; keep the verb but mark the subresource.
        subresource = "/".join(rest[2:])
    if method in ("GET", "HEAD"):
        if query.get("watch") in ("1", "true"):
            verb = "watch"
        else:
            verb = "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
    return RequestInfo(True, path, verb, prefix, group, version, namespace, resource, subresource, name)
