"""What a request is about, parsed from method, path and query as upstream's RequestInfoFactory does."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

# /api/v1/namespaces/{name}/{these} address the namespace itself, not a resource inside it.
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
# Legacy path prefixes that name the verb: /api/v1/watch/..., /api/v1/proxy/...
SPECIAL_VERBS = frozenset({"watch", "proxy"})
# The verbs that change stored objects.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


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


def _watch_requested(query: dict[str, str]) -> bool:
    # As upstream's query-to-bool conversion: present and not "false"/"0" means true.
    value = query.get("watch")
    return value is not None and value.lower() not in ("false", "0")


def parse_request_info(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    method = method.upper()
    parts = [p for p in path.strip("/").split("/") if p]
    # Non-resource requests carry the lowercased HTTP method (HEAD is "head", not "get"), as upstream.
    nonresource_verb = method.lower()
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
    special_verb = ""
    if rest[0] in SPECIAL_VERBS and len(rest) > 1:
        special_verb, rest = rest[0], rest[1:]
    verb = special_verb or _METHOD_VERBS.get(method, "")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        # Server-side apply creates a namespace with PATCH /api/v1/namespaces/<name>: that
        # request is not "inside" the namespace it creates (upstream's special case).
        if not (len(rest) == 2 and verb == "patch"):
            namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and special_verb != "proxy" else ""
    if len(rest) > 3 and subresource:
        # Deeper paths (e.g. pods/x/proxy/...) are not served; keep the verb but mark the subresource.
        subresource = "/".join(rest[2:])
    if verb == "get" and not name:
        verb = "watch" if _watch_requested(query) else "list"
    elif verb == "delete" and not name:
        verb = "deletecollection"
    return RequestInfo(True, path, verb, prefix, group, version, namespace, resource, subresource, name)


def request_info(scope: dict) -> RequestInfo:
    """The info of an ASGI request, parsed once and shared by the stages through the scope."""
    info = scope.get("securekube.request_info")
    if info is None:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        info = parse_request_info(scope["method"], scope["path"], query)
        scope["securekube.request_info"] = info
    return info
