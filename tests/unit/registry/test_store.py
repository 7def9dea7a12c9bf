"""The generic store: Kubernetes create/get/list/update/delete/watch semantics on the real SQLite storage."""
from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import pytest

from securekube.api.errors import ApiError
from securekube.api.selectors import parse_field_selector, parse_label_selector
from securekube.registry.kinds.configmaps import ConfigMapStrategy
from securekube.registry.kinds.namespaces import NamespaceStrategy
from securekube.registry.kinds.pods import PodStrategy
from securekube.registry.kinds.rbac import RoleStrategy
from securekube.registry.kinds.secrets import SecretStrategy
from securekube.registry.registry import Registry
from securekube.registry.resource import Strategy
from securekube.registry.store import ListOptions, Store, StoreWatch, WatchedEvent
from securekube.storage.sqlite import SqliteStorage

STALE = ('Operation cannot be fulfilled on configmaps "settings": the object has been modified; '
         "please apply your changes to the latest version and try again")
GENERATED_NAME_ALPHABET = set("bcdfghjklmnpqrstvwxz2456789")


@pytest.fixture
def configmaps(make_store: Callable[[type[Strategy]], Store]) -> Store:
    return make_store(ConfigMapStrategy)


@pytest.fixture
def pods(make_store: Callable[[type[Strategy]], Store]) -> Store:
    return make_store(PodStrategy)


@pytest.fixture
def secrets(make_store: Callable[[type[Strategy]], Store]) -> Store:
    return make_store(SecretStrategy)


def configmap(name: str = "settings", labels: dict[str, str] | None = None, **data: str) -> dict:
    meta: dict = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


def pod(name: str = "web", **spec: object) -> dict:
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "command": ["sleep", "1d"]}], **spec}}


def names(items: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in items]


