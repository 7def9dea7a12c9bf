"""The kubelet agent: joins the cluster as `system:node:<name>` and runs the pods bound to this node.

`start()` does, in order: TLS bootstrap (bootstrap.py) unless the node's kubeconfig still holds a
usable certificate; register the Node (or adopt the existing one) and report its status
(node_status.py); then, in background threads, renew the node's Lease every 10 s, refresh the
Node status, rotate the client certificate before it expires, and list+watch the pods with
`fieldSelector=spec.nodeName=<name>` (the only pod listing the Node authorizer grants a node),
handing each pod to its own `PodWorker`.

Everything the agent sends goes out as the node's own identity over mTLS; it holds no other
credential. `container_logs` serves the node's kubelet API (server.py).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securekube.api.podlogoptions import PodLogOptions
from securekube.events import EventRecorder, EventSink, EventSource
from securekube.kubelet import node_status
from securekube.kubelet.apiclient import ApiClient, ApiClientError, ApiStatusError, Credentials
from securekube.kubelet.bootstrap import (BootstrapConfig, certificate_of, describe, node_credentials, rotate,
                                          rotation_deadline)
from securekube.kubelet.cri.client import CriClient, CriError
from securekube.kubelet.crilog import ContainerLogStream, LogReadOptions, nanos_since_epoch
from securekube.kubelet.events import COMPONENT, ApiEventSink
from securekube.kubelet.pod_worker import LogUnavailable, PodStarts, PodWorker, WorkerContext
from securekube.kubelet.runtime import PodRuntime

log = logging.getLogger("securekube.kubelet")
NODES = "/api/v1/nodes"
PODS = "/api/v1/pods"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{node_status.NODE_LEASE_NAMESPACE}/leases"
RELIST_DELAY_SECONDS = 1.0
WATCH_TIMEOUT_SECONDS = 300
# How long Events wait for the pod starts in progress to finish (see PodStarts), at most.
EVENT_HOLD_SECONDS = 3.0


@dataclass(frozen=True)
class AgentConfig:
    """One node's kubelet: its name and address, its credentials' files, and its rhythm."""

    node_name: str
    address: str
    kubelet_port: int
    kubeconfig: Path
    bootstrap_kubeconfig: Path | None = None
    lease_renew_seconds: float = 10.0
    node_status_seconds: float = 60.0
    pod_sync_seconds: float = 1.0
    csr_timeout_seconds: float = 60.0


class EventsAfterStarts:
    """An EventSink that lets the pod starts in progress go first, then passes events on.

    Events cost the API server a full write each; no pod waits for them, while every pod of a burst
    waits for its own start. Holding them for at most EVENT_HOLD_SECONDS after a burst began gives
    the starts that CPU; the events go out right after, in order, none dropped.
    """

    def __init__(self, sink: EventSink, starts: PodStarts, hold_seconds: float = EVENT_HOLD_SECONDS) -> None:
        self._sink = sink
        self._starts = starts
        self._hold_seconds = hold_seconds

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        self._starts.wait_for_lull(self._hold_seconds)
        self._sink.create(namespace, event)

    def patch(self, namespace: str, name: str, changes: dict[str, Any]) -> bool:
        self._starts.wait_for_lull(self._hold_seconds)
        return self._sink.patch(namespace, name, changes)


class KubeletAgent:
    """The node agent; `start()` it (it raises if the node cannot join), `stop()` it."""

    def __init__(self, config: AgentConfig, runtime: PodRuntime, cri: CriClient) -> None:
        self._config = config
        self._runtime = runtime
        self._cri = cri
        self._identity = node_status.NodeIdentity(config.node_name, config.address, config.kubelet_port)
        self._bootstrap = BootstrapConfig(config.node_name, config.kubeconfig, config.bootstrap_kubeconfig,
                                          config.csr_timeout_seconds)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._workers: dict[str, PodWorker] = {}
        self._threads: list[threading.Thread] = []
        self._client: ApiClient | None = None
        self._credentials: Credentials | None = None
        self._node_uid = ""
        self._events: EventRecorder | None = None
        self._starts = PodStarts()

    @property
    def client(self) -> ApiClient:
        """The node's API client (mTLS as system:node:<name>); only after `start()`."""
        if self._client is None:
            raise RuntimeError("the kubelet agent has not started")
        return self._client

    # ---- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._credentials = node_credentials(self._bootstrap)
        cert = certificate_of(self._credentials)
        log.info("node %s: client certificate %s", self._config.node_name, describe(cert) if cert else "?")
        self._client = ApiClient(self._credentials)
        # Events go out as the node, in the background: posting one never holds up pod work, and
        # while pods are starting they wait (EventsAfterStarts).
        self._events = EventRecorder(EventsAfterStarts(ApiEventSink(self._client), self._starts),
                                     EventSource(COMPONENT, host=self._config.node_name))
        self._events.start()
        self.register_node()
        self.renew_lease()
        for name, loop in (("lease", self._lease_loop), ("node-status", self._node_status_loop),
                           ("pods", self._pod_loop), ("cert-rotation", self._rotation_loop)):
            thread = threading.Thread(target=loop, name=f"kubelet-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stops the agent's threads and pod workers; running containers are the runtime's to stop."""
        self._stopping.set()
        if self._client is not None:
            self._client.close_watches()  # an open watch would hold up the API server's shutdown
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._events is not None:
            self._events.close(timeout=2.0)  # what is still queued gets a moment to go out
        if self._client is not None:
            self._client.close()  # the kept-alive connections

    # ---- the Node and its Lease ----------------------------------------------------------------

    def register_node(self) -> None:
        """Creates this node's Node (or finds the one a previous run created) and reports its status."""
        try:
            node = self.client.create(NODES, node_status.node_object(self._identity))
        except ApiStatusError as exc:
            if exc.code != 409:
                raise
            node = self.client.get(f"{NODES}/{self._config.node_name}")
        self._node_uid = node["metadata"]["uid"]
        self.report_node_status(node)
        log.info("node %s registered", self._config.node_name)

    def report_node_status(self, node: dict[str, Any] | None = None) -> None:
        node = node or self.client.get(f"{NODES}/{self._config.node_name}")
        try:
            version, images = self._cri.version(), self._cri.list_images()
        except CriError as exc:
            log.warning("node status: the runtime does not answer: %s", exc)
            return
        previous = (node.get("status") or {}).get("conditions") or ()
        status = node_status.node_status(self._identity, version, images, previous)
        self.client.update(f"{NODES}/{self._config.node_name}/status",
                           {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self._config.node_name},
                            "status": status})

    def renew_lease(self) -> None:
        lease = node_status.lease_object(self._config.node_name, self._node_uid, dt.datetime.now(dt.timezone.utc))
        path = f"{LEASES}/{self._config.node_name}"
        try:
            self.client.update(path, lease)
        except ApiStatusError as exc:
            if exc.code != 404:
                raise
            self.client.create(LEASES, lease)

    def _every(self, seconds: float, action: Callable[[], None], what: str) -> None:
        while not self._stopping.wait(seconds):
            try:
                action()
            except ApiClientError as exc:
                log.warning("%s failed: %s", what, exc)

    def _lease_loop(self) -> None:
        self._every(self._config.lease_renew_seconds, self._heartbeat, "lease renewal")

    def _heartbeat(self) -> None:
        """Renews the lease, and reports the node's status at once if the node lifecycle controller
        marked it Unknown meanwhile (as upstream's kubelet, which compares on every status tick)."""
        self.renew_lease()
        node = self.client.get(f"{NODES}/{self._config.node_name}")
        ready = next((c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), {})
        if ready.get("status") != "True":
            self.report_node_status(node)

    def _node_status_loop(self) -> None:
        self._every(self._config.node_status_seconds, self.report_node_status, "node status update")

    # ---- client certificate rotation -----------------------------------------------------------

    def _rotation_loop(self) -> None:
        while not self._stopping.is_set():
            cert = certificate_of(self._credentials) if self._credentials else None
            if cert is None:
                return
            wait = (rotation_deadline(cert) - dt.datetime.now(dt.timezone.utc)).total_seconds()
            if self._stopping.wait(max(wait, 0)):
                return
            try:
                self._credentials = rotate(self.client, self._credentials, self._bootstrap)
                fresh = certificate_of(self._credentials)
                log.info("node %s: client certificate rotated: %s", self._config.node_name,
                         describe(fresh) if fresh else "?")
            except (ApiClientError, RuntimeError) as exc:
                log.warning("client certificate rotation failed, retrying in 30 s: %s", exc)
                if self._stopping.wait(30):
                    return

    # ---- pods ----------------------------------------------------------------------------------

    def _pod_loop(self) -> None:
        selector = {"fieldSelector": f"spec.nodeName={self._config.node_name}"}
        while not self._stopping.is_set():
            try:
                listed = self.client.get(PODS, **selector)
                self._sync_pods(listed.get("items") or [])
                version = listed["metadata"]["resourceVersion"]
                for event in self.client.watch(PODS, version, timeoutSeconds=WATCH_TIMEOUT_SECONDS, **selector):
                    if self._stopping.is_set():
                        return
                    self._pod_event(event)
            except (ApiClientError, ValueError, KeyError) as exc:
                # 410 Gone, a dropped connection, a restarting API server: list again.
                log.info("pod watch ended (%s); listing again", exc)
                self._stopping.wait(RELIST_DELAY_SECONDS)

    def _sync_pods(self, pods: list[dict[str, Any]]) -> None:
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self._pod_changed(pod)
        with self._lock:
            missing = [worker for uid, worker in self._workers.items() if uid not in seen]
        for worker in missing:
            worker.gone()

    def _pod_event(self, event: dict[str, Any]) -> None:
        kind, pod = event.get("type"), event.get("object") or {}
        if kind in ("ADDED", "MODIFIED"):
            self._pod_changed(pod)
        elif kind == "DELETED":
            with self._lock:
                worker = self._workers.get(pod["metadata"]["uid"])
            if worker is not None:
                worker.gone()

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        if (pod.get("spec") or {}).get("nodeName") != self._config.node_name:
            return
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if worker is None and not self._stopping.is_set():
                # No image_present: the runtime tells whether it pulled (one ImageStatus per start, not two).
                context = WorkerContext(self._runtime, self.client, self._config.address,
                                        self._config.pod_sync_seconds, events=self._events, starts=self._starts)
                worker = self._workers[uid] = PodWorker(pod, context, self._worker_done)
                worker.start()
                return
        if worker is not None:
            worker.update(pod)

    def _worker_done(self, uid: str) -> None:
        with self._lock:
            self._workers.pop(uid, None)

    # ---- the kubelet API -----------------------------------------------------------------------

    def container_logs(self, namespace: str, pod: str, container: str,
                       options: PodLogOptions = PodLogOptions()) -> ContainerLogStream:
        """The log of a container of a pod on this node, to stream (and follow while it runs, with
        `options.follow`); LogUnavailable (with an HTTP code) if there is none to serve."""
        with self._lock:
            worker = next((w for w in self._workers.values() if w.name == (namespace, pod)), None)
        if worker is None:
            raise LogUnavailable(404, f'pod "{pod}" in namespace "{namespace}" is not running on this node')
        # The worker knows the pod's containers and their states: it refuses as upstream does (unknown
        # container, pod not started, container waiting, no previous instance). Only its verdict counts.
        worker.container_logs(container, tail_lines=0, previous=options.previous)
        try:
            found = self._runtime.find_container_log(worker.uid, container, previous=options.previous)
        except CriError as exc:
            log.warning("logs of %s/%s/%s: the runtime failed: %s", namespace, pod, container, exc)
            raise LogUnavailable(503, "the container runtime does not answer; retry") from None
        if found is None:
            raise LogUnavailable(400, f'container "{container}" in pod "{pod}" is not available')
        container_id = found.container_id

        def still_running() -> bool:
            try:
                return self._runtime.container_running(container_id)
            except CriError as exc:  # as upstream: a runtime that cannot tell ends the follow
                log.warning("logs of %s/%s/%s: container status failed: %s", namespace, pod, container, exc)
                return False

        earliest = options.earliest(dt.datetime.now(dt.timezone.utc))
        read = LogReadOptions(follow=options.follow, timestamps=options.timestamps,
                              since_nanos=None if earliest is None else nanos_since_epoch(earliest),
                              tail_lines=options.tail_lines, limit_bytes=options.limit_bytes)
        return ContainerLogStream(found.path, read, still_running)
