"""OpenAPI v3 documents: enough for kubectl to find our paths, verbs and query parameters.

kubectl reads /openapi/v3 to learn whether the server validates fields itself (a PATCH
operation of the kind that lists the `fieldValidation` parameter); when it does, kubectl
sends `fieldValidation=Strict` instead of downloading schemas to validate client-side.
Schemas here are object stubs tagged with their group-version-kind (no field docs yet).
"""
from __future__ import annotations

import hashlib
import json

from securekube.apiserver.discovery import subresource_verbs, types_in
from securekube.registry.catalog import Catalog
from securekube.registry.resource import ResourceType

_QUERY = {"in": "query", "schema": {"type": "string"}, "uniqueItems": True}
WRITE_PARAMS = [{"name": n, **_QUERY} for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
READ_PARAMS = [{"name": n, **_QUERY} for n in ("pretty",)]
LIST_PARAMS = [{"name": n, **_QUERY} for n in ("labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
                                             "timeoutSeconds", "watch", "allowWatchBookmarks", "pretty")]
# Strategic merge patch is served, but not announced here: kubectl would then compute it from
# these schemas, which carry no fields yet. Unannounced, kubectl uses its compiled-in types.
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _schema_name(t: ResourceType) -> str:
    group = t.group.split(".")[0] if t.group else "core"
    return f"io.k8s.api.{group}.{t.version}.{t.kind}"


def _operation(t: ResourceType, action: str, params: list[dict], body_types: tuple[str, ...] = ()) -> dict:
    ref = {"$ref": f"#/components/schemas/{_schema_name(t)}"}
    op: dict = {
        "operationId": f"{action}{t.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
    }
    if body_types:
        op["requestBody"] = {"required": True, "content": {c: {"schema": ref if c == "application/json" else {"type": "object"}}
                                                           for c in body_types}}
    return op


def group_version_document(catalog: Catalog, group: str, version: str) -> dict | None:
    types = types_in(catalog, group, version)
    if not types:
        return None
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = {}
    for t in types:
        base = f"/{_gv_path(group, version)}/" + ("namespaces/{namespace}/" if t.namespaced else "") + t.plural
        schemas[_schema_name(t)] = {
            "type": "object",
            "description": f"{t.kind} ({t.api_version})",
            "x-kubernetes-group-version-kind": [{"group": t.group, "version": t.version, "kind": t.kind}],
        }
        if t.verbs == ("create",):  # a review: computed per request, never stored
            paths[base] = {"post": _operation(t, "post", WRITE_PARAMS, ("application/json", "application/yaml"))}
            continue
        paths[base] = {"get": _operation(t, "list", LIST_PARAMS),
                       "post": _operation(t, "post", WRITE_PARAMS, ("application/json", "application/yaml")),
                       "delete": _operation(t, "deletecollection", WRITE_PARAMS)}
        paths[base + "/{name}"] = {"get": _operation(t, "get", READ_PARAMS),
                                   "put": _operation(t, "put", WRITE_PARAMS, ("application/json", "application/yaml")),
                                   "patch": _operation(t, "patch", WRITE_PARAMS, PATCH_TYPES),
                                   "delete": _operation(t, "delete", WRITE_PARAMS)}
        for sub in t.subresources:
            if subresource_verbs(sub) == ["create"]:
                paths[base + "/{name}/" + sub] = {"post": _operation(t, "post", WRITE_PARAMS, ("application/json",))}
                continue
            paths[base + "/{name}/" + sub] = {"get": _operation(t, "get", READ_PARAMS),
                                              "put": _operation(t, "put", WRITE_PARAMS, ("application/json",)),
                                              "patch": _operation(t, "patch", WRITE_PARAMS, PATCH_TYPES)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1"}, "paths": paths,
            "components": {"schemas": schemas}}


def root_document(catalog: Catalog) -> dict:
    """The /openapi/v3 index: one URL per group-version, with a content hash for client caches."""
    paths = {}
    for group, versions in catalog.groups().items():
        for version in versions:
            doc = group_version_document(catalog, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            paths[_gv_path(group, version)] = {"serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"}
    return {"paths": paths}
