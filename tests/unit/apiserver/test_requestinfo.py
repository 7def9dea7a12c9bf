"""Request info: the verb and resource attributes authorization decides on, as upstream's RequestInfoFactory."""
from __future__ import annotations

import pytest

from securekube.apiserver.requestinfo import parse_request_info

RBAC = "rbac.authorization.k8s.io"

# method, path, query -> verb, group, version, namespace, resource, name, subresource
RESOURCE_CASES = [
    # collections and items
    ("GET", "/api/v1/namespaces", {}, "list", "", "v1", "", "namespaces", "", ""),
    ("GET", "/api/v1/namespaces/x", {}, "get", "", "v1", "x", "namespaces", "x", ""),
    ("GET", "/api/v1/namespaces/x/pods", {}, "list", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods/y", {}, "get", "", "v1", "x", "pods", "y", ""),
    ("HEAD", "/api/v1/namespaces/x/pods/y", {}, "get", "", "v1", "x", "pods", "y", ""),
    ("GET", "/api/v1/pods", {}, "list", "", "v1", "", "pods", "", ""),
    ("HEAD", "/api/v1/pods", {}, "list", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/nodes/n1", {}, "get", "", "v1", "", "nodes", "n1", ""),
    # namespace subresources address the namespace itself
    ("GET", "/api/v1/namespaces/x/status", {}, "get", "", "v1", "x", "namespaces", "x", "status"),
    ("PUT", "/api/v1/namespaces/x/status", {}, "update", "", "v1", "x", "namespaces", "x", "status"),
    ("PUT", "/api/v1/namespaces/x/finalize", {}, "update", "", "v1", "x", "namespaces", "x", "finalize"),
    # subresources of namespaced objects
    ("GET", "/api/v1/namespaces/x/pods/y/status", {}, "get", "", "v1", "x", "pods", "y", "status"),
    ("PATCH", "/api/v1/namespaces/x/pods/y/status", {}, "patch", "", "v1", "x", "pods", "y", "status"),
    ("PUT", "/api/v1/nodes/n1/status", {}, "update", "", "v1", "", "nodes", "n1", "status"),
    # named groups
    ("GET", f"/apis/{RBAC}/v1/clusterroles", {}, "list", RBAC, "v1", "", "clusterroles", "", ""),
    ("GET", f"/apis/{RBAC}/v1/clusterroles/admin", {}, "get", RBAC, "v1", "", "clusterroles", "admin", ""),
    ("POST", f"/apis/{RBAC}/v1/namespaces/x/rolebindings", {}, "create", RBAC, "v1", "x", "rolebindings", "", ""),
    ("DELETE", f"/apis/{RBAC}/v1/namespaces/x/roles", {}, "deletecollection", RBAC, "v1", "x", "roles", "", ""),
    ("POST", "/apis/extensions/v1beta3/namespaces/other/pods", {}, "create", "extensions", "v1beta3", "other", "pods",
     "", ""),
    # verbs
    ("POST", "/api/v1/namespaces/x/pods", {}, "create", "", "v1", "x", "pods", "", ""),
    ("PUT", "/api/v1/namespaces/x/pods/y", {}, "update", "", "v1", "x", "pods", "y", ""),
    ("PATCH", "/api/v1/namespaces/x/pods/y", {}, "patch", "", "v1", "x", "pods", "y", ""),
    ("DELETE", "/api/v1/namespaces/x/pods/y", {}, "delete", "", "v1", "x", "pods", "y", ""),
    ("DELETE", "/api/v1/namespaces/x/pods", {}, "deletecollection", "", "v1", "x", "pods", "", ""),
    ("DELETE", "/api/v1/nodes", {}, "deletecollection", "", "v1", "", "nodes", "", ""),
    ("DELETE", "/api/v1/namespaces", {}, "deletecollection", "", "v1", "", "namespaces", "", ""),
    # server-side apply creating a namespace is not a request inside that namespace
    ("PATCH", "/api/v1/namespaces/new-namespace", {}, "patch", "", "v1", "", "namespaces", "new-namespace", ""),
    # watch: any value but "false"/"0" turns a list into a watch
    ("GET", "/api/v1/pods", {"watch": "true"}, "watch", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods", {"watch": "1"}, "watch", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods", {"watch": "True"}, "watch", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/pods", {"watch": "false"}, "list", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods", {"watch": "0"}, "list", "", "v1", "x", "pods", "", ""),
    ("GET", f"/apis/{RBAC}/v1/clusterroles", {"watch": "true", "resourceVersion": "5"}, "watch", RBAC, "v1", "",
     "clusterroles", "", ""),
    # ... but a GET of a named object stays a get
    ("GET", "/api/v1/namespaces/x/pods/y", {"watch": "true"}, "get", "", "v1", "x", "pods", "y", ""),
    # the legacy special-verb paths
    ("GET", "/api/v1/watch/pods", {}, "watch", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/watch/namespaces/other/pods", {}, "watch", "", "v1", "other", "pods", "", ""),
    ("GET", "/api/v1/watch/namespaces/other/pods/foo", {}, "watch", "", "v1", "other", "pods", "foo", ""),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo", {}, "proxy", "", "v1", "other", "pods", "foo", ""),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", {}, "proxy", "", "v1", "other",
     "pods", "foo", ""),
    # a method that has no verb
    ("OPTIONS", "/api/v1/pods", {}, "", "", "v1", "", "pods", "", ""),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "verb", "group", "version", "namespace", "resource", "name", "subresource"),
    RESOURCE_CASES,
)
def test_resource_requests(method: str, path: str, query: dict[str, str], verb: str, group: str, version: str,
                           namespace: str, resource: str, name: str, subresource: str) -> None:
    info = parse_request_info(method, path, query)
    assert info.is_resource_request
    assert info.path == path
    assert (info.verb, info.api_group, info.api_version, info.namespace, info.resource, info.name,
            info.subresource) == (verb, group, version, namespace, resource, name, subresource)
    assert info.api_prefix == path.split("/")[1]


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [
        ("GET", "/", "get"),
        ("GET", "", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/api/v1/", "get"),
        ("GET", "/apis", "get"),
        ("GET", "/apis/rbac.authorization.k8s.io", "get"),
        ("GET", "/apis/rbac.authorization.k8s.io/v1", "get"),
        ("GET", "/apis/extensions/v1beta1/", "get"),
        ("GET", "/healthz", "get"),
        ("GET", "/version", "get"),
        ("GET", "/openapi/v3", "get"),
        ("GET", "/not-api/v1/pods", "get"),
        ("POST", "/logs", "post"),
        ("HEAD", "/healthz", "head"),  # the lowercased method, as upstream: HEAD is not GET here
        ("PUT", "/metrics", "put"),
    ],
)
def test_non_resource_requests_carry_the_lowercased_method(method: str, path: str, verb: str) -> None:
    info = parse_request_info(method, path, {})
    assert not info.is_resource_request
    assert info.verb == verb
    assert info.path == path
    assert (info.api_group, info.resource, info.name, info.namespace) == ("", "", "", "")


def test_method_case_does_not_matter() -> None:
    assert parse_request_info("get", "/api/v1/pods", {}).verb == "list"


def test_paths_below_a_subresource_are_not_taken_for_the_subresource() -> None:
    # Deliberately stricter than upstream (which says subresource "proxy" here): nothing below a
    # subresource is served, so it never matches an RBAC rule for the subresource itself.
    info = parse_request_info("GET", "/api/v1/namespaces/x/pods/y/proxy/sub/path", {})
    assert (info.resource, info.name, info.subresource) == ("pods", "y", "proxy/sub/path")
    assert parse_request_info("PUT", "/api/v1/namespaces/x/pods/y/status/extra", {}).subresource != "status"
