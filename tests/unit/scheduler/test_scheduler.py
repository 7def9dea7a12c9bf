"""The scheduler binds pending pods to the least loaded node that fits, once, and explains failures."""
from __future__ import annotations

import time

from securekube.registry.registry import Registry
from securekube.scheduler.scheduler import Scheduler


def _node(registry: Registry, name: str, ready: str = "True", labels: dict | None = None) -> None:
    nodes = registry.store_for_kind("", "Node")
    nodes.create("", {"metadata": {"name": name, "labels": labels or {}}})
    nodes.guaranteed_update("", name, lambda n: {**n, "status": {"conditions": [{"type": "Ready", "status": ready}]}},
                            subresource="status")


def _pod(registry: Registry, name: str, **spec: object) -> None:
    registry.store_for_kind("", "Pod").create("default", {
        "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}], **spec}})


def _get(registry: Registry, name: str) -> dict:
    return registry.store_for_kind("", "Pod").get("default", name)


def _running_scheduler(registry: Registry) -> Scheduler:
    scheduler = Scheduler(registry)
    scheduler.start()
    return scheduler


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_pending_pods_are_spread_over_ready_nodes(registry: Registry) -> None:
    _node(registry, "node-a")
    _node(registry, "node-b")
    _node(registry, "node-c", ready="False")
    scheduler = _running_scheduler(registry)
    try:
        for index in range(4):
            _pod(registry, f"p{index}")
        _wait_for(lambda: all((_get(registry, f"p{i}")["spec"].get("nodeName")) for i in range(4)))
    finally:
        scheduler.stop()
    placed = [_get(registry, f"p{i}")["spec"]["nodeName"] for i in range(4)]
    assert sorted(placed) == ["node-a", "node-a", "node-b", "node-b"]
    scheduled = next(c for c in _get(registry, "p0")["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "True"


def test_a_pod_that_fits_nowhere_says_why_and_is_placed_when_a_node_fits(registry: Registry) -> None:
    _node(registry, "node-a", labels={"disk": "hdd"})
    scheduler = _running_scheduler(registry)
    try:
        _pod(registry, "wants-ssd", nodeSelector={"disk": "ssd"})

        def unschedulable() -> dict | None:
            conditions = _get(registry, "wants-ssd")["status"].get("conditions") or []
            return next((c for c in conditions if c.get("reason") == "Unschedulable"), None)

        _wait_for(lambda: unschedulable() is not None)
        assert unschedulable()["message"] == ("0/1 nodes are available: 1 node(s) didn't match Pod's node "
                                              "affinity/selector.")
        _node(registry, "node-ssd", labels={"disk": "ssd"})
        _wait_for(lambda: _get(registry, "wants-ssd")["spec"].get("nodeName") == "node-ssd")
    finally:
        scheduler.stop()


def test_pods_of_other_schedulers_and_bound_pods_are_left_alone(registry: Registry) -> None:
    _node(registry, "node-a")
    _pod(registry, "other", schedulerName="my-scheduler")
    _pod(registry, "pinned", nodeName="node-z")
    scheduler = Scheduler(registry)
    scheduler.schedule(("default", "other"))
    scheduler.schedule(("default", "pinned"))
    assert "nodeName" not in _get(registry, "other")["spec"]
    assert _get(registry, "pinned")["spec"]["nodeName"] == "node-z"
