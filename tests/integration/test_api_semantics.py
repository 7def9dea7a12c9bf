"""Kubernetes API semantics over a real TLS socket: errors as Status, limits, concurrency, paging, dry run."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

CM = "/api/v1/namespaces/default/configmaps"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def configmap(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


@pytest.fixture()
def api(cluster):
    with cluster.client() as client:
        yield client


def names(api, path: str = CM) -> set[str]:
    return {i["metadata"]["name"] for i in api.get(path).json()["items"]}


def test_every_response_has_an_audit_id(api):
    assert len(api.get("/version").headers["Audit-Id"]) == 36
    assert len(api.get(f"{CM}/missing").headers["Audit-Id"]) == 36


def test_not_found_is_a_status(api):
    response = api.get(f"{CM}/missing")
    assert response.status_code == 404
    body = response.json()
    assert (body["kind"], body["reason"], body["message"]) == ("Status", "NotFound", 'configmaps "missing" not found')
    assert api.get("/api/v1/namespaces/default/widgets").status_code == 404


def test_body_over_3_mib_is_413_and_nothing_is_stored(api):
    big = configmap("too-big", blob="x" * (3 * 1024 * 1024 + 10))
    response = api.post(CM, content=json.dumps(big), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["reason"] == "RequestEntityTooLarge"
    assert "too-big" not in names(api)


@pytest.mark.parametrize("content_type, body", [
    ("application/json", b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "broken"'),
    ("application/yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n  data: [\n"),
])
def test_malformed_body_is_400_and_nothing_is_stored(api, content_type, body):
    response = api.post(CM, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400 and response.json()["reason"] == "BadRequest"
    assert "broken" not in names(api)


def test_yaml_body_is_accepted(api):
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-yaml}\ndata: {k: v}\n"
    assert api.post(CM, content=body, headers={"Content-Type": "application/yaml"}).status_code == 201
    assert api.get(f"{CM}/from-yaml").json()["data"] == {"k": "v"}


def test_invalid_object_is_422_with_field_paths(api):
    response = api.post(CM, json=configmap("Bad_Name", ok="1"))
    assert response.status_code == 422
    status = response.json()
    assert status["reason"] == "Invalid"
    assert status["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"')
    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.name"]

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}, "spec": {"containers": []}}
    response = api.post("/api/v1/namespaces/default/pods", json=pod)
    assert response.status_code == 422
    assert response.json()["details"]["causes"][0]["field"] == "spec.containers"

    wrong_type = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typed"},
                  "spec": {"containers": [{"name": "c", "image": 42}]}}
    response = api.post("/api/v1/namespaces/default/pods", json=wrong_type)
    assert response.status_code == 422
    assert "spec.containers[0].image" in [c["field"] for c in response.json()["details"]["causes"]]
    assert {"empty", "typed"}.isdisjoint(names(api, "/api/v1/namespaces/default/pods"))


def test_secret_value_never_echoed_in_errors(api):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leaky"},
              "data": {"token": "not base64 !! sup3r-s3cret"}}
    response = api.post("/api/v1/namespaces/default/secrets", json=secret)
    assert response.status_code == 422
    assert "sup3r-s3cret" not in response.text


def test_stale_update_is_409_conflict(api):
    created = api.post(CM, json=configmap("occ", v="1")).json()
    first = dict(created, data={"v": "2"})
    assert api.put(f"{CM}/occ", json=first).status_code == 200
    stale = dict(created, data={"v": "3"})  # still carries the first resourceVersion
    response = api.put(f"{CM}/occ", json=stale)
    assert response.status_code == 409 and response.json()["reason"] == "Conflict"
    assert "the object has been modified" in response.json()["message"]
    assert api.get(f"{CM}/occ").json()["data"] == {"v": "2"}


def test_already_exists_is_409(api):
    api.post(CM, json=configmap("twice"))
    response = api.post(CM, json=configmap("twice"))
    assert response.status_code == 409 and response.json()["reason"] == "AlreadyExists"


def test_dry_run_stores_nothing(api):
    response = api.post(f"{CM}?dryRun=All", json=configmap("dry", a="b"))
    assert response.status_code == 201 and response.json()["metadata"]["name"] == "dry"
    assert "dry" not in names(api)
    api.post(CM, json=configmap("wet", a="b"))
    assert api.delete(f"{CM}/wet?dryRun=All").status_code == 200
    assert "wet" in names(api)


def test_generate_name_and_uid(api):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    created = api.post(CM, json=body).json()
    assert created["metadata"]["name"].startswith("gen-") and len(created["metadata"]["name"]) == 9
    assert len(created["metadata"]["uid"]) == 36 and created["metadata"]["creationTimestamp"].endswith("Z")


def test_list_paging_with_limit_and_continue(api):
    api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "paging"}})
    path = "/api/v1/namespaces/paging/configmaps"
    for i in range(7):
        api.post(path, json=configmap(f"cm-{i}"))
    seen, token, pages = [], "", 0
    while True:
        page = api.get(path, params={"limit": 3, **({"continue": token} if token else {})}).json()
        seen += [i["metadata"]["name"] for i in page["items"]]
        pages += 1
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert seen == [f"cm-{i}" for i in range(7)] and pages == 3
    assert api.get(path, params={"continue": "garbage"}).status_code == 400


def test_table_for_kubectl_get(api):
    api.post(CM, json=configmap("tabled", a="1", b="2"))
    table = api.get(f"{CM}/tabled", headers={"Accept": TABLE}).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["rows"][0]["cells"][:2] == ["tabled", 2]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_finalizers_hold_deletion_until_removed(api):
    body = configmap("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    api.post(CM, json=body)
    deleted = api.delete(f"{CM}/held").json()
    assert deleted["metadata"]["deletionTimestamp"]
    assert api.get(f"{CM}/held").status_code == 200
    patch = {"metadata": {"finalizers": None}}
    assert api.patch(f"{CM}/held", json=patch, headers={"Content-Type": "application/merge-patch+json"}).status_code == 200
    assert api.get(f"{CM}/held").status_code == 404


def test_create_in_missing_namespace_is_404(api):
    response = api.post("/api/v1/namespaces/nowhere/configmaps", json=configmap("x"))
    assert response.status_code == 404 and response.json()["message"] == 'namespaces "nowhere" not found'


def test_discovery_documents(api):
    assert api.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"] for g in api.get("/apis").json()["groups"]}
    assert "rbac.authorization.k8s.io" in groups
    resources = {r["name"]: r for r in api.get("/api/v1").json()["resources"]}
    assert resources["pods"]["namespaced"] and "pods/status" in resources
    assert resources["namespaces"]["namespaced"] is False
    aggregated = api.get("/api", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    assert aggregated.headers["content-type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
    assert aggregated.json()["kind"] == "APIGroupDiscoveryList"


def test_field_validation_strict_warn_ignore(api):
    body = configmap("fields", a="1")
    body["dataa"] = {"typo": "x"}
    strict = api.post(f"{CM}?fieldValidation=Strict", json=body)
    assert strict.status_code == 400 and strict.json()["message"] == 'strict decoding error: unknown field "dataa"'
    assert "fields" not in names(api)
    warned = api.post(CM, json=body)  # Warn is the default
    assert warned.status_code == 201 and warned.headers["Warning"] == '299 - "unknown field \\"dataa\\""'
    assert "dataa" not in api.get(f"{CM}/fields").json()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typo"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "comand": ["sh"]}]}}
    response = api.post("/api/v1/namespaces/default/pods?fieldValidation=Strict", json=pod)
    assert response.json()["message"] == 'strict decoding error: unknown field "spec.containers[0].comand"'
