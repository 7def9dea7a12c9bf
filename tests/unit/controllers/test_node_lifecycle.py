"""The node lifecycle controller: a node without heartbeats becomes Unknown and unreachable, and recovers."""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from securekube.api.errors import ApiError
from securekube.controllers.node_lifecycle import NodeLifecycleConfig, NodeLifecycleController, node_controller_events
from securekube.events import EventRecorder
from securekube.registry.registry import Registry
from securekube.scheduler.fit import why_not
from tests.helpers import FakeClock

START = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
GRACE = 40.0
UNREACHABLE = "node.kubernetes.io/unreachable"


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _kubelet_conditions(heartbeat: str) -> list[dict]:
    return [{"type": kind, "status": status, "reason": reason, "message": "as the kubelet says",
             "lastHeartbeatTime": heartbeat, "lastTransitionTime": "2025-03-01T11:00:00Z"}
            for kind, status, reason in (("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                                         ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                                         ("PIDPressure", "False", "KubeletHasSufficientPID"),
                                         ("Ready", "True", "KubeletReady"))]


def _post_status(registry: Registry, name: str, heartbeat: str) -> dict:
    return registry.store_for_kind("", "Node").guaranteed_update(
        "", name, lambda n: {**n, "status": {"conditions": _kubelet_conditions(heartbeat)}}, subresource="status")


def _renew_lease(registry: Registry, name: str, when: dt.datetime) -> dict:
    leases = registry.store_for_kind("coordination.k8s.io", "Lease")
    renew = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"metadata": {"name": name},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}}
    try:
        return leases.guaranteed_update("kube-node-lease", name, lambda lease: {**lease, "spec": body["spec"]})
    except ApiError as exc:
        if exc.code != 404:
            raise
        return leases.create("kube-node-lease", body)


def _node(registry: Registry, name: str = "node-a", taints: list | None = None, status: bool = True) -> dict:
    nodes = registry.store_for_kind("", "Node")
    nodes.create("", {"metadata": {"name": name}, "spec": {"taints": taints} if taints else {}})
    return _post_status(registry, name, _stamp(START)) if status else nodes.get("", name)


def _running_pod(registry: Registry, name: str, node: str) -> None:
    pods = registry.store_for_kind("", "Pod")
    pods.create("default", {"metadata": {"name": name},
                            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1"}]}})
    pods.guaranteed_update("default", name, lambda p: {**p, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2025-03-01T11:00:00Z"},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-03-01T11:00:00Z"}]}},
        subresource="status")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def recorder(registry: Registry) -> Iterator[EventRecorder]:
    running = node_controller_events(registry)
    running.start()
    yield running
    running.close()


@pytest.fixture
def controller(registry: Registry, recorder: EventRecorder, clock: FakeClock) -> NodeLifecycleController:
    """A controller driven by hand: the test feeds it what its informers would and runs its passes."""
    return NodeLifecycleController(registry, NodeLifecycleConfig(grace_period=GRACE), recorder, clock)


def _observe(controller: NodeLifecycleController, registry: Registry) -> None:
    """What the informers would deliver: every node and lease as they are now."""
    controller.observe_node("SYNC", {"items": registry.store_for_kind("", "Node").list("").items})
    controller.observe_lease("SYNC", {"items": registry.store_for_kind("coordination.k8s.io", "Lease").list("").items})


def _get(registry: Registry, name: str = "node-a") -> dict:
    return registry.store_for_kind("", "Node").get("", name)


def _conditions(node: dict) -> dict[str, dict]:
    return {c["type"]: c for c in node["status"]["conditions"]}


def _events(registry: Registry, recorder: EventRecorder, namespace: str = "default") -> list[tuple[str, str, str, str]]:
    assert recorder.flush(5)
    return sorted((e["involvedObject"]["kind"], e["type"], e["reason"], e["message"])
                  for e in registry.store_for_kind("", "Event").list(namespace).items)