def api_error(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def drain(watch: StoreWatch, count: int, timeout: float = 5.0) -> list[WatchedEvent]:
    """Reads events until `count` have arrived, then checks nothing more is pending."""
    events: list[WatchedEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += watch.next(0.2)
    events += watch.next(0.05)
    return events


# -- create -------------------------------------------------------------------------------------


def test_create_fills_uid_timestamp_kind_namespace_and_resource_version(now_text: str, configmaps: Store,
                                                                        storage: SqliteStorage) -> None:
    created = configmaps.create("team-a", configmap(a="1"))
    meta = created["metadata"]
    assert uuid.UUID(meta["uid"]).version == 4
    assert meta["creationTimestamp"] == now_text
    assert meta["namespace"] == "team-a"
    assert meta["resourceVersion"] == str(storage.current_revision())
    assert (created["apiVersion"], created["kind"]) == ("v1", "ConfigMap")
    assert configmaps.get("team-a", "settings") == created


def test_create_ignores_system_fields_the_client_sent(now_text: str, configmaps: Store) -> None:
    body = configmap()
    body["metadata"].update(uid="forged", resourceVersion="999", creationTimestamp="2000-01-01T00:00:00Z",
                            deletionTimestamp="2000-01-01T00:00:00Z", deletionGracePeriodSeconds=0,
                            namespace="elsewhere")
    created = configmaps.create("team-a", body)
    meta = created["metadata"]
    assert meta["uid"] != "forged"
    assert meta["creationTimestamp"] == now_text
    assert meta["resourceVersion"] != "999"
    assert "deletionTimestamp" not in meta and "deletionGracePeriodSeconds" not in meta
    assert meta["namespace"] == "team-a"


def test_each_object_gets_its_own_uid(configmaps: Store) -> None:
    a = configmaps.create("ns", configmap("a"))
    b = configmaps.create("ns", configmap("b"))
    assert a["metadata"]["uid"] != b["metadata"]["uid"]


def test_generate_name_appends_five_unambiguous_characters(configmaps: Store) -> None:
    body = configmap()
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "job-"
    first = configmaps.create("ns", json.loads(json.dumps(body)))
    second = configmaps.create("ns", json.loads(json.dumps(body)))
    for created in (first, second):
        name = created["metadata"]["name"]
        assert name.startswith("job-") and len(name) == len("job-") + 5
        assert set(name[4:]) <= GENERATED_NAME_ALPHABET
        assert configmaps.get("ns", name)["metadata"]["uid"] == created["metadata"]["uid"]
    assert first["metadata"]["name"] != second["metadata"]["name"]


def test_creating_an_existing_name_is_409_already_exists_and_keeps_the_original(configmaps: Store) -> None:
    original = configmaps.create("ns", configmap(a="1"))
    error = api_error(lambda: configmaps.create("ns", configmap(a="2")))
    assert (error.code, error.reason) == (409, "AlreadyExists")
    assert error.message == 'configmaps "settings" already exists'
    assert configmaps.get("ns", "settings") == original


def test_the_same_name_in_two_namespaces_is_two_objects(configmaps: Store) -> None:
    configmaps.create("a", configmap(v="a"))
    configmaps.create("b", configmap(v="b"))
    assert configmaps.get("a", "settings")["data"] == {"v": "a"}
    assert configmaps.get("b", "settings")["data"] == {"v": "b"}


def test_dry_run_create_returns_the_object_and_stores_nothing(configmaps: Store, storage: SqliteStorage) -> None:
    before = storage.current_revision()
    result = configmaps.create("ns", configmap(a="1"), dry_run=True)
    assert result["metadata"]["name"] == "settings" and result["metadata"]["uid"]
    assert storage.current_revision() == before
    assert api_error(lambda: configmaps.get("ns", "settings")).code == 404


def test_dry_run_create_of_an_existing_name_is_409(configmaps: Store) -> None:
    configmaps.create("ns", configmap())
    error = api_error(lambda: configmaps.create("ns", configmap(), dry_run=True))
    assert (error.code, error.reason) == (409, "AlreadyExists")


# -- get ----------------------------------------------------------------------------------------


def test_get_of_a_missing_object_is_404_with_upstreams_message(configmaps: Store) -> None:
    error = api_error(lambda: configmaps.get("ns", "x"))
    assert (error.code, error.reason, error.message) == (404, "NotFound", 'configmaps "x" not found')
    assert error.status()["details"] == {"name": "x", "group": "", "kind": "configmaps"}


def test_not_found_names_the_group_of_grouped_kinds(make_store: Callable[[type[Strategy]], Store]) -> None:
    roles = make_store(RoleStrategy)
    assert api_error(lambda: roles.get("ns", "x")).message == 'roles.rbac.authorization.k8s.io "x" not found'


# -- update -------------------------------------------------------------------------------------


def test_update_with_a_stale_resource_version_is_409_and_stores_nothing(configmaps: Store,
                                                                        storage: SqliteStorage) -> None:
    first = configmaps.create("ns", configmap(a="1"))
    second = configmaps.update("ns", "settings", {**configmap(a="2")})
    revision = storage.current_revision()
    stale = configmap(a="3")
    stale["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"]
    error = api_error(lambda: configmaps.update("ns", "settings", stale))
    assert (error.code, error.reason, error.message) == (409, "Conflict", STALE)
    assert storage.current_revision() == revision
    assert configmaps.get("ns", "settings") == second


def test_update_with_the_current_resource_version_succeeds(configmaps: Store) -> None:
    current = configmaps.create("ns", configmap(a="1"))
    created_rv = current["metadata"]["resourceVersion"]
    current["data"] = {"a": "2"}
    updated = configmaps.update("ns", "settings", current)
    assert updated["data"] == {"a": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created_rv)
    assert configmaps.get("ns", "settings") == updated


def test_update_without_a_resource_version_is_unconditional(configmaps: Store) -> None:
    created = configmaps.create("ns", configmap(a="1"))
    updated = configmaps.update("ns", "settings", configmap(a="2"))
    assert updated["data"] == {"a": "2"}
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]


def test_a_no_op_update_keeps_the_resource_version(configmaps: Store, storage: SqliteStorage) -> None:
    created = configmaps.create("ns", configmap(a="1"))
    revision = storage.current_revision()
    again = configmaps.update("ns", "settings", json.loads(json.dumps(created)))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert storage.current_revision() == revision


def test_update_keeps_system_fields_from_the_stored_object(configmaps: Store) -> None:
    created = configmaps.create("ns", configmap())
    body = configmap(a="2")
    body["metadata"].update(creationTimestamp="2000-01-01T00:00:00Z", deletionTimestamp="2000-01-01T00:00:00Z",
                            namespace="elsewhere")
    updated = configmaps.update("ns", "settings", body)
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert updated["metadata"]["namespace"] == "ns"
    assert "deletionTimestamp" not in updated["metadata"]


def test_update_with_another_uid_is_a_failed_precondition(configmaps: Store) -> None:
    created = configmaps.create("ns", configmap())
    body = configmap(a="2")
    body["metadata"]["uid"] = "00000000-0000-4000-8000-000000000000"
    error = api_error(lambda: configmaps.update("ns", "settings", body))
    assert (error.code, error.reason) == (409, "Conflict")
    assert error.message == (
        'Operation cannot be fulfilled on configmaps "settings": Precondition failed: UID in precondition: '
        f'00000000-0000-4000-8000-000000000000, UID in object meta: {created["metadata"]["uid"]}')


def test_update_of_a_missing_object_is_404(configmaps: Store) -> None:
    assert api_error(lambda: configmaps.update("ns", "settings", configmap())).message == 'configmaps "settings" not found'


def test_update_whose_body_names_another_object_is_400(configmaps: Store) -> None:
    configmaps.create("ns", configmap())
    error = api_error(lambda: configmaps.update("ns", "settings", configmap("other")))
    assert error.code == 400
    assert error.message == "the name of the object (other) does not match the name on the URL (settings)"


def test_dry_run_update_returns_the_result_and_stores_nothing(configmaps: Store, storage: SqliteStorage) -> None:
    created = configmaps.create("ns", configmap(a="1"))
    revision = storage.current_revision()
    result = configmaps.update("ns", "settings", configmap(a="2"), dry_run=True)
    assert result["data"] == {"a": "2"}
    assert storage.current_revision() == revision
    assert configmaps.get("ns", "settings") == created


def test_invalid_update_is_422_and_stores_nothing(configmaps: Store, storage: SqliteStorage) -> None:
    created = configmaps.create("ns", configmap())
    revision = storage.current_revision()
    error = api_error(lambda: configmaps.update("ns", "settings", configmap(labels={"bad key": "x"})))
    assert (error.code, error.reason) == (422, "Invalid")
    assert [c["field"] for c in error.details["causes"]] == ["metadata.labels"]
    assert storage.current_revision() == revision
    assert configmaps.get("ns", "settings") == created


def test_guaranteed_update_applies_the_change_to_the_current_object(configmaps: Store) -> None:
    configmaps.create("ns", configmap(a="1"))
    configmaps.update("ns", "settings", configmap(a="1", b="2"))

    def add_label(current: dict) -> dict:
        current["metadata"].setdefault("labels", {})["seen"] = "yes"
        return current

    updated = configmaps.guaranteed_update("ns", "settings", add_label)
    assert updated["data"] == {"a": "1", "b": "2"}
    assert updated["metadata"]["labels"] == {"seen": "yes"}


# -- status subresource -------------------------------------------------------------------------


def test_create_ignores_the_status_a_client_sends(pods: Store) -> None:
    body = pod()
    body["status"] = {"phase": "Running", "podIP": "10.0.0.9"}
    assert pods.create("ns", body)["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_main_resource_update_cannot_change_status(pods: Store) -> None:
    current = pods.create("ns", pod())
    current["status"] = {"phase": "Running"}
    current["metadata"]["labels"] = {"tier": "web"}
    updated = pods.update("ns", "web", current)
    assert updated["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert updated["metadata"]["labels"] == {"tier": "web"}


def test_status_update_changes_only_the_status(pods: Store) -> None:
    created = pods.create("ns", pod())
    body = json.loads(json.dumps(created))
    body["status"] = {"phase": "Running", "podIP": "10.0.0.9"}
    body["metadata"]["labels"] = {"sneaky": "yes"}
    body["spec"]["containers"][0]["image"] = "evil:latest"
    updated = pods.update("ns", "web", body, subresource="status")
    assert updated["status"] == {"phase": "Running", "podIP": "10.0.0.9"}
    assert updated["spec"] == created["spec"]
    assert "labels" not in updated["metadata"]
    assert pods.get("ns", "web") == updated


# -- delete and finalizers ----------------------------------------------------------------------


def test_delete_removes_the_object_at_once(configmaps: Store, storage: SqliteStorage) -> None:
    configmaps.create("ns", configmap())
    deleted, gone = configmaps.delete("ns", "settings")
    assert gone
    assert deleted["metadata"]["resourceVersion"] == str(storage.current_revision())
    assert api_error(lambda: configmaps.get("ns", "settings")).code == 404
    assert api_error(lambda: configmaps.delete("ns", "settings")).message == 'configmaps "settings" not found'


def test_delete_preconditions(configmaps: Store) -> None:
    created = configmaps.create("ns", configmap())
    wrong_uid = api_error(lambda: configmaps.delete("ns", "settings", uid="other-uid"))
    assert (wrong_uid.code, wrong_uid.reason) == (409, "Conflict")
    assert "Precondition failed: UID in precondition: other-uid" in wrong_uid.message
    wrong_rv = api_error(lambda: configmaps.delete("ns", "settings", resource_version="1234"))
    assert (wrong_rv.code, wrong_rv.reason) == (409, "Conflict")
    assert configmaps.get("ns", "settings") == created
    assert configmaps.delete("ns", "settings", uid=created["metadata"]["uid"],
                             resource_version=created["metadata"]["resourceVersion"])[1]


def test_dry_run_delete_keeps_the_object(configmaps: Store) -> None:
    created = configmaps.create("ns", configmap())
    _obj, gone = configmaps.delete("ns", "settings", dry_run=True)
    assert gone
    assert configmaps.get("ns", "settings") == created


def test_finalizers_hold_a_deleted_object_until_the_last_one_is_removed(now_text: str, configmaps: Store) -> None:
    body = configmap()
    body["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    configmaps.create("ns", body)

    marked, gone = configmaps.delete("ns", "settings")
    assert not gone
    assert marked["metadata"]["deletionTimestamp"] == now_text
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    assert configmaps.get("ns", "settings") == marked

    again, gone = configmaps.delete("ns", "settings")
    assert not gone and again == marked  # a second delete changes nothing

    current = configmaps.get("ns", "settings")
    current["metadata"]["finalizers"] = ["example.com/b"]
    current["metadata"]["deletionTimestamp"] = None  # clients cannot undo a deletion
    still = configmaps.update("ns", "settings", current)
    assert still["metadata"]["deletionTimestamp"] == now_text
    assert configmaps.get("ns", "settings")["metadata"]["finalizers"] == ["example.com/b"]

    current = configmaps.get("ns", "settings")
    current["metadata"]["finalizers"] = []
    configmaps.update("ns", "settings", current)
    assert api_error(lambda: configmaps.get("ns", "settings")).code == 404


def test_no_finalizer_can_be_added_while_deleting(configmaps: Store) -> None:
    body = configmap()
    body["metadata"]["finalizers"] = ["example.com/a"]
    configmaps.create("ns", body)
    configmaps.delete("ns", "settings")
    current = configmaps.get("ns", "settings")
    current["metadata"]["finalizers"] = ["example.com/a", "example.com/new"]
    error = api_error(lambda: configmaps.update("ns", "settings", current))
    assert (error.code, error.reason) == (422, "Invalid")
    assert [(c["reason"], c["field"]) for c in error.details["causes"]] == [("FieldValueForbidden",
                                                                            "metadata.finalizers")]
    assert configmaps.get("ns", "settings")["metadata"]["finalizers"] == ["example.com/a"]


def test_no_new_finalizers_message_is_upstreams(configmaps: Store) -> None:
    body = configmap()
    body["metadata"]["finalizers"] = ["example.com/a"]
    configmaps.create("ns", body)
    configmaps.delete("ns", "settings")
    current = configmaps.get("ns", "settings")
    current["metadata"]["finalizers"] = ["example.com/a", "example.com/new"]
    error = api_error(lambda: configmaps.update("ns", "settings", current))
    assert error.details["causes"][0]["message"] == (
        'Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers '
        '[]string{"example.com/new"}')


def test_a_pod_that_is_not_on_a_node_is_deleted_at_once(pods: Store) -> None:
    pods.create("ns", pod())
    assert pods.delete("ns", "web")[1]


def test_a_pod_on_a_node_waits_for_its_kubelet_unless_forced(now_text: str, pods: Store) -> None:
    pods.create("ns", pod(nodeName="node-1"))
    marked, gone = pods.delete("ns", "web")
    assert not gone
    assert marked["metadata"]["deletionTimestamp"] == now_text
    assert pods.get("ns", "web")["metadata"]["deletionTimestamp"] == now_text
    assert pods.delete("ns", "web", grace_period=0)[1]
    assert api_error(lambda: pods.get("ns", "web")).code == 404


def test_graceful_pod_deletion_records_the_grace_period(pods: Store) -> None:
    pods.create("ns", pod("default-grace", nodeName="node-1"))
    pods.create("ns", pod("short-grace", nodeName="node-1"))
    assert pods.delete("ns", "default-grace")[0]["metadata"]["deletionGracePeriodSeconds"] == 30
    assert pods.delete("ns", "short-grace", grace_period=5)[0]["metadata"]["deletionGracePeriodSeconds"] == 5


def test_a_status_update_during_graceful_deletion_keeps_the_pod(pods: Store) -> None:
    pods.create("ns", pod(nodeName="node-1"))
    pods.delete("ns", "web")
    current = pods.get("ns", "web")
    current["status"] = {"phase": "Running", "message": "stopping"}
    pods.update("ns", "web", current, subresource="status")
    assert pods.get("ns", "web")["status"]["message"] == "stopping"


# -- list ---------------------------------------------------------------------------------------


def fill(configmaps: Store) -> None:
    for namespace, name, labels in [
        ("a", "one", {"app": "web", "env": "prod"}),
        ("a", "two", {"app": "web", "env": "qa"}),
        ("a", "three", {"app": "db"}),
        ("b", "four", {"app": "web", "env": "prod"}),
    ]:
        configmaps.create(namespace, configmap(name, labels))


def test_list_is_scoped_to_the_namespace_and_sorted_by_name(configmaps: Store, storage: SqliteStorage) -> None:
    fill(configmaps)
    listed = configmaps.list("a")
    assert names(listed.items) == ["one", "three", "two"]
    assert listed.resource_version == str(storage.current_revision())
    assert listed.continue_token == ""
    assert names(configmaps.list("").items) == ["one", "three", "two", "four"]
    assert configmaps.list("empty").items == []


@pytest.mark.parametrize(
    ("labels", "fields", "expected"),
    [
        ("app=web", "", ["one", "two", "four"]),
        ("env!=prod", "", ["three", "two"]),
        ("env in (prod,qa),app=web", "", ["one", "two", "four"]),
        ("!env", "", ["three"]),
        ("", "metadata.name=two", ["two"]),
        ("", "metadata.namespace=b", ["four"]),
        ("app=web", "metadata.name!=one", ["two", "four"]),
    ],
)
def test_list_with_label_and_field_selectors(configmaps: Store, labels: str, fields: str, expected: list[str]) -> None:
    fill(configmaps)
    opts = ListOptions(parse_label_selector(labels),
                       parse_field_selector(fields, configmaps.strategy.field_selectors))
    assert names(configmaps.list("", opts).items) == expected


def test_paging_with_limit_and_continue_is_one_consistent_snapshot(configmaps: Store) -> None:
    for i in range(6):
        configmaps.create("ns", configmap(f"c{i}"))
    first = configmaps.list("ns", ListOptions(limit=2))
    assert names(first.items) == ["c0", "c1"]
    assert first.continue_token

    # Changes after the first page do not show on the later pages.
    configmaps.delete("ns", "c3")
    configmaps.create("ns", configmap("c25"))
    configmaps.update("ns", "c4", configmap("c4", changed="yes"))

    second = configmaps.list("ns", ListOptions(limit=2, continue_token=first.continue_token))
    third = configmaps.list("ns", ListOptions(limit=2, continue_token=second.continue_token))
    assert names(second.items) == ["c2", "c3"]
    assert names(third.items) == ["c4", "c5"]
    assert third.items[0]["data"] == {}
    assert third.continue_token == ""
    assert first.resource_version == second.resource_version == third.resource_version

    assert names(configmaps.list("ns").items) == ["c0", "c1", "c2", "c25", "c4", "c5"]


def test_limit_counts_matching_objects_only(configmaps: Store) -> None:
    for i in range(7):
        configmaps.create("ns", configmap(f"c{i}", {"even": "yes" if i % 2 == 0 else "no"}))
    opts = ListOptions(label_selector=parse_label_selector("even=yes"), limit=3)
    first = configmaps.list("ns", opts)
    assert names(first.items) == ["c0", "c2", "c4"]
    rest = configmaps.list("ns", ListOptions(opts.label_selector, limit=3, continue_token=first.continue_token))
    assert names(rest.items) == ["c6"]
    assert rest.continue_token == ""


def test_a_limit_larger_than_the_list_gives_no_continue_token(configmaps: Store) -> None:
    configmaps.create("ns", configmap("a"))
    configmaps.create("ns", configmap("b"))
    assert configmaps.list("ns", ListOptions(limit=2)).continue_token == ""
    assert names(configmaps.list("ns", ListOptions(limit=5)).items) == ["a", "b"]


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"v":"meta.k8s.io/v1","rv":"x","start":"/registry/configmaps/ns/a"}').decode(),
        base64.urlsafe_b64encode(b'["a list"]').decode(),
        base64.urlsafe_b64encode(b'{"v":"other","rv":1,"start":"/registry/configmaps/ns/a"}').decode(),
    ],
)
def test_a_malformed_continue_token_is_400(configmaps: Store, token: str) -> None:
    configmaps.create("ns", configmap())
    error = api_error(lambda: configmaps.list("ns", ListOptions(limit=1, continue_token=token)))
    assert (error.code, error.reason) == (400, "BadRequest")


def test_a_continue_token_from_another_list_is_400(configmaps: Store) -> None:
    configmaps.create("a", configmap("x"))
    configmaps.create("a", configmap("y"))
    token = configmaps.list("a", ListOptions(limit=1)).continue_token
    error = api_error(lambda: configmaps.list("b", ListOptions(limit=1, continue_token=token)))
    assert error.code == 400


# -- watch --------------------------------------------------------------------------------------


def test_watch_from_a_resource_version_sees_later_changes_in_order(configmaps: Store) -> None:
    configmaps.create("ns", configmap("before"))
    start = configmaps.list("ns").resource_version
    watch = configmaps.watch("ns", start)
    try:
        created = configmaps.create("ns", configmap(a="1"))
        updated = configmaps.update("ns", "settings", configmap(a="2"))
        deleted, _ = configmaps.delete("ns", "settings")
        configmaps.create("other-namespace", configmap("elsewhere"))
        events = drain(watch, 3)
    finally:
        watch.close()
    assert [(e.type, e.object["metadata"]["resourceVersion"]) for e in events] == [
        ("ADDED", created["metadata"]["resourceVersion"]),
        ("MODIFIED", updated["metadata"]["resourceVersion"]),
        ("DELETED", deleted["metadata"]["resourceVersion"]),
    ]
    assert events[1].object["data"] == {"a": "2"}
    assert events[2].object["metadata"]["uid"] == created["metadata"]["uid"]


def test_watch_from_zero_first_replays_the_current_objects(configmaps: Store) -> None:
    configmaps.create("ns", configmap("a"))
    configmaps.create("ns", configmap("b"))
    watch = configmaps.watch("ns", "0")
    try:
        replay = watch.take_initial()
        configmaps.create("ns", configmap("c"))
        later = drain(watch, 1)
    finally:
        watch.close()
    assert [(e.type, e.object["metadata"]["name"]) for e in replay] == [("ADDED", "a"), ("ADDED", "b")]
    assert [(e.type, e.object["metadata"]["name"]) for e in later] == [("ADDED", "c")]


def test_a_selector_watch_turns_entering_and_leaving_into_added_and_deleted(configmaps: Store) -> None:
    configmaps.create("ns", configmap("cm", {"watched": "no"}))
    start = configmaps.list("ns").resource_version
    watch = configmaps.watch("ns", start, ListOptions(label_selector=parse_label_selector("watched=yes")))
    try:
        configmaps.update("ns", "cm", configmap("cm", {"watched": "no"}, x="ignored"))  # never matched: silent
        configmaps.update("ns", "cm", configmap("cm", {"watched": "yes"}))  # enters
        configmaps.update("ns", "cm", configmap("cm", {"watched": "yes"}, x="1"))  # changes inside
        configmaps.update("ns", "cm", configmap("cm", {"watched": "no"}, x="1"))  # leaves
        configmaps.create("ns", configmap("other", {"watched": "no"}))
        configmaps.delete("ns", "other")  # never matched: silent
        events = drain(watch, 3)
    finally:
        watch.close()
    assert [(e.type, e.object["metadata"]["labels"]["watched"]) for e in events] == [
        ("ADDED", "yes"), ("MODIFIED", "yes"), ("DELETED", "no")]


def test_a_field_selector_watch_sees_only_its_object(configmaps: Store) -> None:
    start = configmaps.list("ns").resource_version
    opts = ListOptions(field_selector=parse_field_selector("metadata.name=mine", configmaps.strategy.field_selectors))
    watch = configmaps.watch("ns", start, opts)
    try:
        configmaps.create("ns", configmap("other"))
        configmaps.create("ns", configmap("mine"))
        configmaps.delete("ns", "mine")
        events = drain(watch, 2)
    finally:
        watch.close()
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", "mine"), ("DELETED", "mine")]


def test_watch_from_a_malformed_resource_version_is_400(configmaps: Store) -> None:
    assert api_error(lambda: configmaps.watch("ns", "yesterday")).code == 400


# -- validation ---------------------------------------------------------------------------------


def test_a_pod_without_containers_is_422_and_nothing_is_stored(pods: Store, storage: SqliteStorage) -> None:
    before = storage.current_revision()
    error = api_error(lambda: pods.create("ns", {"metadata": {"name": "empty"}, "spec": {"containers": []}}))
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message == 'Pod "empty" is invalid: spec.containers: Required value'
    assert error.details == {"name": "empty", "group": "", "kind": "Pod", "causes": [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}]}
    assert storage.current_revision() == before


