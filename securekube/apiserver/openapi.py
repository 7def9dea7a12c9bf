"""OpenAPI v3 documents: our paths, verbs and query parameters, and every kind's schema with its fields.

kubectl reads /openapi/v3 for two things. `kubectl explain` walks the schemas (names, types,
descriptions, `required`) from the kind tagged with `x-kubernetes-group-version-kind`. `kubectl
apply` looks for a PATCH operation that lists the `fieldValidation` parameter; when it finds one,
it sends `fieldValidation=Strict` and leaves unknown-field checks to the server.

The schemas are rendered from the typed descriptions in securekube/api/schemas/, the same ones
fieldValidation checks against, under upstream's schema names so `$ref`s read as upstream's do.
"""
from __future__ import annotations

import hashlib
import json

from securekube.api.schema import Array, Map, Node, Object, Scalar
from securekube.api.schemas import kind_schema
from securekube.api.schemas.gatekeeper import constraint_schema
from securekube.api.schemas.meta import list_object
from securekube.apiserver.discovery import subresource_verbs, types_in
from securekube.registry.catalog import Catalog
from securekube.registry.kinds.gatekeeper import CONSTRAINT_GROUP
from securekube.registry.resource import ResourceType

_QUERY = {"in": "query", "schema": {"type": "string"}, "uniqueItems": True}
WRITE_PARAMS = [{"name": n, **_QUERY} for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
READ_PARAMS = [{"name": n, **_QUERY} for n in ("pretty",)]
LIST_PARAMS = [{"name": n, **_QUERY} for n in ("labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
                                             "timeoutSeconds", "watch", "allowWatchBookmarks", "pretty")]
# Strategic merge patch is served, but not announced here: announced, kubectl would compute it from
# these schemas, which do not carry the patch merge keys; unannounced, it uses its compiled-in types.
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")
BODY_TYPES = ("application/json", "application/yaml")
_COMPONENTS = "#/components/schemas/"


def _ref(name: str) -> dict:
    return {"$ref": _COMPONENTS + name}


class _Components:
    """The components.schemas of one document, each named schema rendered once."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict] = {}

    def add(self, name: str, schema: dict) -> dict:
        known = self.schemas.setdefault(name, schema)
        if known != schema:  # two different descriptions under one upstream name: a bug in api/schemas
            raise ValueError(f"{name} is described twice, differently")
        return _ref(name)

    def value(self, node: Node) -> dict:
        """The schema of a value of `node`'s type: a `$ref` for named types, inline otherwise."""
        if isinstance(node, Scalar):
            body = _scalar(node)
            return self.add(node.name, body) if node.name else body
        if isinstance(node, Array):
            return {"type": "array", "items": self.value(node.items)}
        if isinstance(node, Map):
            return {"type": "object", "additionalProperties": self.value(node.values)}
        body = self.object(node)
        return self.add(node.name, body) if node.name else body

    def object(self, node: Object) -> dict:
        body: dict = {"type": "object", "description": node.description}
        if node.fields:
            body["properties"] = {f.name: self.property(f.type, f.description) for f in node.fields}
        if node.required:
            body["required"] = list(node.required)
        if node.free_form:
            body["x-kubernetes-preserve-unknown-fields"] = True
        if node.gvk is not None:
            body["x-kubernetes-group-version-kind"] = [
                {"group": node.gvk.group, "version": node.gvk.version, "kind": node.gvk.kind}]
        return body

    def property(self, node: Node, description: str) -> dict:
        value = self.value(node)
        # OpenAPI 3.0 ignores siblings of a $ref, so a field's own description needs the allOf wrapper
        # (upstream's documents do the same).
        if "$ref" in value:
            return {"allOf": [value], "description": description}
        return {**value, "description": description}


def _scalar(node: Scalar) -> dict:
    body: dict = {}
    if node.description:
        body["description"] = node.description
    if node.type:
        body["type"] = node.type
    else:
        body["oneOf"] = [{"type": t} for t in node.one_of]
    if node.format:
        body["format"] = node.format
    if node.format == "int-or-string":
        body["x-kubernetes-int-or-string"] = True
    if node.enum:
        body["enum"] = list(node.enum)
    return body


def _kind_description(t: ResourceType) -> Object | None:
    """The typed description of a served kind; None for the review kinds, which are not described."""
    if t.custom and t.group == CONSTRAINT_GROUP:
        return constraint_schema(t.group, t.version, t.kind)
    return kind_schema(t.group, t.version, t.kind)


def _stub_name(t: ResourceType) -> str:
    group = t.group.split(".")[0] if t.group else "core"
    return f"io.k8s.api.{group}.{t.version}.{t.kind}"


def _kind_schemas(t: ResourceType, components: _Components) -> tuple[dict, dict]:
    """Adds the schemas of `t` (and of its list) to `components`; returns their `$ref`s."""
    described = _kind_description(t)
    if described is None:
        stub = {"type": "object", "description": f"{t.kind} ({t.api_version})",
                "x-kubernetes-group-version-kind": [{"group": t.group, "version": t.version, "kind": t.kind}]}
        ref = components.add(_stub_name(t), stub)
        return ref, ref
    return components.value(described), components.value(list_object(described))


def _operation(t: ResourceType, action: str, params: list[dict], response: dict,
               body_types: tuple[str, ...] = ()) -> dict:
    op: dict = {
        "operationId": f"{action}{t.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": response}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
    }
    if body_types:
        op["requestBody"] = {"required": True, "content": {
            c: {"schema": response if c == "application/json" else {"type": "object"}} for c in body_types}}
    return op


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def group_version_document(catalog: Catalog, group: str, version: str) -> dict | None:
    types = types_in(catalog, group, version)
    if not types:
        return None
    paths: dict[str, dict] = {}
    components = _Components()
    for t in types:
        base = f"/{_gv_path(group, version)}/" + ("namespaces/{namespace}/" if t.namespaced else "") + t.plural
        ref, list_ref = _kind_schemas(t, components)
        if t.verbs == ("create",):  # a review: computed per request, never stored
            paths[base] = {"post": _operation(t, "post", WRITE_PARAMS, ref, BODY_TYPES)}
            continue
        paths[base] = {"get": _operation(t, "list", LIST_PARAMS, list_ref),
                       "post": _operation(t, "post", WRITE_PARAMS, ref, BODY_TYPES),
                       "delete": _operation(t, "deletecollection", WRITE_PARAMS, ref)}
        paths[base + "/{name}"] = {"get": _operation(t, "get", READ_PARAMS, ref),
                                   "put": _operation(t, "put", WRITE_PARAMS, ref, BODY_TYPES),
                                   "patch": _operation(t, "patch", WRITE_PARAMS, ref, PATCH_TYPES),
                                   "delete": _operation(t, "delete", WRITE_PARAMS, ref)}
        for sub in t.subresources:
            if subresource_verbs(sub) == ["create"]:
                paths[base + "/{name}/" + sub] = {
                    "post": _operation(t, "post", WRITE_PARAMS, ref, ("application/json",))}
                continue
            paths[base + "/{name}/" + sub] = {"get": _operation(t, "get", READ_PARAMS, ref),
                                              "put": _operation(t, "put", WRITE_PARAMS, ref, ("application/json",)),
                                              "patch": _operation(t, "patch", WRITE_PARAMS, ref, PATCH_TYPES)}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1"}, "paths": paths,
            "components": {"schemas": dict(sorted(components.schemas.items()))}}


def root_document(catalog: Catalog) -> dict:
    """The /openapi/v3 index: one URL per group-version, with a content hash for client caches."""
    paths = {}
    for group, versions in catalog.groups().items():
        for version in versions:
            doc = group_version_document(catalog, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            url = f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"
            paths[_gv_path(group, version)] = {"serverRelativeURL": url}
    return {"paths": paths}