def test_a_node_that_stops_renewing_its_lease_is_marked_unknown_and_unreachable(
        registry: Registry, controller: NodeLifecycleController, recorder: EventRecorder, clock: FakeClock) -> None:
    _node(registry)
    _renew_lease(registry, "node-a", START)
    _running_pod(registry, "web", "node-a")
    _observe(controller, registry)

    clock.advance(GRACE + 1)
    controller.reconcile("node-a")

    node = _get(registry)
    conditions = _conditions(node)
    for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        assert (conditions[kind]["status"], conditions[kind]["reason"], conditions[kind]["message"]) == (
            "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert conditions[kind]["lastHeartbeatTime"] == _stamp(START)  # the last heartbeat stays on record
        assert conditions[kind]["lastTransitionTime"] == _stamp(clock.now)
    assert sorted((t["key"], t["effect"], t["timeAdded"]) for t in node["spec"]["taints"]) == [
        (UNREACHABLE, "NoExecute", _stamp(clock.now)), (UNREACHABLE, "NoSchedule", _stamp(clock.now))]
    pod = registry.store_for_kind("", "Pod").get("default", "web")
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["lastTransitionTime"] != "2025-03-01T11:00:00Z"
    assert _events(registry, recorder) == [
        ("Node", "Normal", "NodeNotReady", "Node node-a status is now: NodeNotReady"),
        ("Pod", "Warning", "NodeNotReady", "Node is not ready")]


def test_the_scheduler_keeps_pods_off_an_unreachable_node(registry: Registry, controller: NodeLifecycleController,
                                                           clock: FakeClock) -> None:
    _node(registry)
    _observe(controller, registry)
    clock.advance(GRACE + 1)
    controller.reconcile("node-a")
    pod = {"spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
    assert why_not(pod, _get(registry)) == "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"


def test_within_the_grace_period_nothing_changes(registry: Registry, controller: NodeLifecycleController,
                                                 clock: FakeClock) -> None:
    before = _node(registry)
    _observe(controller, registry)
    clock.advance(GRACE - 1)
    controller.reconcile("node-a")
    assert _get(registry) == before


def test_a_renewing_lease_keeps_a_node_healthy(registry: Registry, controller: NodeLifecycleController,
                                              clock: FakeClock) -> None:
    before = _node(registry)
    for _ in range(5):
        _renew_lease(registry, "node-a", clock.now)
        _observe(controller, registry)
        clock.advance(GRACE - 5)
        controller.check_all()
        controller.reconcile("node-a")
    assert _get(registry)["status"] == before["status"] and "taints" not in _get(registry)["spec"]


def test_a_lease_written_far_into_the_future_does_not_keep_a_node_alive(
        registry: Registry, controller: NodeLifecycleController, clock: FakeClock) -> None:
    _node(registry)
    _renew_lease(registry, "node-a", START + dt.timedelta(days=365))
    _observe(controller, registry)
    clock.advance(GRACE + 1)
    controller.reconcile("node-a")
    assert _conditions(_get(registry))["Ready"]["status"] == "Unknown"


def test_a_node_that_never_posted_status_says_so(registry: Registry, controller: NodeLifecycleController,
                                                 clock: FakeClock) -> None:
    _node(registry, status=False)
    _observe(controller, registry)
    clock.advance(GRACE + 1)
    controller.reconcile("node-a")
    ready = _conditions(_get(registry))["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")


def test_a_node_that_comes_back_loses_the_unreachable_taints_and_keeps_its_own(
        registry: Registry, controller: NodeLifecycleController, clock: FakeClock) -> None:
    own = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    _node(registry, taints=[own])
    _observe(controller, registry)
    clock.advance(GRACE + 1)
    controller.reconcile("node-a")
    assert len(_get(registry)["spec"]["taints"]) == 3

    clock.advance(3)
    _renew_lease(registry, "node-a", clock.now)
    _observe(controller, registry)
    controller.reconcile("node-a")  # the lease alone: Ready is still Unknown, the taints stay
    assert len(_get(registry)["spec"]["taints"]) == 3

    _post_status(registry, "node-a", _stamp(clock.now))
    _observe(controller, registry)
    controller.reconcile("node-a")
    node = _get(registry)
    assert node["spec"]["taints"] == [own]
    assert _conditions(node)["Ready"]["status"] == "True"


def test_a_running_controller_marks_a_silent_node_and_clears_it_when_it_returns(registry: Registry) -> None:
    _node(registry)
    _renew_lease(registry, "node-a", dt.datetime.now(dt.timezone.utc))
    controller = NodeLifecycleController(registry, NodeLifecycleConfig(grace_period=0.4))
    controller.start()
    try:
        deadline = time.monotonic() + 5
        while "taints" not in _get(registry)["spec"]:
            assert time.monotonic() < deadline, "the node was not marked unreachable"
            time.sleep(0.02)
        assert _conditions(_get(registry))["Ready"]["status"] == "Unknown"

        _renew_lease(registry, "node-a", dt.datetime.now(dt.timezone.utc))
        _post_status(registry, "node-a", _stamp(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)))
        while "taints" in _get(registry)["spec"]:
            assert time.monotonic() < deadline, "the taints were not removed"
            time.sleep(0.02)
    finally:
        controller.stop()


def test_the_grace_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        NodeLifecycleConfig(grace_period=0)
    assert NodeLifecycleConfig(grace_period=2).check_every == 0.5
    assert NodeLifecycleConfig().check_every == 5.0
