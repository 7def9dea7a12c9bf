"""The scheduler tells each decision in an Event on the pod: Scheduled, or FailedScheduling with upstream's summary."""
from __future__ import annotations

import time

from securekube.events import EventRecorder
from securekube.registry.registry import Registry
from securekube.scheduler.scheduler import Scheduler, scheduler_events


def _node(registry: Registry, name: str, ready: str = "True", taints: list | None = None) -> None:
    nodes = registry.store_for_kind("", "Node")
    nodes.create("", {"metadata": {"name": name}, "spec": {"taints": taints} if taints else {}})
    nodes.guaranteed_update("", name, lambda n: {**n, "status": {"conditions": [{"type": "Ready", "status": ready}]}},
                            subresource="status")


def _pod(registry: Registry, name: str) -> None:
    registry.store_for_kind("", "Pod").create("default", {
        "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}})


def _events(registry: Registry, recorder: EventRecorder) -> list[dict]:
    assert recorder.flush(5)
    return registry.store_for_kind("", "Event").list("default").items


def _wait_for_events(registry: Registry, recorder: EventRecorder) -> list[dict]:
    deadline = time.monotonic() + 5
    while not (events := _events(registry, recorder)):
        assert time.monotonic() < deadline, "no event in time"
        time.sleep(0.02)
    return events


def test_a_bound_pod_gets_a_scheduled_event_from_the_default_scheduler(registry: Registry) -> None:
    _node(registry, "node-a")
    _pod(registry, "web")
    recorder = scheduler_events(registry)
    recorder.start()
    scheduler = Scheduler(registry, recorder)
    scheduler.start()
    try:
        [event] = _wait_for_events(registry, recorder)
    finally:
        scheduler.stop()
        recorder.close()
    pod = registry.store_for_kind("", "Pod").get("default", "web")
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal", "Scheduled", "Successfully assigned default/web to node-a")
    assert event["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert event["source"] == {"component": "default-scheduler"}
    assert event["reportingComponent"] == "default-scheduler"
    assert event["reportingInstance"].startswith("default-scheduler-")


def test_a_pod_that_fits_nowhere_gets_one_failed_scheduling_event_that_counts_retries(registry: Registry) -> None:
    _node(registry, "node-a", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
    _pod(registry, "web")
    recorder = scheduler_events(registry)
    recorder.start()
    scheduler = Scheduler(registry, recorder)
    scheduler.start()
    try:
        _wait_for_events(registry, recorder)
        scheduler.schedule(("default", "web"))  # a retry: the same story, counted
        [event] = _events(registry, recorder)
    finally:
        scheduler.stop()
        recorder.close()
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning", "FailedScheduling",
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.")
    assert event["count"] >= 2
    assert "nodeName" not in registry.store_for_kind("", "Pod").get("default", "web")["spec"]


def test_pods_are_judged_only_once_the_nodes_are_known(registry: Registry, monkeypatch) -> None:
    # A slow first node list (a busy store) must not let a pod be judged against no nodes at all,
    # which would tell a false "0/0 nodes are available".
    _node(registry, "node-a", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
    _pod(registry, "web")
    nodes = registry.store_for_kind("", "Node")
    real_list = nodes.list

    def slow_list(*args, **kwargs):
        time.sleep(0.3)
        return real_list(*args, **kwargs)

    monkeypatch.setattr(nodes, "list", slow_list)
    recorder = scheduler_events(registry)
    recorder.start()
    scheduler = Scheduler(registry, recorder)
    scheduler.start()
    try:
        events = _wait_for_events(registry, recorder)
    finally:
        scheduler.stop()
        recorder.close()
    assert [e["message"] for e in events] == [
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."]
