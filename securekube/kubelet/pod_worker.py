"""One pod on this node, from first sight to removal, driven by its own thread (upstream's pod worker).

The worker starts the pod through `PodRuntime`, reports its status through pods/status whenever it
changes, restarts exited containers as the restart policy says (with upstream's back-off: at once,
then 10 s doubling to 5 min), stops the sandbox of a pod that has finished, and on deletion stops
everything with the grace period, removes containers, sandbox and logs, and finally deletes the pod
object with gracePeriodSeconds=0 (and its uid as precondition), which is what lets it go.

A pod the node refuses (PodAdmissionError: AppArmor on a host without it, a forbidden sysctl, ...)
is never started: its status becomes phase Failed with upstream's reason and message.

When the pod first reports phase Running, the worker logs (logger `securekube.kubelet.podstartup`,
INFO) how long each start-up step took after the kubelet saw the pod: sandbox ready, containers
started, status sent and acknowledged — the breakdown `bench/pod_start.py --api` reads.

Along the way the worker records upstream's Events about the pod and its containers (Pulled,
Created, Started, Failed, BackOff, Killing; see kubelet/events.py) on the context's recorder, which
sends them in the background: an event can neither hold up nor fail the pod's work.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from securekube.events import EventRecorder
from securekube.kubelet.apiclient import ApiClient, ApiClientError, ApiStatusError
from securekube.kubelet.cri.client import CriError
from securekube.kubelet.crilog import read_container_log
from securekube.kubelet.errors import PodAdmissionError
from securekube.kubelet.events import (KubeletEvent, backoff_event, container_start_events, killing_event,
                                       rejected_event, sandbox_failed_event)
from securekube.kubelet.pod_status import TERMINAL_PHASES, rejected_status, running_status, terminated_view
from securekube.kubelet.runtime import (PodRunState, PodRuntime, PodStatusView, SandboxCreationError,
                                        image_pull_policy)

log = logging.getLogger("securekube.kubelet")
startup_log = logging.getLogger("securekube.kubelet.podstartup")
INITIAL_BACKOFF_SECONDS = 10
MAX_BACKOFF_SECONDS = 300
MAX_SANDBOX_RETRY_SECONDS = 60.0


class PodStarts:
    """How many pods this node is starting right now, so background work can wait for a lull.

    A start counts from the worker's first attempt until the pod's first status is written (or the
    start gave up). On a 2-vCPU node a burst of starts is bound by CPU: work that no pod waits for
    (posting Events, each a full API write) goes faster overall if it waits until the starts are
    done. `wait_for_lull(limit)` returns once no start is in progress, or once starts have kept the
    node busy for `limit` seconds without a break: what waits is delayed, never starved.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_progress = 0
        self._busy_since = 0.0

    def begin(self) -> None:
        with self._cond:
            if self._in_progress == 0:
                self._busy_since = time.monotonic()
            self._in_progress += 1

    def end(self) -> None:
        with self._cond:
            self._in_progress -= 1
            if self._in_progress == 0:
                self._cond.notify_all()

    def wait_for_lull(self, limit_seconds: float) -> None:
        with self._cond:
            while self._in_progress:
                remaining = self._busy_since + limit_seconds - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)


