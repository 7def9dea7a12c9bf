"""The node lifecycle controller: a node whose kubelet stops heartbeating is marked unreachable.

As upstream's (pkg/controller/nodelifecycle): the controller watches Nodes and their Leases in
kube-node-lease. A heartbeat is a lease whose renewTime changed, or a Ready condition whose
lastHeartbeatTime changed; it is timed with the controller's own clock when observed, never with
the time written in the object, so a node with a skewed (or lying) clock cannot keep itself alive.
Every node gets a full grace period from the moment the controller first sees it.

When a node has not heartbeated for the grace period (upstream's --node-monitor-grace-period,
40 s by default), the controller
- sets Ready and the other conditions the kubelet reports to Unknown, reason NodeStatusUnknown,
  "Kubelet stopped posting node status." (NodeStatusNeverUpdated for a condition never posted);
- taints the node `node.kubernetes.io/unreachable` with effects NoSchedule and NoExecute (with
  timeAdded), so the scheduler places nothing there;
- marks the Ready condition of the node's pods False (upstream's MarkPodsNotReady), with a
  NodeNotReady event on each, and a NodeNotReady event on the node when it stops being Ready.
When the kubelet is back and posts a Ready condition that is not Unknown, the taints go.

Not done here (as upstream does): evicting pods from an unreachable node (upstream leaves that to
the taint manager and the pods' tolerations) and the not-ready taint for Ready=False (the
scheduler already keeps pods off such a node).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from securekube.api.errors import ApiError
from securekube.api.selectors import FieldRequirement
from securekube.controllers.keyqueue import KeyQueue
from securekube.events import NORMAL, WARNING, EventRecorder, EventSource, StoreEventSink, object_reference, rfc3339
from securekube.registry.informer import Informer, present_objects
from securekube.registry.kinds.pods import set_condition
from securekube.registry.registry import Registry
from securekube.registry.store import ListOptions

log = logging.getLogger("securekube.controllers.node_lifecycle")
COMPONENT = "node-controller"
NODE_LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNREACHABLE_EFFECTS = ("NoSchedule", "NoExecute")
# The conditions a kubelet reports; NetworkUnavailable is the network plugin's, left alone as upstream does.
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
STATUS_UNKNOWN_REASON = "NodeStatusUnknown"
STATUS_UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
NEVER_UPDATED_REASON = "NodeStatusNeverUpdated"
NEVER_UPDATED_MESSAGE = "Kubelet never posted node status."
DEFAULT_GRACE_PERIOD_SECONDS = 40.0
DEFAULT_MONITOR_PERIOD_SECONDS = 5.0

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class NodeLifecycleConfig:
    """How long a node may go without a heartbeat, and how often the controller looks (upstream: 40 s, 5 s)."""

    grace_period: float = DEFAULT_GRACE_PERIOD_SECONDS
    monitor_period: float = DEFAULT_MONITOR_PERIOD_SECONDS

    def __post_init__(self) -> None:
        if not self.grace_period > 0 or not self.monitor_period > 0:
            raise ValueError("the node grace period and monitor period must be positive")

    @property
    def check_every(self) -> float:
        """Seconds between checks: the monitor period, shorter for a short grace period (tests, labs)."""
        return min(self.monitor_period, self.grace_period / 4)


@dataclass
class _Heartbeat:
    """The last heartbeat seen from one node, and when (on the controller's clock) it was seen."""

    seen_at: dt.datetime
    lease_renewed: Any = None
    status_heartbeat: Any = None


def _conditions(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    conditions = (node.get("status") or {}).get("conditions")
    return [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []


def ready_condition(node: Mapping[str, Any]) -> dict[str, Any]:
    """The node's Ready condition ({} if it has none)."""
    return next((c for c in _conditions(node) if c.get("type") == "Ready"), {})


def _taints(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    taints = (node.get("spec") or {}).get("taints")
    return [t for t in taints if isinstance(t, dict)] if isinstance(taints, list) else []


def is_unreachable_taint(taint: Mapping[str, Any]) -> bool:
    return taint.get("key") == UNREACHABLE_TAINT and taint.get("effect") in UNREACHABLE_EFFECTS


def has_unreachable_taints(node: Mapping[str, Any]) -> bool:
    return any(is_unreachable_taint(t) for t in _taints(node))


def unknown_conditions(node: dict[str, Any], now: str) -> dict[str, Any]:
    """`node` with every kubelet condition Unknown (in place, heartbeat times kept, transition times now)."""
    updated = []
    for condition in _conditions(node):
        if condition.get("type") in KUBELET_CONDITIONS and condition.get("status") != "Unknown":
            condition = {**condition, "status": "Unknown", "reason": STATUS_UNKNOWN_REASON,
                         "message": STATUS_UNKNOWN_MESSAGE, "lastTransitionTime": now}
        updated.append(condition)
    reported = {c.get("type") for c in updated}
    created = (node.get("metadata") or {}).get("creationTimestamp") or now
    updated += [{"type": kind, "status": "Unknown", "reason": NEVER_UPDATED_REASON, "message": NEVER_UPDATED_MESSAGE,
                 "lastHeartbeatTime": created, "lastTransitionTime": now}
                for kind in KUBELET_CONDITIONS if kind not in reported]
    node.setdefault("status", {})["conditions"] = updated
    return node


def with_unreachable_taints(node: dict[str, Any], now: str) -> dict[str, Any]:
    """`node` tainted unreachable with NoSchedule and NoExecute (a taint already there keeps its timeAdded)."""
    taints = _taints(node)
    for effect in UNREACHABLE_EFFECTS:
        if not any(t.get("key") == UNREACHABLE_TAINT and t.get("effect") == effect for t in taints):
            taints.append({"key": UNREACHABLE_TAINT, "effect": effect, "timeAdded": now})
    node.setdefault("spec", {})["taints"] = taints
    return node


def without_unreachable_taints(node: dict[str, Any]) -> dict[str, Any]:
    """`node` without the unreachable taints (no `taints` field left if none remain)."""
    spec = node.setdefault("spec", {})
    remaining = [t for t in _taints(node) if not is_unreachable_taint(t)]
    if remaining:
        spec["taints"] = remaining
    else:
        spec.pop("taints", None)
    return node


def node_controller_events(registry: Registry) -> EventRecorder:
    """The controller's event recorder: into the registry, as upstream's node-controller."""
    return EventRecorder(StoreEventSink(registry.store_for_kind("", "Event")), EventSource(COMPONENT))


class NodeLifecycleController:
    """Marks nodes without heartbeats unreachable and clears that when they return; `start()`, `stop()`.

    Without a `recorder` it records events with its own. `clock` is the controller's wall clock
    (timezone-aware), used to time heartbeats and stamp conditions and taints.
    """

    def __init__(self, registry: Registry, config: NodeLifecycleConfig = NodeLifecycleConfig(),
                 recorder: EventRecorder | None = None,
                 clock: Clock = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self._config = config
        self._clock = clock
        self._owns_events = recorder is None
        self._events = recorder or node_controller_events(registry)
        self._nodes = registry.store_for_kind("", "Node")
        self._pods = registry.store_for_kind("", "Pod")
        self._lock = threading.Lock()
        self._heartbeats: dict[str, _Heartbeat] = {}
        self._known_nodes: set[str] = set()
        self._queue: KeyQueue[str] = KeyQueue("node-lifecycle", self.reconcile)
        self._node_informer = Informer(self._nodes, self.observe_node, name="node-lifecycle-nodes")
        self._lease_informer = Informer(registry.store_for_kind("coordination.k8s.io", "Lease"), self.observe_lease,
                                        name="node-lifecycle-leases")
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._monitor_loop, name="node-lifecycle-monitor", daemon=True)

    def start(self) -> None:
        if self._owns_events:
            self._events.start()
        self._queue.start()
        self._node_informer.start()
        self._lease_informer.start()
        self._monitor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._monitor.is_alive():
            self._monitor.join(timeout=5)
        self._lease_informer.stop()
        self._node_informer.stop()
        self._queue.stop()
        if self._owns_events:
            self._events.close()

    # ---- heartbeats ----------------------------------------------------------------------------

    def _heard(self, name: str, lease_renewed: Any = None, status_heartbeat: Any = None) -> None:
        """Notes what node `name` last said; a change from what was seen before is a heartbeat now."""
        now = self._clock()
        with self._lock:
            seen = self._heartbeats.get(name)
            if seen is None:
                self._heartbeats[name] = _Heartbeat(now, lease_renewed, status_heartbeat)
                return
            if lease_renewed is not None and lease_renewed != seen.lease_renewed:
                seen.lease_renewed, seen.seen_at = lease_renewed, now
            if status_heartbeat is not None and status_heartbeat != seen.status_heartbeat:
                seen.status_heartbeat, seen.seen_at = status_heartbeat, now

    def observe_node(self, event_type: str, obj: dict) -> None:
        """The node informer's handler: tracks status heartbeats and queues nodes with work to do."""
        if event_type == "DELETED":
            name = obj["metadata"]["name"]
            with self._lock:
                self._known_nodes.discard(name)
                self._heartbeats.pop(name, None)
            return
        nodes = present_objects(event_type, obj)
        if event_type == "SYNC":
            names = {n["metadata"]["name"] for n in nodes}
            with self._lock:
                self._known_nodes = names
                # Leases seen before their node stay; a node that is gone takes its record along.
                self._heartbeats = {k: v for k, v in self._heartbeats.items() if k in names}
        for node in nodes:
            name = node["metadata"]["name"]
            with self._lock:
                self._known_nodes.add(name)
            self._heard(name, status_heartbeat=ready_condition(node).get("lastHeartbeatTime"))
            if has_unreachable_taints(node) and ready_condition(node).get("status") not in (None, "Unknown"):
                self._queue.add(name)

    def observe_lease(self, event_type: str, obj: dict) -> None:
        """The lease informer's handler: a node lease whose renewTime changed is a heartbeat."""
        for lease in present_objects(event_type, obj):
            meta = lease.get("metadata") or {}
            if meta.get("namespace") != NODE_LEASE_NAMESPACE:
                continue
            renewed = (lease.get("spec") or {}).get("renewTime")
            if renewed is not None:
                self._heard(meta["name"], lease_renewed=renewed)

    def is_stale(self, name: str) -> bool:
        """Whether node `name` has not heartbeated for the grace period (a node not seen yet starts its period now)."""
        now = self._clock()
        with self._lock:
            seen = self._heartbeats.setdefault(name, _Heartbeat(now))
            return (now - seen.seen_at).total_seconds() > self._config.grace_period

    def check_all(self) -> None:
        """One monitor pass: queues every node whose grace period ran out."""
        with self._lock:
            names = sorted(self._known_nodes)
        for name in names:
            if self.is_stale(name):
                self._queue.add(name)

    def _monitor_loop(self) -> None:
        while not self._stopping.wait(self._config.check_every):
            try:
                self.check_all()
            except Exception:  # keep watching the nodes; the next pass tries again
                log.exception("node monitor pass failed")

    # ---- decisions -----------------------------------------------------------------------------

    def reconcile(self, name: str) -> None:
        """Reads node `name` afresh: marks it unreachable if it is stale, or clears the taints of one that is back."""
        node = self._nodes.get("", name)
        if self.is_stale(name):
            self._mark_unreachable(node)
        elif has_unreachable_taints(node) and ready_condition(node).get("status") not in (None, "Unknown"):
            self._nodes.guaranteed_update("", name, without_unreachable_taints)
            log.info("node %s is back: unreachable taints removed", name)

    def _mark_unreachable(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        now = rfc3339(self._clock())
        was_ready = ready_condition(node).get("status") == "True"
        updated = self._nodes.guaranteed_update("", name, lambda current: unknown_conditions(current, now),
                                                subresource="status")
        self._nodes.guaranteed_update("", name, lambda current: with_unreachable_taints(current, now))
        if was_ready:
            log.warning("node %s stopped posting its status: marked unreachable", name)
            self._events.record(object_reference(updated, "Node"), NORMAL, "NodeNotReady",
                                f"Node {name} status is now: NodeNotReady")
        self._mark_pods_not_ready(name)

    def _mark_pods_not_ready(self, node_name: str) -> None:
        selector = (FieldRequirement("spec.nodeName", True, node_name),)
        for pod in self._pods.list("", ListOptions(field_selector=selector)).items:
            ready = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                          if isinstance(c, dict) and c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False":
                continue  # upstream changes only a Ready condition the pod has
            meta = pod["metadata"]
            try:
                self._pods.guaranteed_update(meta["namespace"], meta["name"], _not_ready_on(node_name),
                                             subresource="status")
            except ApiError as exc:
                if exc.code == 404:
                    continue  # deleted meanwhile: nothing to mark
                raise
            self._events.record(object_reference(pod, "Pod"), WARNING, "NodeNotReady", "Node is not ready")


def _not_ready_on(node_name: str) -> Callable[[dict], dict]:
    """A pod status update setting its Ready condition False (reason and message kept), if it is on the node."""
    def mutate(pod: dict) -> dict:
        ready = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                      if isinstance(c, dict) and c.get("type") == "Ready"), None)
        if ready is not None and (pod.get("spec") or {}).get("nodeName") == node_name:
            set_condition(pod, {**{k: v for k, v in ready.items() if k != "lastTransitionTime"}, "status": "False"})
        return pod
    return mutate