@pytest.mark.parametrize("name", ["Bad_Name", "-leading-dash", "a" * 254, "under_score"])
def test_a_bad_name_is_422_on_metadata_name(configmaps: Store, storage: SqliteStorage, name: str) -> None:
    before = storage.current_revision()
    error = api_error(lambda: configmaps.create("ns", configmap(name)))
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message.startswith(f'ConfigMap "{name}" is invalid: ')
    assert {c["field"] for c in error.details["causes"]} == {"metadata.name"}
    assert storage.current_revision() == before


def test_a_missing_name_is_required(configmaps: Store) -> None:
    error = api_error(lambda: configmaps.create("ns", {"metadata": {}}))
    assert error.details["causes"] == [{"reason": "FieldValueRequired", "field": "metadata.name",
                                        "message": "Required value: name or generateName is required"}]


def test_several_causes_are_all_reported(pods: Store) -> None:
    body = pod("Bad_Name")
    body["metadata"]["labels"] = {"ok": "bad value"}
    body["spec"]["restartPolicy"] = "Sometimes"
    error = api_error(lambda: pods.create("ns", body))
    assert [c["field"] for c in error.details["causes"]] == ["metadata.name", "metadata.labels", "spec.restartPolicy"]
    assert error.message.startswith('Pod "Bad_Name" is invalid: [metadata.name: Invalid value: "Bad_Name": ')