class LogUnavailable(LookupError):
    """A container's log cannot be served; `code` is the HTTP status to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WorkerContext:
    """What every pod worker shares: the runtime, the API client, this node's address, its event recorder."""

    runtime: PodRuntime
    client: ApiClient
    host_ip: str
    sync_seconds: float = 1.0
    events: EventRecorder | None = None  # None: no events (tests of the pod's life alone)
    # Whether the runtime already holds an image, to tell "already present" from a pull in events.
    # None: take it from the runtime's own answer (ContainerRun.image_pulled), which saves asking
    # the runtime for the image's status a second time on every container start.
    image_present: Callable[[str], bool] | None = None
    starts: PodStarts | None = None  # where the worker counts its start while it is in progress


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_path(pod: dict[str, Any], subresource: str = "") -> str:
    meta = pod["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}" + (f"/{subresource}" if subresource else "")


class PodWorker:
    """Owns one pod (by uid); `update()` hands it the newest object, `gone()` says the object was removed."""

    def __init__(self, pod: dict[str, Any], context: WorkerContext, on_done: Callable[[str], None]) -> None:
        self.uid = str(pod["metadata"]["uid"])
        self._context = context
        self._on_done = on_done
        self._lock = threading.Lock()
        self._pod = pod
        self._gone = False
        self._stopping = False
        self._wake = threading.Event()
        self._state: PodRunState | None = None
        self._view: PodStatusView | None = None  # the runtime's last answer: which containers run
        self._settled = False  # rejected, or finished and its sandbox stopped: nothing more to run
        self._reported: dict[str, Any] | None = None
        self._start_time = ""
        self._pod_ip = ""
        self._last_states: dict[str, dict] = {}
        self._backoff: dict[str, int] = {}  # container -> the delay its next restart waits
        self._restart_at: dict[str, float] = {}
        self._sandbox_retry_at = 0.0
        self._sandbox_failures = 0
        # Start-up timeline (time.monotonic()), logged once when the pod first runs.
        self._seen_at = time.monotonic()
        self._containers_started_at: float | None = None
        self._status_sent_at: float | None = None
        self._startup_logged = False
        self._start_counted = False  # this worker's start is counted in the context's PodStarts
        self._thread = threading.Thread(target=self._run, name=f"pod-{pod['metadata']['name']}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def update(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def gone(self) -> None:
        with self._lock:
            self._gone = True
        self._wake.set()

    def stop(self) -> None:
        """Stops the worker's thread without touching the pod (the node is shutting down)."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)

    @property
    def name(self) -> tuple[str, str]:
        with self._lock:
            return self._pod["metadata"]["namespace"], self._pod["metadata"]["name"]

    # ---- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    pod, gone, stopping = self._pod, self._gone, self._stopping
                if stopping:
                    return
                try:
                    if gone or (pod.get("metadata") or {}).get("deletionTimestamp"):
                        if self._terminate(pod, gone):
                            return
                    else:
                        self._sync(pod)
                except (ApiClientError, OSError, RuntimeError) as exc:
                    # The API server or the runtime hiccuped: the next round tries again.
                    log.warning("pod %s/%s: %s", *self.name, exc)
                self._wake.wait(self._context.sync_seconds)
                self._wake.clear()
        finally:
            self._count_start(False)
            self._on_done(self.uid)

    def _count_start(self, in_progress: bool) -> None:
        starts = self._context.starts
        if starts is None or in_progress == self._start_counted:
            return
        self._start_counted = in_progress
        if in_progress:
            starts.begin()
        else:
            starts.end()

    def _sync(self, pod: dict[str, Any]) -> None:
        if self._settled:
            return
        if self._state is None:
            if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
                self._settled = True  # finished before this kubelet started: never run it again
                return
            self._count_start(True)
            if not self._start(pod):
                self._count_start(False)  # refused, or a sandbox to retry later: nothing in progress now
                return
        assert self._state is not None
        view = self._restart_exited(pod, self._context.runtime.status(self._state))
        self._view = view
        self._pod_ip = view.pod_ip or self._pod_ip
        if view.phase in TERMINAL_PHASES:
            # Done: free its network and processes; the containers (and logs) stay until deletion.
            self._context.runtime.kill_pod(self._state, grace_seconds=0, remove=False)
            view = replace(self._context.runtime.status(self._state), phase=view.phase)
            self._settled = True
        written = self._report(pod, running_status(pod, replace(view, pod_ip=view.pod_ip or self._pod_ip),
                                                   host_ip=self._context.host_ip, start_time=self._start_time,
                                                   now=_now(), last_states=self._last_states,
                                                   backoffs=self._pending_backoffs(view)))
        self._count_start(False)  # its first status is out: the start is over
        if written and view.phase == "Running" and not self._startup_logged:
            self._log_startup()

    def _log_startup(self) -> None:
        """One line with the pod's start-up steps, in ms after the kubelet saw it (upstream logs a
        similar "Observed pod startup duration")."""
        self._startup_logged = True
        if not startup_log.isEnabledFor(logging.INFO):
            return
        acknowledged = time.monotonic()
        sandbox = self._state.sandbox_ready_at if self._state is not None else None

        def since_seen(moment: float | None) -> str:
            return "?" if moment is None else f"{(moment - self._seen_at) * 1000:.0f}"

        startup_log.info("pod %s/%s running: sandbox ready %s ms, containers started %s ms, status sent %s ms, "
                         "acknowledged %s ms after the kubelet saw it", *self.name, since_seen(sandbox),
                         since_seen(self._containers_started_at), since_seen(self._status_sent_at),
                         since_seen(acknowledged))

    def _start(self, pod: dict[str, Any]) -> bool:
        if time.monotonic() < self._sandbox_retry_at:
            return False
        self._start_time = self._start_time or _now()
        pulls = {str(c.get("name")): self._will_pull(c) for c in (pod.get("spec") or {}).get("containers") or ()}
        try:
            self._state = self._context.runtime.run_pod(pod)
        except PodAdmissionError as refusal:
            log.warning("pod %s/%s rejected: %s: %s", *self.name, refusal.reason, refusal.message)
            self._record(pod, rejected_event(refusal.reason, refusal.message))
            self._settled = True
            self._report(pod, rejected_status(pod, refusal.reason, refusal.message,
                                              host_ip=self._context.host_ip, now=self._start_time))
            return False
        except SandboxCreationError as error:
            self._sandbox_failures += 1
            delay = min(MAX_SANDBOX_RETRY_SECONDS, 2.0 ** self._sandbox_failures)
            self._sandbox_retry_at = time.monotonic() + delay
            log.warning("pod %s/%s: %s; retrying in %.0f s", *self.name, error, delay)
            self._record(pod, sandbox_failed_event(str(error)))
            return False
        self._containers_started_at = time.monotonic()
        for run in self._state.containers:
            pulled = pulls.get(run.name)
            self._record_all(pod, container_start_events(run, run.image_pulled if pulled is None else pulled))
        return True

    # ---- events --------------------------------------------------------------------------------

    def _record(self, pod: dict[str, Any], event: KubeletEvent) -> None:
        if self._context.events is not None:
            self._context.events.record(event.reference(pod), event.event_type, event.reason, event.message)

    def _record_all(self, pod: dict[str, Any], events: list[KubeletEvent]) -> None:
        for event in events:
            self._record(pod, event)

    def _will_pull(self, container: dict[str, Any]) -> bool | None:
        """Whether the runtime is about to pull the container's image (None: cannot tell)."""
        if self._context.events is None:
            return None
        policy = image_pull_policy(container)
        if policy in ("Always", "Never"):
            return policy == "Always"
        if self._context.image_present is None:
            return None
        try:
            return not self._context.image_present(str(container.get("image", "")))
        except (CriError, OSError):
            return None  # only an event's wording depends on it; the runtime decides for itself

    def _restartable(self, pod: dict[str, Any], exit_code: int | None) -> bool:
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    def _restart_exited(self, pod: dict[str, Any], view: PodStatusView) -> PodStatusView:
        assert self._state is not None
        restarted = False
        for container in view.containers:
            if container.state != "terminated" or not self._restartable(pod, container.exit_code):
                continue
            now = time.monotonic()
            if container.name not in self._restart_at:
                delay = self._backoff.get(container.name, 0)
                self._restart_at[container.name] = now + delay
                if delay:  # once per back-off period; repeats count up on the one Event
                    self._record(pod, backoff_event(container.name, pod))
            if now < self._restart_at[container.name]:
                continue
            self._last_states[container.name] = terminated_view(container)
            spec = next((c for c in (pod.get("spec") or {}).get("containers") or ()
                         if c.get("name") == container.name), {})
            pulled = self._will_pull(spec)
            self._state = self._context.runtime.restart_container(pod, self._state, container.name)
            run = self._state.container(container.name)
            self._record_all(pod, container_start_events(run, run.image_pulled if pulled is None else pulled))
            current = self._backoff.get(container.name, 0)
            self._backoff[container.name] = min(MAX_BACKOFF_SECONDS, max(INITIAL_BACKOFF_SECONDS, current * 2))
            self._restart_at.pop(container.name, None)
            restarted = True
        return self._context.runtime.status(self._state) if restarted else view

    def _pending_backoffs(self, view: PodStatusView) -> dict[str, int]:
        """Containers waiting out a restart back-off, with the delay they wait."""
        return {c.name: self._backoff.get(c.name, 0) for c in view.containers
                if c.state == "terminated" and c.name in self._restart_at}

    def _report(self, pod: dict[str, Any], status: dict[str, Any]) -> bool:
        """Writes `status` unless it is the one last written; True if it was written now."""
        if status == self._reported:
            return False
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Pod", "status": status,
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}}
        self._status_sent_at = time.monotonic()
        try:
            self._context.client.update(pod_path(pod, "status"), body)
        except ApiStatusError as exc:
            if exc.code in (404, 409):  # gone, or a new pod of the same name: not ours to report
                return False
            raise
        self._reported = status
        return True

    def _terminate(self, pod: dict[str, Any], gone: bool) -> bool:
        """Stops and removes the pod, then lets its object go; True when nothing is left to do."""
        meta = pod.get("metadata") or {}
        grace = 0 if gone else meta.get("deletionGracePeriodSeconds")
        if self._state is not None:
            runtime = self._context.runtime
            for running in (c.name for c in (self._view.containers if self._view else ()) if c.state == "running"):
                self._record(pod, killing_event(running))
            runtime.kill_pod(self._state, grace_seconds=grace if isinstance(grace, int) else None, remove=False)
            if not gone:
                view = runtime.status(self._state)
                try:
                    self._report(pod, running_status(pod, replace(view, pod_ip=view.pod_ip or self._pod_ip),
                                                     host_ip=self._context.host_ip, start_time=self._start_time,
                                                     now=_now(), last_states=self._last_states))
                except ApiClientError as exc:
                    log.info("pod %s/%s: final status not reported: %s", *self.name, exc)
            runtime.kill_pod(self._state, grace_seconds=0, remove=True)
            shutil.rmtree(self._state.log_directory, ignore_errors=True)
            self._state = None
        if gone:
            return True
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "preconditions": {"uid": meta["uid"]}}
        try:
            self._context.client.delete(pod_path(pod), options)
        except ApiStatusError as exc:
            if exc.code not in (404, 409):  # already gone, or replaced by a new pod of that name
                raise
        log.info("pod %s/%s stopped and removed", *self.name)
        return True

    # ---- logs ----------------------------------------------------------------------------------

    def container_logs(self, container: str, tail_lines: int | None = None, previous: bool = False) -> str:
        """What `container` printed (its current attempt, or the one before with `previous`)."""
        namespace, name = self.name
        state = self._state
        with self._lock:
            spec_names = [c.get("name") for c in (self._pod.get("spec") or {}).get("containers") or ()]
        if container not in spec_names:
            raise LogUnavailable(400, f"container {container} is not valid for pod {name}")
        if state is None:
            raise LogUnavailable(400, f'container "{container}" in pod "{name}" is waiting to start: '
                                      "the pod has not started on this node")
        run = state.container(container)
        if previous:
            if run.attempt == 0:
                raise LogUnavailable(400, f'previous terminated container "{container}" in pod "{name}" not found')
            path = state.log_directory / container / f"{run.attempt - 1}.log"
        else:
            if not run.container_id:
                reason = run.waiting_reason or "ContainerCreating"
                raise LogUnavailable(400, f'container "{container}" in pod "{name}" is waiting to start: {reason}')
            path = state.log_directory / run.log_path
        if not path.exists():
            return ""
        return read_container_log(path, tail_lines=tail_lines)
