"""The /openapi/v3 documents: schemas with fields under upstream's names, and the operations kubectl reads."""
from __future__ import annotations

import pytest

from securekube.apiserver.openapi import group_version_document, root_document
from securekube.registry.catalog import Catalog
from securekube.registry.kinds.gatekeeper import CONSTRAINT_GROUP, CONSTRAINT_VERSION, ConstraintStrategy

COMPONENTS = "#/components/schemas/"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    served = Catalog()
    served.register(ConstraintStrategy("K8sRequiredLabels"))
    return served


def every_ref(value) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if "$ref" in value else []
        return own + [r for v in value.values() for r in every_ref(v)]
    if isinstance(value, list):
        return [r for v in value for r in every_ref(v)]
    return []


def documents(catalog: Catalog) -> dict[str, dict]:
    return {f"{group}/{version}": group_version_document(catalog, group, version)
            for group, versions in catalog.groups().items() for version in versions}


def test_every_ref_names_a_schema_of_the_same_document(catalog):
    for where, doc in documents(catalog).items():
        refs = every_ref(doc)
        assert refs, where
        missing = {r for r in refs if r.removeprefix(COMPONENTS) not in doc["components"]["schemas"]}
        assert missing == set(), where


def test_a_kind_is_tagged_with_its_gvk_and_refers_to_its_parts_by_upstream_name(catalog):
    schemas = group_version_document(catalog, "", "v1")["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": COMPONENTS + "io.k8s.api.core.v1.PodSpec"}]
    assert pod["properties"]["metadata"]["allOf"] == [
        {"$ref": COMPONENTS + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    spec = schemas["io.k8s.api.core.v1.PodSpec"]
    assert spec["required"] == ["containers"]
    assert spec["properties"]["containers"]["type"] == "array"
    assert spec["properties"]["containers"]["items"] == {"$ref": COMPONENTS + "io.k8s.api.core.v1.Container"}
    seccomp = schemas["io.k8s.api.core.v1.SeccompProfile"]
    assert seccomp["properties"]["type"]["enum"] == ["Localhost", "RuntimeDefault", "Unconfined"]
    assert seccomp["required"] == ["type"]
    limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {"$ref": COMPONENTS + "io.k8s.apimachinery.pkg.api.resource.Quantity"}


def test_shared_scalars_have_upstreams_shapes(catalog):
    schemas = group_version_document(catalog, "", "v1")["components"]["schemas"]
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"] == [{"type": "string"},
                                                                                   {"type": "number"}]
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["format"] == "int-or-string" and int_or_string["x-kubernetes-int-or-string"] is True
    assert (schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["type"],
            schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"]) == ("string", "date-time")


def test_patch_announces_field_validation_but_not_strategic_merge(catalog):
    paths = group_version_document(catalog, "rbac.authorization.k8s.io", "v1")["paths"]
    patch = paths["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert sorted(patch["requestBody"]["content"]) == ["application/json-patch+json", "application/merge-patch+json"]


def test_list_responses_are_the_list_kind_with_list_metadata(catalog):
    doc = group_version_document(catalog, "", "v1")
    listed = doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]
    assert listed["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": COMPONENTS + "io.k8s.api.core.v1.PodList"}
    pod_list = doc["components"]["schemas"]["io.k8s.api.core.v1.PodList"]
    assert pod_list["properties"]["items"]["items"] == {"$ref": COMPONENTS + "io.k8s.api.core.v1.Pod"}
    assert pod_list["properties"]["metadata"]["allOf"] == [
        {"$ref": COMPONENTS + "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}]


def test_constraint_kinds_get_the_generic_constraint_schema_inline_as_a_crd(catalog):
    schemas = group_version_document(catalog, CONSTRAINT_GROUP, CONSTRAINT_VERSION)["components"]["schemas"]
    constraint = schemas["sh.gatekeeper.constraints.v1beta1.K8sRequiredLabels"]
    assert constraint["x-kubernetes-group-version-kind"] == [
        {"group": CONSTRAINT_GROUP, "version": CONSTRAINT_VERSION, "kind": "K8sRequiredLabels"}]
    spec = constraint["properties"]["spec"]
    assert sorted(spec["properties"]) == ["enforcementAction", "match", "parameters"]
    assert spec["properties"]["parameters"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "kinds" in spec["properties"]["match"]["properties"]


def test_review_kinds_keep_a_tagged_stub(catalog):
    schemas = group_version_document(catalog, "authorization.k8s.io", "v1")["components"]["schemas"]
    review = schemas["io.k8s.api.authorization.v1.SubjectAccessReview"]
    assert review["x-kubernetes-group-version-kind"] == [
        {"group": "authorization.k8s.io", "version": "v1", "kind": "SubjectAccessReview"}]


def test_the_index_lists_constraint_kinds_once_defined_and_keeps_other_hashes(catalog):
    # kubectl caches each document by its hash: defining a Constraint kind must not invalidate core/v1.
    before = root_document(Catalog())["paths"]
    after = root_document(catalog)["paths"]
    assert after["api/v1"] == before["api/v1"]
    assert "apis/constraints.gatekeeper.sh/v1beta1" in after and "apis/constraints.gatekeeper.sh/v1beta1" not in before
