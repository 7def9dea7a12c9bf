"""Each kind's strategy, seen through its store: defaults, validation, immutable fields, field selectors."""
from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable

import pytest

from securekube.api.errors import ApiError
from securekube.api.selectors import parse_field_selector
from securekube.registry.kinds.configmaps import ConfigMapStrategy
from securekube.registry.kinds.events import EventStrategy
from securekube.registry.kinds.namespaces import NamespaceStrategy
from securekube.registry.kinds.nodes import NodeStrategy
from securekube.registry.kinds.pods import PodStrategy
from securekube.registry.kinds.rbac import (ClusterRoleBindingStrategy, ClusterRoleStrategy, RoleBindingStrategy,
                                            RoleStrategy)
from securekube.registry.kinds.secrets import SecretStrategy
from securekube.registry.kinds.serviceaccounts import ServiceAccountStrategy
from securekube.registry.registry import Registry
from securekube.registry.resource import Strategy
from securekube.registry.store import ListOptions, Store
from securekube.storage.sqlite import SqliteStorage

MakeStore = Callable[[type[Strategy]], Store]
RBAC = "rbac.authorization.k8s.io"


def rejected(call: Callable[[], object]) -> list[tuple[str, str, str]]:
    """The (reason, field, message) of each cause of the 422 that `call` must raise."""
    with pytest.raises(ApiError) as info:
        call()
    assert (info.value.code, info.value.reason) == (422, "Invalid")
    return [(c["reason"], c["field"], c["message"]) for c in info.value.details["causes"]]


def fields_of(causes: list[tuple[str, str, str]]) -> list[str]:
    return [field for _reason, field, _message in causes]


def select(store: Store, namespace: str, selector: str) -> list[str]:
    opts = ListOptions(field_selector=parse_field_selector(selector, store.strategy.field_selectors))
    return [o["metadata"]["name"] for o in store.list(namespace, opts).items]


def copy_of(obj: dict) -> dict:
    return json.loads(json.dumps(obj))


# -- the catalog --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "plural", "kind", "namespaced"),
    [
        ("", "namespaces", "Namespace", False),
        ("", "pods", "Pod", True),
        ("", "secrets", "Secret", True),
        ("", "configmaps", "ConfigMap", True),
        ("", "serviceaccounts", "ServiceAccount", True),
        ("", "events", "Event", True),
        ("", "nodes", "Node", False),
        (RBAC, "roles", "Role", True),
        (RBAC, "clusterroles", "ClusterRole", False),
        (RBAC, "rolebindings", "RoleBinding", True),
        (RBAC, "clusterrolebindings", "ClusterRoleBinding", False),
    ],
)
def test_every_kind_is_served_under_its_resource_name(registry: Registry, group: str, plural: str, kind: str,
                                                      namespaced: bool) -> None:
    store = registry.store(group, "v1", plural)
    assert store is not None
    assert (store.type.kind, store.type.namespaced) == (kind, namespaced)
    assert registry.store_for_kind(group, kind) is store


def test_unknown_resources_are_not_served(registry: Registry) -> None:
    assert registry.store("", "v1", "deployments") is None
    assert registry.store("", "v2", "pods") is None
    with pytest.raises(KeyError):
        registry.store_for_kind("apps", "Deployment")


def test_objects_are_stored_under_the_upstream_key_layout(registry: Registry, storage: SqliteStorage) -> None:
    registry.store_for_kind("", "Namespace").create("", {"metadata": {"name": "team"}})
    registry.store_for_kind("", "ConfigMap").create("team", {"metadata": {"name": "settings"}})
    registry.store_for_kind(RBAC, "ClusterRole").create("", {"metadata": {"name": "reader"}, "rules": []})
    keys = [kv.key for kv in storage.range("/registry/").kvs]
    assert keys == ["/registry/clusterroles/reader", "/registry/configmaps/team/settings", "/registry/namespaces/team"]


# -- namespaces ---------------------------------------------------------------------------------


