"""POST pods/NAME/binding: sets spec.nodeName once, with upstream's errors."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from securekube.api.errors import ApiError
from securekube.registry.kinds.pods import PodStrategy, bind_pod
from securekube.registry.resource import Strategy
from securekube.registry.store import Store


@pytest.fixture
def pods(make_store: Callable[[type[Strategy]], Store]) -> Store:
    store = make_store(PodStrategy)
    store.create("default", {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "b:1"}]}})
    return store


def binding(node: str = "node-a", **meta: object) -> dict:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web", **meta},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


def test_a_binding_sets_the_node_and_the_scheduled_condition(pods: Store) -> None:
    bound = bind_pod(pods, "default", "web", binding(annotations={"scheduled-by": "me"}))
    assert bound["spec"]["nodeName"] == "node-a"
    assert bound["metadata"]["annotations"] == {"scheduled-by": "me"}
    assert [(c["type"], c["status"]) for c in bound["status"]["conditions"]] == [("PodScheduled", "True")]


def test_a_pod_is_bound_once(pods: Store) -> None:
    bind_pod(pods, "default", "web", binding())
    with pytest.raises(ApiError) as raised:
        bind_pod(pods, "default", "web", binding("node-b"))
    assert raised.value.code == 409
    assert raised.value.message == 'Operation cannot be fulfilled on pods "web": pod web is already assigned to ' \
                                   'node "node-a"'


def test_a_pod_being_deleted_is_not_bound(pods: Store) -> None:
    pods.create("default", {"metadata": {"name": "gone", "finalizers": ["x"]},
                            "spec": {"containers": [{"name": "c", "image": "b:1"}]}})
    pods.delete("default", "gone")
    with pytest.raises(ApiError) as raised:
        bind_pod(pods, "default", "gone", {"metadata": {"name": "gone"}, "target": {"name": "node-a"}})
    assert raised.value.code == 409 and "is being deleted, cannot be assigned to a host" in raised.value.message


def test_bad_bindings_are_refused(pods: Store) -> None:
    with pytest.raises(ApiError) as raised:
        bind_pod(pods, "default", "web", {"metadata": {"name": "web"}, "target": {"kind": "Pod"}})
    assert raised.value.code == 422
    assert {c["field"] for c in raised.value.details["causes"]} == {"target.kind", "target.name"}
    with pytest.raises(ApiError) as raised:
        bind_pod(pods, "default", "web", binding() | {"metadata": {"name": "other"}})
    assert (raised.value.code, raised.value.message) == (400, "name in URL does not match name in Binding object")


def test_the_main_resource_cannot_bind(pods: Store) -> None:
    with pytest.raises(ApiError) as raised:
        pods.guaranteed_update("default", "web", lambda p: {**p, "spec": {**p["spec"], "nodeName": "node-a"}})
    assert raised.value.code == 422


def _status_column(pods: Store, status: dict) -> str:
    pod = {**pods.get("default", "web"), "status": status}
    column = next(c for c in pods.strategy.columns if c.name == "Status")
    return column.render(pod, None)


def test_the_status_column_shows_container_reasons_as_upstream(pods: Store) -> None:
    waiting = {"phase": "Pending", "containerStatuses": [
        {"name": "c", "ready": False, "state": {"waiting": {"reason": "CreateContainerConfigError"}}}]}
    assert _status_column(pods, waiting) == "CreateContainerConfigError"
    done = {"phase": "Succeeded", "containerStatuses": [
        {"name": "c", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    assert _status_column(pods, done) == "Completed"
    rejected = {"phase": "Failed", "reason": "AppArmor", "message": "Pod was rejected: ..."}
    assert _status_column(pods, rejected) == "AppArmor"
    running = {"phase": "Running", "containerStatuses": [
        {"name": "c", "ready": True, "state": {"running": {"startedAt": "2024-05-01T12:00:00Z"}}}]}
    assert _status_column(pods, running) == "Running"