def test_secret_data_that_is_not_base64_is_422_without_echoing_the_value(secrets: Store,
                                                                         storage: SqliteStorage) -> None:
    before = storage.current_revision()
    body = {"metadata": {"name": "db"}, "data": {"password": "hunter2-not-base64!"}}
    error = api_error(lambda: secrets.create("ns", body))
    assert (error.code, error.reason) == (422, "Invalid")
    assert [c["field"] for c in error.details["causes"]] == ["data[password]"]
    assert "hunter2" not in json.dumps(error.status())
    assert "hunter2" not in str(error) and "hunter2" not in repr(error)
    assert storage.current_revision() == before


def test_a_non_string_string_data_value_is_not_echoed(secrets: Store) -> None:
    error = api_error(lambda: secrets.create("ns", {"metadata": {"name": "db"}, "stringData": {"pin": 12345678}}))
    assert error.code == 422
    assert "12345678" not in json.dumps(error.status())


@pytest.mark.parametrize("data", ["hunter2-the-password", ["hunter2-the-password"]])
def test_secret_data_of_the_wrong_type_is_not_echoed(secrets: Store, data: object) -> None:
    error = api_error(lambda: secrets.create("ns", {"metadata": {"name": "db"}, "data": data}))
    assert error.code == 422
    assert "hunter2" not in json.dumps(error.status())