def test_a_new_namespace_is_active_labelled_with_its_name_and_finalized_by_kubernetes(make_store: MakeStore) -> None:
    namespaces = make_store(NamespaceStrategy)
    created = namespaces.create("ignored", {"metadata": {"name": "team", "namespace": "x"}})
    assert created["status"] == {"phase": "Active"}
    assert created["spec"] == {"finalizers": ["kubernetes"]}
    assert created["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert "namespace" not in created["metadata"]
    assert namespaces.get("", "team") == created


def test_the_namespace_name_label_cannot_be_changed(make_store: MakeStore) -> None:
    namespaces = make_store(NamespaceStrategy)
    current = namespaces.create("", {"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "x"}}})
    assert current["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team"
    current["metadata"]["labels"] = {"owner": "me"}
    updated = namespaces.update("", "team", current)
    assert updated["metadata"]["labels"] == {"owner": "me", "kubernetes.io/metadata.name": "team"}


@pytest.mark.parametrize(("name", "detail"), [
    ("a.b", "must not contain dots"),
    ("Team", "a lowercase RFC 1123 label must consist of"),
    ("x" * 64, "must be no more than 63 characters"),
])
def test_namespace_names_are_dns_labels(make_store: MakeStore, name: str, detail: str) -> None:
    causes = rejected(lambda: make_store(NamespaceStrategy).create("", {"metadata": {"name": name}}))
    [name_message] = [message for _reason, field, message in causes if field == "metadata.name"]
    assert name_message.startswith(f"Invalid value: {json.dumps(name)}: {detail}")


def test_namespaces_select_on_status_phase(make_store: MakeStore) -> None:
    namespaces = make_store(NamespaceStrategy)
    namespaces.create("", {"metadata": {"name": "stays"}})
    namespaces.create("", {"metadata": {"name": "goes"}})
    namespaces.delete("", "goes")
    assert select(namespaces, "", "status.phase=Terminating") == ["goes"]
    assert select(namespaces, "", "status.phase=Active") == ["stays"]


# -- pods ---------------------------------------------------------------------------------------


def pod(*containers: dict, **spec: object) -> dict:
    return {"metadata": {"name": "web"},
            "spec": {"containers": list(containers) or [{"name": "app", "image": "busybox:1.36"}], **spec}}


def test_pod_defaults(make_store: MakeStore) -> None:
    created = make_store(PodStrategy).create("ns", pod({"name": "app", "image": "busybox:1.36",
                                                        "ports": [{"containerPort": 80}]}))
    spec = created["spec"]
    assert {k: spec[k] for k in ("restartPolicy", "terminationGracePeriodSeconds", "dnsPolicy", "schedulerName",
                                 "serviceAccountName", "enableServiceLinks", "securityContext")} == {
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler", "serviceAccountName": "default", "enableServiceLinks": True,
        "securityContext": {}}
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(("image", "policy"), [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("registry.local:5000/busybox", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    ("registry.local:5000/busybox:1.36", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy_defaults_from_the_tag(make_store: MakeStore, image: str, policy: str) -> None:
    created = make_store(PodStrategy).create("ns", pod({"name": "app", "image": image}))
    assert created["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_explicit_values_are_not_overwritten_by_defaults(make_store: MakeStore) -> None:
    created = make_store(PodStrategy).create("ns", pod({"name": "app", "image": "busybox", "imagePullPolicy": "Never"},
                                                       restartPolicy="Never", serviceAccountName="builder"))
    assert created["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert (created["spec"]["restartPolicy"], created["spec"]["serviceAccountName"]) == ("Never", "builder")


def test_pod_validation_messages(make_store: MakeStore) -> None:
    body = pod({"name": "app", "image": "a:1", "ports": [{"containerPort": 70000}], "env": [{"value": "x"}]},
               {"name": "Bad_Name", "image": "b:1", "imagePullPolicy": "Sometimes"},
               {"name": "noimage"},
               initContainers=[{"name": "app", "image": "i:1"}],
               restartPolicy="Sometimes",
               volumes=[{"name": "v"}, {"name": "v"}])
    causes = rejected(lambda: make_store(PodStrategy).create("ns", body))
    messages = {f"{field}: {message}" for _reason, field, message in causes}
    assert "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive" \
        in messages
    assert "spec.containers[0].env[0].name: Required value" in messages
    assert any(m.startswith('spec.containers[1].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label')
               for m in messages)
    assert ('spec.containers[1].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", '
            '"IfNotPresent", "Never"') in messages
    assert "spec.containers[2].image: Required value" in messages
    assert 'spec.initContainers[0].name: Duplicate value: "app"' in messages
    assert 'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"' \
        in messages
    assert 'spec.volumes[1].name: Duplicate value: "v"' in messages


def test_a_pod_without_a_spec_is_invalid(make_store: MakeStore) -> None:
    assert rejected(lambda: make_store(PodStrategy).create("ns", {"metadata": {"name": "p"}})) == [
        ("FieldValueRequired", "spec", "Required value")]


def test_pod_updates_may_change_images_tolerations_and_deadline(make_store: MakeStore) -> None:
    pods = make_store(PodStrategy)
    current = pods.create("ns", pod())
    current["spec"]["containers"][0]["image"] = "busybox:1.37"
    current["spec"]["activeDeadlineSeconds"] = 60
    current["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    updated = pods.update("ns", "web", copy_of(current))
    assert updated["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert updated["spec"]["activeDeadlineSeconds"] == 60


@pytest.mark.parametrize("change", [
    lambda spec: spec.update(nodeName="node-9"),
    lambda spec: spec.update(serviceAccountName="admin"),
    lambda spec: spec["containers"].append({"name": "extra", "image": "x:1"}),
    lambda spec: spec["containers"][0].update(securityContext={"privileged": True}),
])
def test_other_pod_spec_changes_are_forbidden(make_store: MakeStore, change: Callable[[dict], None]) -> None:
    pods = make_store(PodStrategy)
    created = pods.create("ns", pod())
    body = copy_of(created)
    change(body["spec"])
    causes = rejected(lambda: pods.update("ns", "web", body))
    assert [(reason, field) for reason, field, _ in causes] == [("FieldValueForbidden", "spec")]
    assert pods.get("ns", "web") == created


def test_pods_select_on_node_and_phase(make_store: MakeStore) -> None:
    pods = make_store(PodStrategy)
    for name, node in (("a", "node-1"), ("b", "node-2"), ("c", None)):
        body = pod()
        body["metadata"]["name"] = name
        if node:
            body["spec"]["nodeName"] = node
        pods.create("ns", body)
    assert select(pods, "ns", "spec.nodeName=node-1") == ["a"]
    assert select(pods, "ns", "spec.nodeName=") == ["c"]
    assert select(pods, "ns", "spec.nodeName!=node-1,status.phase=Pending") == ["b", "c"]
    with pytest.raises(ApiError) as info:
        select(pods, "ns", "spec.containers=x")
    assert info.value.code == 400


def test_pod_table_columns(make_store: MakeStore) -> None:
    pods = make_store(PodStrategy)
    created = pods.create("ns", pod(nodeName="node-1"))
    created["status"] = {"phase": "Running", "podIP": "10.1.2.3",
                         "containerStatuses": [{"ready": True, "restartCount": 2}]}
    now = dt.datetime(2024, 5, 1, 12, 5, 30, tzinfo=dt.timezone.utc)
    cells = {c.name: c.render(created, now) for c in PodStrategy.columns}
    assert cells == {"Name": "web", "Ready": "1/1", "Status": "Running", "Restarts": 2, "Age": "5m30s",
                     "IP": "10.1.2.3", "Node": "node-1"}
    marked, _ = pods.delete("ns", "web")
    assert [c.render(marked, now) for c in PodStrategy.columns if c.name == "Status"] == ["Terminating"]


# -- secrets ------------------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_string_data_is_folded_into_data(make_store: MakeStore) -> None:
    created = make_store(SecretStrategy).create("ns", {
        "metadata": {"name": "db"}, "data": {"user": b64("admin")}, "stringData": {"password": "s3cret"}})
    assert created["type"] == "Opaque"
    assert created["data"] == {"user": b64("admin"), "password": b64("s3cret")}
    assert "stringData" not in created


def test_tls_secrets_need_their_keys(make_store: MakeStore) -> None:
    causes = rejected(lambda: make_store(SecretStrategy).create("ns", {
        "metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": b64("cert")}}))
    assert causes == [("FieldValueRequired", "data[tls.key]", "Required value")]


def test_a_secret_type_cannot_change(make_store: MakeStore) -> None:
    secrets = make_store(SecretStrategy)
    current = secrets.create("ns", {"metadata": {"name": "s"}, "data": {"a": b64("1")}})
    current["type"] = "kubernetes.io/ssh-auth"
    current["data"]["ssh-privatekey"] = b64("key")
    assert rejected(lambda: secrets.update("ns", "s", current)) == [
        ("FieldValueInvalid", "type", 'Invalid value: "kubernetes.io/ssh-auth": field is immutable')]


def test_an_immutable_secret_keeps_its_data(make_store: MakeStore) -> None:
    secrets = make_store(SecretStrategy)
    created = secrets.create("ns", {"metadata": {"name": "s"}, "data": {"a": b64("1")}, "immutable": True})
    body = copy_of(created)
    body["data"]["a"] = b64("2")
    assert rejected(lambda: secrets.update("ns", "s", body)) == [
        ("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set")]
    relabelled = copy_of(created)
    relabelled["metadata"]["labels"] = {"rotated": "no"}
    assert secrets.update("ns", "s", relabelled)["metadata"]["labels"] == {"rotated": "no"}


def test_secret_keys_must_be_config_keys(make_store: MakeStore) -> None:
    causes = rejected(lambda: make_store(SecretStrategy).create("ns", {
        "metadata": {"name": "s"}, "data": {"bad key": b64("x")}}))
    assert fields_of(causes) == ["data"]
    assert causes[0][2].startswith('Invalid value: "bad key": a valid config key must consist of alphanumeric')


def test_secrets_select_on_type(make_store: MakeStore) -> None:
    secrets = make_store(SecretStrategy)
    secrets.create("ns", {"metadata": {"name": "plain"}})
    secrets.create("ns", {"metadata": {"name": "ssh"}, "type": "kubernetes.io/ssh-auth",
                          "data": {"ssh-privatekey": b64("k")}})
    assert select(secrets, "ns", "type=kubernetes.io/ssh-auth") == ["ssh"]
    assert select(secrets, "ns", "type=Opaque") == ["plain"]


# -- configmaps ---------------------------------------------------------------------------------


def test_configmap_data_and_binary_data(make_store: MakeStore) -> None:
    created = make_store(ConfigMapStrategy).create("ns", {
        "metadata": {"name": "cm"}, "data": {"app.conf": "x=1"}, "binaryData": {"logo.png": b64("\x89PNG")}})
    assert created["data"] == {"app.conf": "x=1"}
    assert created["binaryData"] == {"logo.png": b64("\x89PNG")}


def test_configmap_validation(make_store: MakeStore) -> None:
    causes = rejected(lambda: make_store(ConfigMapStrategy).create("ns", {
        "metadata": {"name": "cm"},
        "data": {"bad key": "v", "shared": "v", "number": 5},
        "binaryData": {"shared": b64("v"), "raw": "not base64!"},
    }))
    assert set(fields_of(causes)) == {"data", "data[number]", "binaryData[raw]", "data[shared]"}


def test_an_immutable_configmap_stays_immutable(make_store: MakeStore) -> None:
    configmaps = make_store(ConfigMapStrategy)
    created = configmaps.create("ns", {"metadata": {"name": "cm"}, "data": {"a": "1"}, "immutable": True})
    changed = copy_of(created)
    changed["data"]["a"] = "2"
    assert fields_of(rejected(lambda: configmaps.update("ns", "cm", changed))) == ["data"]
    unset = copy_of(created)
    unset["immutable"] = False
    assert fields_of(rejected(lambda: configmaps.update("ns", "cm", unset))) == ["immutable"]


# -- RBAC ---------------------------------------------------------------------------------------

READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}


def test_rbac_names_may_contain_colons(make_store: MakeStore) -> None:
    created = make_store(ClusterRoleStrategy).create("", {"metadata": {"name": "system:pod-reader"},
                                                          "rules": [READ_PODS]})
    assert created["metadata"]["name"] == "system:pod-reader"
    assert "namespace" not in created["metadata"]


@pytest.mark.parametrize(("name", "detail"), [("a/b", "may not contain '/'"), ("..", "may not be '..'")])
def test_rbac_names_must_be_path_segments(make_store: MakeStore, name: str, detail: str) -> None:
    causes = rejected(lambda: make_store(RoleStrategy).create("ns", {"metadata": {"name": name}, "rules": []}))
    assert causes == [("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {detail}')]


def test_rule_validation(make_store: MakeStore) -> None:
    causes = rejected(lambda: make_store(RoleStrategy).create("ns", {"metadata": {"name": "r"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get"]},
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
    ]}))
    assert [(reason, field) for reason, field, _ in causes] == [
        ("FieldValueRequired", "rules[0].verbs"),
        ("FieldValueRequired", "rules[1].resources"),
        ("FieldValueRequired", "rules[1].apiGroups"),
        ("FieldValueInvalid", "rules[2].nonResourceURLs"),
    ]
    assert causes[0][2] == "Required value: verbs must contain at least one value"
    assert causes[1][2] == "Required value: resource rules must supply at least one resource"
    assert causes[2][2] == "Required value: resource rules must supply at least one api group"
    assert causes[3][2].endswith("namespaced rules cannot apply to non-resource URLs")


def test_cluster_roles_may_name_non_resource_urls_but_not_mixed_with_resources(make_store: MakeStore) -> None:
    roles = make_store(ClusterRoleStrategy)
    roles.create("", {"metadata": {"name": "health"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]})
    causes = rejected(lambda: roles.create("", {"metadata": {"name": "mixed"}, "rules": [
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"], "apiGroups": [""]}]}))
    assert fields_of(causes) == ["rules[0].nonResourceURLs"]
    assert causes[0][2].endswith("rules cannot apply to both regular resources and non-resource URLs")


def binding(kind: str = "ClusterRole", name: str = "view", **extra: object) -> dict:
    return {"metadata": {"name": "b"}, "roleRef": {"apiGroup": RBAC, "kind": kind, "name": name},
            "subjects": [{"kind": "User", "name": "alice", "apiGroup": RBAC}], **extra}


def test_role_bindings_refer_to_roles_or_cluster_roles(make_store: MakeStore) -> None:
    bindings = make_store(RoleBindingStrategy)
    assert bindings.create("ns", binding("Role", "reader"))["roleRef"]["kind"] == "Role"
    causes = rejected(lambda: make_store(ClusterRoleBindingStrategy).create("", binding("Role", "reader")))
    assert causes == [("FieldValueNotSupported", "roleRef.kind",
                       'Unsupported value: "Role": supported values: "ClusterRole"')]


def test_binding_validation(make_store: MakeStore) -> None:
    body = {"metadata": {"name": "b"}, "roleRef": {"apiGroup": "example.com", "kind": "Role", "name": ""},
            "subjects": [{"kind": "Robot", "name": "r2"}, {"kind": "ServiceAccount", "name": "builder"}]}
    causes = rejected(lambda: make_store(RoleBindingStrategy).create("ns", body))
    assert [(reason, field) for reason, field, _ in causes] == [
        ("FieldValueNotSupported", "roleRef.apiGroup"),
        ("FieldValueRequired", "roleRef.name"),
        ("FieldValueNotSupported", "subjects[0].kind"),
        ("FieldValueRequired", "subjects[1].namespace"),
    ]
    assert rejected(lambda: make_store(RoleBindingStrategy).create("ns", {"metadata": {"name": "b"}})) == [
        ("FieldValueRequired", "roleRef", "Required value")]


def test_a_binding_cannot_change_its_role(make_store: MakeStore) -> None:
    bindings = make_store(RoleBindingStrategy)
    current = bindings.create("ns", binding("ClusterRole", "view"))
    current["subjects"].append({"kind": "Group", "name": "devs", "apiGroup": RBAC})
    current = bindings.update("ns", "b", copy_of(current))  # subjects may change
    assert len(current["subjects"]) == 2
    current["roleRef"]["name"] = "admin"
    causes = rejected(lambda: bindings.update("ns", "b", current))
    assert [(reason, field) for reason, field, _ in causes] == [("FieldValueInvalid", "roleRef")]
    assert "cannot change roleRef" in causes[0][2]
    assert bindings.get("ns", "b")["roleRef"]["name"] == "view"


# -- events, nodes, service accounts ------------------------------------------------------------


def event(name: str, involved: dict | None, **extra: object) -> dict:
    body: dict = {"metadata": {"name": name}, **extra}
    if involved is not None:
        body["involvedObject"] = involved
    return body


def test_event_validation(make_store: MakeStore) -> None:
    events = make_store(EventStrategy)
    assert rejected(lambda: events.create("ns", event("e", None))) == [
        ("FieldValueRequired", "involvedObject", "Required value")]
    causes = rejected(lambda: events.create("ns", event("e", {"kind": "Pod", "name": "p", "namespace": "other"},
                                                        type="Bogus")))
    assert [(reason, field) for reason, field, _ in causes] == [
        ("FieldValueInvalid", "involvedObject.namespace"), ("FieldValueNotSupported", "type")]


def test_events_select_on_the_involved_object(make_store: MakeStore) -> None:
    events = make_store(EventStrategy)
    events.create("ns", event("e1", {"kind": "Pod", "name": "web", "namespace": "ns"}, reason="Pulled", type="Normal"))
    events.create("ns", event("e2", {"kind": "Pod", "name": "db", "namespace": "ns"}, reason="Failed", type="Warning"))
    assert select(events, "ns", "involvedObject.name=web") == ["e1"]
    assert select(events, "ns", "type=Warning,involvedObject.kind=Pod") == ["e2"]
    assert select(events, "ns", "reason!=Pulled") == ["e2"]


def test_nodes_are_cluster_scoped_and_keep_their_status_on_spec_updates(make_store: MakeStore) -> None:
    nodes = make_store(NodeStrategy)
    created = nodes.create("", {"metadata": {"name": "node-1"}, "status": {"phase": "ignored"}})
    assert "status" not in created or created["status"] == {}
    reported = copy_of(created)
    reported["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    reported = nodes.update("", "node-1", reported, subresource="status")
    cordoned = copy_of(reported)
    cordoned["spec"] = {"unschedulable": True}
    cordoned["status"] = {}
    cordoned = nodes.update("", "node-1", cordoned)
    assert cordoned["status"] == {"conditions": [{"type": "Ready", "status": "True"}]}
    now = dt.datetime(2024, 5, 2, tzinfo=dt.timezone.utc)
    assert [c.render(cordoned, now) for c in NodeStrategy.columns if c.name == "Status"] == [
        "Ready,SchedulingDisabled"]
    nodes.create("", {"metadata": {"name": "node-2"}})
    assert select(nodes, "", "spec.unschedulable=true") == ["node-1"]
    assert select(nodes, "", "spec.unschedulable=false") == ["node-2"]


def test_service_accounts_are_plain_namespaced_objects(make_store: MakeStore) -> None:
    accounts = make_store(ServiceAccountStrategy)
    created = accounts.create("ns", {"metadata": {"name": "builder"}})
    assert (created["kind"], created["metadata"]["namespace"]) == ("ServiceAccount", "ns")
    assert fields_of(rejected(lambda: accounts.create("ns", {"metadata": {"name": "Builder"}}))) == ["metadata.name"]


# -- found while reviewing: bugs the registry still has -----------------------------------------


@pytest.mark.parametrize("finalizers", [[], None, ["example.com/other"]])
def test_a_new_namespace_always_gets_the_kubernetes_finalizer(make_store: MakeStore, finalizers: object) -> None:
    namespaces = make_store(NamespaceStrategy)
    created = namespaces.create("", {"metadata": {"name": "team"}, "spec": {"finalizers": finalizers}})
    assert "kubernetes" in created["spec"]["finalizers"]
    _obj, gone = namespaces.delete("", "team")
    assert not gone


@pytest.mark.parametrize("string_data", ["password=hunter2", ["hunter2"]])
def test_string_data_that_is_not_an_object_is_refused(make_store: MakeStore, storage: SqliteStorage,
                                                      string_data: object) -> None:
    before = storage.current_revision()
    with pytest.raises(ApiError) as info:
        make_store(SecretStrategy).create("ns", {"metadata": {"name": "s"}, "stringData": string_data})
    assert info.value.code in (400, 422)
    assert storage.current_revision() == before


@pytest.mark.parametrize(("strategy", "body"), [
    (ConfigMapStrategy, {"metadata": {"name": "c"}, "data": "key=value"}),
    (ConfigMapStrategy, {"metadata": {"name": "c"}, "data": ["key=value"]}),
    (ConfigMapStrategy, {"metadata": {"name": "c"}, "binaryData": [{"k": "dg=="}]}),
    (PodStrategy, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1", "ports": 80}]}}),
    (PodStrategy, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1", "env": 1}]}}),
    (ConfigMapStrategy, {"metadata": {"generateName": 5}}),
], ids=["configmap-data-string", "configmap-data-list", "configmap-binarydata-list", "pod-ports-int",
        "pod-env-int", "generatename-int"])
def test_wrongly_typed_fields_are_a_client_error_not_a_crash(make_store: MakeStore, strategy: type[Strategy],
                                                             body: dict) -> None:
    with pytest.raises(ApiError) as info:
        make_store(strategy).create("ns", body)
    assert 400 <= info.value.code < 500
