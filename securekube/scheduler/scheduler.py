"""The scheduler: binds each pending pod (no spec.nodeName, schedulerName default-scheduler) to a node.

Runs in the API server process like the other controllers. Informers keep a cache of nodes and of
how many pods each runs; a work queue takes pending pods one at a time. A pod goes to the feasible
node (see fit.py) with the fewest pods, through the same code as `POST pods/NAME/binding`
(`bind_pod`), so a binding is written once and a pod that is already bound or being deleted is
left alone. A pod that fits nowhere gets PodScheduled=False, reason Unschedulable, with upstream's
summary, and is tried again when a node changes.

Each decision is also told in an Event on the pod, as upstream's scheduler does: `Scheduled`
("Successfully assigned NS/POD to NODE") or `FailedScheduling` (the summary), from
default-scheduler; a recurring failure counts up on one Event.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections import Counter

from securekube.api.errors import ApiError
from securekube.controllers.keyqueue import KeyQueue
from securekube.events import NORMAL, WARNING, EventRecorder, EventSource, StoreEventSink, object_reference
from securekube.registry.informer import Informer
from securekube.registry.kinds.pods import bind_pod, set_condition
from securekube.registry.registry import Registry
from securekube.scheduler.fit import unschedulable_message, why_not

log = logging.getLogger("securekube.scheduler")
SCHEDULER_NAME = "default-scheduler"
RETRY_UNSCHEDULABLE_SECONDS = 10.0
# How long start() waits for the node cache before it lets pods in (the store is local: it is
# usually a few milliseconds; past this, pods are judged against what has arrived and retried).
NODE_CACHE_SYNC_SECONDS = 10.0

PodKey = tuple[str, str]


def is_pending(pod: dict) -> bool:
    """Whether `pod` waits for this scheduler: unbound, not being deleted, ours."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and not meta.get("deletionTimestamp")
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME)


def scheduler_events(registry: Registry) -> EventRecorder:
    """The scheduler's event recorder: into the registry, as default-scheduler (instance named by host, as upstream)."""
    return EventRecorder(StoreEventSink(registry.store_for_kind("", "Event")),
                         EventSource(SCHEDULER_NAME, instance=f"{SCHEDULER_NAME}-{socket.gethostname()}"))


class Scheduler:
    """Binds pending pods; `start()` it, `stop()` it. Without a `recorder` it records events with its own."""

    def __init__(self, registry: Registry, recorder: EventRecorder | None = None) -> None:
        self._owns_events = recorder is None
        self._events = recorder or scheduler_events(registry)
        self._pods = registry.store_for_kind("", "Pod")
        self._lock = threading.Lock()
        self._nodes: dict[str, dict] = {}
        self._bound: dict[PodKey, str] = {}  # pod -> node, for the per-node pod count
        self._pending: set[PodKey] = set()
        self._queue: KeyQueue[PodKey] = KeyQueue("scheduler", self.schedule)
        self._node_informer = Informer(registry.store_for_kind("", "Node"), self._node_event, name="scheduler-nodes")
        self._pod_informer = Informer(self._pods, self._pod_event, name="scheduler-pods")

    def start(self) -> None:
        if self._owns_events:
            self._events.start()
        self._queue.start()
        self._node_informer.start()
        # As upstream waits for its caches: a pod judged before the nodes are known would get a
        # false "0/0 nodes are available" event.
        if not self._node_informer.wait_synced(NODE_CACHE_SYNC_SECONDS):
            log.warning("scheduler: node cache not synced after %gs; scheduling anyway", NODE_CACHE_SYNC_SECONDS)
        self._pod_informer.start()

    def stop(self) -> None:
        self._pod_informer.stop()
        self._node_informer.stop()
        self._queue.stop()
        if self._owns_events:
            self._events.close()

    # -- caches ---------------------------------------------------------------------------------
    def _node_event(self, event_type: str, obj: dict) -> None:
        with self._lock:
            if event_type == "SYNC":
                self._nodes = {n["metadata"]["name"]: n for n in obj["items"]}
            elif event_type == "DELETED":
                self._nodes.pop(obj["metadata"]["name"], None)
            else:
                self._nodes[obj["metadata"]["name"]] = obj
            waiting = list(self._pending)
        for key in waiting:  # a node that appeared or changed may be where they fit
            self._queue.add(key)

    def _pod_event(self, event_type: str, obj: dict) -> None:
        pods = obj["items"] if event_type == "SYNC" else [obj]
        with self._lock:
            if event_type == "SYNC":
                self._bound, self._pending = {}, set()
            for pod in pods:
                key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
                node = (pod.get("spec") or {}).get("nodeName")
                if event_type == "DELETED":
                    self._bound.pop(key, None)
                    self._pending.discard(key)
                elif node:
                    self._bound[key] = node
                    self._pending.discard(key)
                elif is_pending(pod):
                    self._pending.add(key)
                else:
                    self._pending.discard(key)
            waiting = [key for key in self._pending
                       if event_type == "SYNC" or key == (obj["metadata"].get("namespace"), obj["metadata"]["name"])]
        for key in waiting:
            self._queue.add(key)

    # -- decisions ------------------------------------------------------------------------------
    def pick_node(self, pod: dict) -> tuple[str | None, str]:
        """The node for `pod` (fewest pods first, then by name), or None and upstream's reason why not."""
        with self._lock:
            nodes = list(self._nodes.values())
            load = Counter(self._bound.values())
        feasible, reasons = [], Counter()
        for node in nodes:
            reason = why_not(pod, node)
            if reason is None:
                feasible.append(node["metadata"]["name"])
            else:
                reasons[reason] += 1
        if not feasible:
            return None, unschedulable_message(reasons, len(nodes))
        return min(feasible, key=lambda name: (load[name], name)), ""

    def schedule(self, key: PodKey) -> None:
        """Binds pod `key` if it is still pending (read afresh), or records why it cannot be placed."""
        namespace, name = key
        pod = self._pods.get(namespace, name)
        if not is_pending(pod):
            return
        node, why = self.pick_node(pod)
        if node is None:
            self._mark_unschedulable(namespace, name, why)
            self._events.record(object_reference(pod, "Pod"), WARNING, "FailedScheduling", why)
            self._queue.add_after(key, RETRY_UNSCHEDULABLE_SECONDS)
            return
        try:
            bind_pod(self._pods, namespace, name, {"metadata": {"name": name, "uid": pod["metadata"]["uid"]},
                                                   "target": {"kind": "Node", "name": node}})
        except ApiError as exc:
            if exc.code == 409:  # bound or deleted meanwhile: nothing left to do
                return
            raise
        with self._lock:
            self._bound[key] = node
            self._pending.discard(key)
        self._events.record(object_reference(pod, "Pod"), NORMAL, "Scheduled",
                            f"Successfully assigned {namespace}/{name} to {node}")
        log.info("pod %s/%s bound to node %s", namespace, name, node)

    def _mark_unschedulable(self, namespace: str, name: str, message: str) -> None:
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}

        def mark(pod: dict) -> dict:
            if is_pending(pod):
                set_condition(pod, condition)
            return pod

        self._pods.guaranteed_update(namespace, name, mark, subresource="status")
