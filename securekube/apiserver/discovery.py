"""API discovery documents: legacy (/api, /apis, /api/v1, /apis/<g>/<v>) and aggregated (apidiscovery.k8s.io/v2)."""
from __future__ import annotations

from securekube.registry.catalog import Catalog
from securekube.registry.resource import ResourceType

# Subresources are read and written as views of their object, except those that create something.
_SUBRESOURCE_VERBS = {"token": ["create"], "binding": ["create"], "log": ["get"]}


def subresource_verbs(subresource: str) -> list[str]:
    return _SUBRESOURCE_VERBS.get(subresource, ["get", "patch", "update"])
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str | None) -> bool:
    """True when the client's first choice is the v2 aggregated discovery document."""
    first = (accept or "").split(",", 1)[0]
    params = dict(p.strip().split("=", 1) for p in first.split(";")[1:] if "=" in p)
    return params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2" and params.get("as") == "APIGroupDiscoveryList"


def api_versions() -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def _group_doc(name: str, versions: list[str]) -> dict:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(catalog: Catalog) -> dict:
    groups = [_group_doc(g, vs) for g, vs in catalog.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(catalog: Catalog, group: str) -> dict | None:
    versions = catalog.groups().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def types_in(catalog: Catalog, group: str, version: str) -> list[ResourceType]:
    return [t for t in catalog.types if t.group == group and t.version == version]


def api_resource_list(catalog: Catalog, group: str, version: str) -> dict | None:
    types = types_in(catalog, group, version)
    if not types:
        return None
    resources = []
    for t in types:
        entry = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                 "verbs": list(t.verbs)}
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in t.subresources:
            resources.append({"name": f"{t.plural}/{sub}", "singularName": "", "namespaced": t.namespaced,
                              "kind": t.kind, "verbs": subresource_verbs(sub)})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": t.api_version, "resources": resources}


def aggregated(catalog: Catalog, core: bool) -> dict:
    """The v2 aggregated document for /api (core=True) or /apis (core=False)."""
    items = []
    for group, versions in catalog.groups().items():
        if (group == "") != core:
            continue
        version_docs = []
        for version in versions:
            resources = []
            for t in types_in(catalog, group, version):
                kind_ref = {"group": t.group, "version": t.version, "kind": t.kind}
                doc = {"resource": t.plural, "responseKind": kind_ref,
                       "scope": "Namespaced" if t.namespaced else "Cluster", "singularResource": t.singular,
                       "verbs": list(t.verbs)}
                if t.short_names:
                    doc["shortNames"] = list(t.short_names)
                if t.categories:
                    doc["categories"] = list(t.categories)
                if t.subresources:
                    doc["subresources"] = [{"subresource": sub, "responseKind": kind_ref, "verbs": subresource_verbs(sub)}
                                           for sub in t.subresources]
                resources.append(doc)
            version_docs.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_docs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