def test_pod_spec_is_immutable_except_images(pods: Store, storage: SqliteStorage) -> None:
    created = pods.create("ns", pod())
    changed = json.loads(json.dumps(created))
    changed["spec"]["containers"][0]["command"] = ["sh", "-c", "evil"]
    revision = storage.current_revision()
    error = api_error(lambda: pods.update("ns", "web", changed))
    assert (error.code, error.reason) == (422, "Invalid")
    [cause] = error.details["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldValueForbidden", "spec")
    assert cause["message"].startswith("Forbidden: pod updates may not change fields other than "
                                       "`spec.containers[*].image`")
    assert storage.current_revision() == revision

    new_image = json.loads(json.dumps(created))
    new_image["spec"]["containers"][0]["image"] = "busybox:1.37"
    assert pods.update("ns", "web", new_image)["spec"]["containers"][0]["image"] == "busybox:1.37"


# -- namespaces ---------------------------------------------------------------------------------


def test_a_deleted_namespace_is_terminating_and_refuses_new_content(registry: Registry) -> None:
    namespaces = registry.store_for_kind("", "Namespace")
    namespaces.create("", {"metadata": {"name": "team"}})
    registry.check_namespace_accepts_content("team")  # active: no error

    marked, gone = namespaces.delete("", "team")
    assert not gone
    assert marked["status"]["phase"] == "Terminating"
    assert marked["metadata"]["deletionTimestamp"]
    assert namespaces.get("", "team")["status"]["phase"] == "Terminating"

    error = api_error(lambda: registry.check_namespace_accepts_content("team"))
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == "unable to create new content in namespace team because it is being terminated"
    assert error.details["causes"] == [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                        "message": "namespace team is being terminated"}]


def test_content_in_a_missing_namespace_is_refused(registry: Registry) -> None:
    error = api_error(lambda: registry.check_namespace_accepts_content("nowhere"))
    assert (error.code, error.message) == (404, 'namespaces "nowhere" not found')


def test_a_terminating_namespace_goes_once_its_finalizers_are_cleared(
        make_store: Callable[[type[Strategy]], Store]) -> None:
    namespaces = make_store(NamespaceStrategy)
    namespaces.create("", {"metadata": {"name": "team"}})
    namespaces.delete("", "team")

    # A plain update cannot clear spec.finalizers; only the finalize subresource can.
    current = namespaces.get("", "team")
    current["spec"]["finalizers"] = []
    assert namespaces.update("", "team", json.loads(json.dumps(current)))["spec"]["finalizers"] == ["kubernetes"]
    assert namespaces.get("", "team")["status"]["phase"] == "Terminating"

    current = namespaces.get("", "team")
    current["spec"]["finalizers"] = []
    namespaces.update("", "team", current, subresource="finalize")
    assert api_error(lambda: namespaces.get("", "team")).code == 404
